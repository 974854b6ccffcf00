"""The sources of a project, one at a time: ingest → clean and redact → run the builder → keep the chunks.

`ingest_source` reads a source's files (or only hashes them when its builder reads them itself) and
`collect` turns them into examples and chunks, counting what was skipped. What to do with a source is
asked of its builder's spec (`prepare/builders/`): which fields and texts to clean, which documents share
a pseudonym table, whether its documents are chunked. Nothing here tests a kind's name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.config import Project, Source
from tailorlm.documents import Document, Ingest, load_documents
from tailorlm.formats.examples import Example
from tailorlm.prepare.builders import BuilderError, get_builder, run_builder
from tailorlm.prepare.builders.documents import Chunk, chunk_documents
from tailorlm.prepare.clean import Scrubber
from tailorlm.prepare.errors import PrepareError
from tailorlm.progress import Progress
from tailorlm.workspace import Workspace, sha256_file

Say = Callable[[str], None]
SHOWN_READER_WARNINGS = 5  # per file in the card; the ingest audit event has them all


@dataclass
class SourceInput:
    """One source after ingestion: its files (path, sha256, documents) and the document artifacts."""

    index: int
    source: Source
    files: list[dict[str, Any]]
    document_ids: list[str]


def ingest_source(
    workspace: Workspace, project: Project, index: int, source: Source, ingest: Ingest | None, progress: Progress
) -> SourceInput:
    """Ingest the source's path with `ingest` (idempotent by content hash); any failed file stops prepare."""
    spec = get_builder(source.kind)
    if spec.files is not None:  # read by its builder; hashed here for the dataset's key
        try:
            hashed = [
                {"path": label(file, project), "sha256": sha256_file(file), "documents": 0}
                for file in spec.files(source, project)
            ]
        except BuilderError as error:
            raise PrepareError(f"sources[{index}]: {error}") from None
        return SourceInput(index, source, hashed, [])
    if ingest is None:
        raise TypeError(
            f"sources[{index}] ({source.path}) must be ingested first: call prepare(..., ingest=tailorlm.ingest.ingest)"
        )
    progress.say(f"ingesting {source.path}")
    report = ingest(workspace, [project.resolve(source.path)], progress=progress)
    failed = [f for f in report.files if f.status == "failed"]
    if failed:
        lines = "\n".join(f"  {f.path}: {f.error or f.status}" for f in failed)
        raise PrepareError(
            f"sources[{index}] ({source.path}): {len(failed)} file(s) could not be read; nothing was prepared:\n{lines}"
        )
    read = sorted((f for f in report.files if f.sha256), key=lambda f: label(Path(f.path), project))
    if not read:
        raise PrepareError(f"sources[{index}] ({source.path}): no readable files found")
    files: list[dict[str, Any]] = [
        {
            "path": label(Path(f.path), project),
            "sha256": f.sha256,
            "documents": f.documents,
            "skipped_while_reading": len(f.warnings),
            "reader_warnings": f.warnings[:SHOWN_READER_WARNINGS],
        }
        for f in read
    ]
    document_ids = [a.id for f in read for a in workspace.registry.find("document", hash=f.sha256)[:1]]
    return SourceInput(index, source, files, document_ids)


def label(path: Path, project: Project) -> str:
    """A file as the user wrote it: relative to the project folder where possible."""
    try:
        return path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass
class Collected:
    """Examples and chunks of every source so far, with what was counted on the way."""

    scrubber: Scrubber
    examples: list[Example] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    sources: list[dict[str, Any]] = field(default_factory=list)  # one card row per source
    chunk_rows: list[int] = field(default_factory=list)  # the card row of each chunk's source


def collect(
    workspace: Workspace, project: Project, item: SourceInput, collected: Collected, tokenizer: Any, say: Say
) -> None:
    """Clean, redact and run the builder of one source; a chunking builder's documents are kept as chunks."""
    source = item.source
    spec = get_builder(source.kind)
    documents: list[Document] = []
    if spec.files is None:
        loaded = load_documents(workspace, [f["sha256"] for f in item.files])
        say(f"cleaning {len(loaded)} documents of {source.path}")
        reads = spec.reads(source)
        units = spec.units(loaded) if spec.units else None
        documents = collected.scrubber.documents(loaded, fields=reads.fields, text=reads.text, units=units)
    try:
        examples, skips = run_builder(documents, source, project)
    except BuilderError as error:
        raise PrepareError(f"sources[{item.index}] ({source.path}): {error}") from None
    if spec.files is not None:  # examples read from the files: cleaned and redacted now
        examples = [collected.scrubber.example(example) for example in examples]
    for example in examples:
        example.meta.setdefault("file", str(source.path))
        if source.split:
            example.meta["split"] = source.split  # pinned: see prepare.runner (dedup and split leave it there)
    chunks: list[Chunk] = []
    if spec.chunks and project.task != "cpt":  # for cpt the chunks are the builder's examples
        settings = project.prepare.chunk
        try:
            chunks = chunk_documents(documents, settings.max_tokens, settings.overlap, tokenizer)
        except ValueError as error:
            raise PrepareError(str(error)) from None
    say(f"{source.path}: {len(examples)} examples" + (f", {len(chunks)} chunks" if chunks else ""))
    collected.examples.extend(examples)
    collected.chunks.extend(chunks)
    collected.chunk_rows.extend([len(collected.sources)] * len(chunks))
    collected.skipped.update(skips)
    collected.sources.append(
        {
            "path": str(source.path),
            "kind": source.kind,
            "files": item.files,
            "examples": len(examples),
            "chunks": len(chunks),
        }
    )


def synthesize_from_chunks(
    workspace: Workspace, project: Project, collected: Collected, tokenizer: Any, progress: Progress
) -> None:
    """Synthetic Q&A from every source's chunks (see synth.py), counted in the sources' card rows."""
    from tailorlm.prepare.synth import synthesize

    synthesis = synthesize(
        workspace,
        project,
        collected.chunks,
        tokenizer=tokenizer,
        progress=progress,
        file_of=lambda chunk: label(Path(chunk.source_path), project),
    )
    collected.examples.extend(synthesis.examples)
    collected.skipped.update(synthesis.skips())
    for row, made in zip(collected.chunk_rows, synthesis.per_chunk, strict=True):
        collected.sources[row]["examples"] += made
        collected.sources[row]["synthetic"] = collected.sources[row].get("synthetic", 0) + made
