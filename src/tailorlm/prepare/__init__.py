"""The `prepare` stage: the project's sources → `datasets/<name>/<version>/` (splits + card), registered.

    result = prepare(workspace, project, ingest=ingest)   # tailorlm prepare (ingest: tailorlm.ingest.ingest)

Steps, top to bottom (docs/prepare.md tells the whole story):

1. check every source: its path exists and its kind fits the task;
2. ingest each source path (idempotent by content hash); any failed file stops here, nothing written;
3. skip when a complete dataset was built from the same file hashes and settings (unless `force`);
4. load the documents, clean and redact their text (pseudonyms consistent within a document or an
   e-mail thread), run the source's builder; documents of a non-`cpt` task are only chunked, and with
   `prepare.synthesize` a local teacher model writes Q&A examples from their chunks (synth.py);
5. quality filters, exact + near duplicate removal, the split by source, the contamination check;
6. write train/val/test.jsonl, card.json, card.md (and chunks.jsonl) into a staging folder renamed
   into place, then register the dataset (parents: the documents) and append an audit event.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.config import Project, Source
from tailorlm.dataset_splits import SPLITS
from tailorlm.documents import Document, Ingest, load_documents
from tailorlm.errors import UserError
from tailorlm.formats.examples import Example
from tailorlm.prepare.builders import BuilderError, run_builder
from tailorlm.prepare.builders.dataset import dataset_files
from tailorlm.prepare.builders.documents import Chunk, base_tokenizer, chunk_documents
from tailorlm.prepare.builders.email import email_threads
from tailorlm.prepare.card import CardInputs, build_card, render_markdown
from tailorlm.prepare.clean import Scrubber, filter_examples
from tailorlm.prepare.split import SplitError, contamination_report, split_examples, strip_shared_prefix
from tailorlm.registry import Artifact, DatasetMeta
from tailorlm.registry.store import now
from tailorlm.workspace import (
    Workspace,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    sha256_file,
    stable_hash,
)

# Bump when a change to this stage changes the examples it makes: old datasets then stop matching.
PREPARE_FORMAT = 1

# Which source kinds can feed which task. `documents` fits every task: for `cpt` its chunks are the
# examples; otherwise they are kept for the RAG baseline and synthetic Q&A.
TASK_KINDS: dict[str, frozenset[str]] = {
    "chat": frozenset({"faq", "email", "table", "extraction", "dataset", "documents"}),
    "generate": frozenset({"faq", "email", "table", "extraction", "dataset", "documents"}),
    "classify": frozenset({"table", "dataset", "documents"}),
    "extract": frozenset({"extraction", "table", "dataset", "documents"}),
    "cpt": frozenset({"documents", "dataset"}),
}

# Of an e-mail's fields only the subject is text a builder may use; the headers (from, to, message ids)
# never reach the dataset, and redacting the ids would break threading.
EMAIL_TEXT_FIELDS = frozenset({"subject"})

Progress = Callable[[str], None]
SHOWN_READER_WARNINGS = 5  # per file in the card; the ingest audit event has them all


class PrepareError(UserError, ValueError):
    """Sources that can't become a dataset; the message names the sources or files. Nothing was written."""


@dataclass
class PrepareResult:
    dataset: Artifact
    path: Path
    counts: dict[str, int]
    skipped: bool
    card: dict[str, Any]


@dataclass
class _SourceInput:
    """One source after ingestion: its files (path, sha256, documents) and the document artifacts."""

    index: int
    source: Source
    files: list[dict[str, Any]]
    document_ids: list[str]


def prepare(
    workspace: Workspace,
    project: Project,
    *,
    ingest: Ingest | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> PrepareResult:
    """Build (or find) the dataset the project describes.

    Args:
        ingest: Reads a source's files into the workspace's documents: `tailorlm.ingest.ingest`, passed
            by the caller (the CLI, `tailorlm run`) because stages don't import each other. Needed
            unless every source is a `dataset` (a JSONL file its builder reads itself).

    Raises:
        PrepareError: a missing source path, a kind that doesn't fit the task, a file that failed to
            ingest, a builder that can't read a source, or no examples at all. Nothing is written then.
    """
    say = progress or (lambda message: None)
    _check_sources(project)
    inputs = [
        _ingest_source(workspace, project, index, source, ingest, say) for index, source in enumerate(project.sources)
    ]
    key = dataset_key(project, inputs)
    found = workspace.find_complete("dataset", key)
    if found is not None and not force:
        say(f"dataset {found.name}@{found.version} is up to date (inputs and settings unchanged)")
        path = workspace.path_of(found)
        return PrepareResult(found, path, dict(found.meta_as(DatasetMeta).counts), True, _read_card(path))

    tokenizer = base_tokenizer(project.base_model)
    collected = _Collected(scrubber=Scrubber(project.prepare.pii, _ner_model(project)))
    for item in inputs:
        _collect(workspace, project, item, collected, tokenizer, say)
    if project.prepare.synthesize is not None:
        if collected.chunks:
            _synthesize(workspace, project, collected, tokenizer, say)
        else:
            say("prepare.synthesize is set, but no documents source gave chunks: nothing to synthesize")
    _check_format(project, collected.examples)

    say(f"filtering {len(collected.examples)} examples")
    kept, drops = filter_examples(collected.examples, project.prepare)
    kept, dedup = _deduplicate(kept, project)
    if not kept:
        raise PrepareError(_empty_message(project, len(collected.examples), drops, dedup, collected.skipped))
    try:
        files = {f["path"]: f["sha256"] for item in inputs for f in item.files}
        splits = split_examples(kept, project.prepare.split, stratify_by_label=project.task == "classify", files=files)
    except SplitError as error:
        raise PrepareError(f"dataset {project.dataset_name}: {error}") from None
    contamination = contamination_report(splits, project.prepare.dedup.near_threshold or 0.85)
    card_inputs = CardInputs(
        key=key,
        sources=collected.sources,
        pii_counts=collected.scrubber.counts,
        builder_skips=collected.skipped,
        drops=drops,
        dedup=dedup,
        contamination=contamination,
        chunks=len(collected.chunks),
        warnings=_warnings(project, splits, tokenizer, inputs),
    )
    return _write(workspace, project, splits, collected.chunks, card_inputs, inputs, tokenizer, say)


def _ner_model(project: Project) -> Path | None:
    model = project.prepare.pii_ner_model
    return project.resolve(model) if model else None


def dataset_key(project: Project, inputs: Sequence[_SourceInput]) -> str:
    """What the dataset is built from: input file hashes, prepare settings, task, system prompt and the
    builder settings of each source (not its path: moving the project folder changes nothing)."""
    chunked = any(item.source.kind == "documents" for item in inputs)
    return stable_hash(
        {
            "format": PREPARE_FORMAT,
            "name": project.dataset_name,
            "task": project.task,
            "system_prompt": project.system_prompt,
            "prepare": project.prepare.model_dump(mode="json"),
            "sources": [
                {
                    **item.source.model_dump(mode="json", exclude={"path"}),
                    "files": sorted(f["sha256"] for f in item.files),
                }
                for item in inputs
            ],
            # Chunks are cut by the base model's tokens.
            "tokenizer": str(project.base_model) if chunked else None,
        }
    )


# --- steps ---------------------------------------------------------------------------------------


def _check_sources(project: Project) -> None:
    if not project.sources:
        raise PrepareError("the project has no sources: add files or folders under `sources:`")
    problems = []
    for index, source in enumerate(project.sources):
        path = project.resolve(source.path)
        if not path.exists():
            problems.append(f"sources[{index}].path: not found: {source.path} (looked at {path})")
        elif source.kind not in TASK_KINDS[project.task]:
            fits = ", ".join(sorted(TASK_KINDS[project.task]))
            problems.append(
                f"sources[{index}] ({source.path}): kind {source.kind!r} doesn't fit task "
                f"{project.task!r} (it takes: {fits})"
            )
    if project.prepare.synthesize is not None and project.task not in ("chat", "generate"):
        problems.append(
            f"prepare.synthesize writes question/answer chat examples; it fits task 'chat' or 'generate' "
            f"(got {project.task!r}): remove prepare.synthesize or change the task"
        )
    if problems:
        raise PrepareError("\n".join(problems))


def _ingest_source(
    workspace: Workspace, project: Project, index: int, source: Source, ingest: Ingest | None, say: Progress
) -> _SourceInput:
    path = project.resolve(source.path)
    if source.kind == "dataset":  # read by its builder (see builders/dataset.py); hashed here for the key
        try:
            hashed = [
                {"path": _label(file, project), "sha256": sha256_file(file), "documents": 0}
                for file in dataset_files(source, project)
            ]
        except BuilderError as error:
            raise PrepareError(f"sources[{index}]: {error}") from None
        return _SourceInput(index, source, hashed, [])
    if ingest is None:
        raise TypeError(
            f"sources[{index}] ({source.path}) must be ingested first: call prepare(..., ingest=tailorlm.ingest.ingest)"
        )
    say(f"ingesting {source.path}")
    report = ingest(workspace, [path])
    failed = [f for f in report.files if f.status == "failed"]
    if failed:
        lines = "\n".join(f"  {f.path}: {f.error or f.status}" for f in failed)
        raise PrepareError(
            f"sources[{index}] ({source.path}): {len(failed)} file(s) could not be read; nothing was prepared:\n{lines}"
        )
    read = sorted((f for f in report.files if f.sha256), key=lambda f: _label(Path(f.path), project))
    if not read:
        raise PrepareError(f"sources[{index}] ({source.path}): no readable files found")
    files: list[dict[str, Any]] = [
        {
            "path": _label(Path(f.path), project),
            "sha256": f.sha256,
            "documents": f.documents,
            "skipped_while_reading": len(f.warnings),
            "reader_warnings": f.warnings[:SHOWN_READER_WARNINGS],
        }
        for f in read
    ]
    document_ids = [a.id for f in read for a in workspace.registry.find("document", hash=f.sha256)[:1]]
    return _SourceInput(index, source, files, document_ids)


def _label(path: Path, project: Project) -> str:
    try:
        return path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass
class _Collected:
    """Examples and chunks of every source so far, with what was counted on the way."""

    scrubber: Scrubber
    examples: list[Example] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    sources: list[dict[str, Any]] = field(default_factory=list)  # one card row per source
    chunk_rows: list[int] = field(default_factory=list)  # the card row of each chunk's source


def _collect(
    workspace: Workspace, project: Project, item: _SourceInput, collected: _Collected, tokenizer: Any, say: Progress
) -> None:
    """Clean, redact and run the builder of one source; documents of non-cpt tasks are chunked only."""
    source = item.source
    where = f"sources[{item.index}] ({source.path})"
    documents: list[Document] = []
    if source.kind != "dataset":
        loaded = load_documents(workspace, [f["sha256"] for f in item.files])
        say(f"cleaning {len(loaded)} documents of {source.path}")
        fields, text = _read_by_builder(source)
        units = email_threads(loaded) if source.kind == "email" else None  # pseudonyms per thread
        documents = collected.scrubber.documents(loaded, fields=fields, text=text, units=units)
    try:
        examples, skips = run_builder(documents, source, project)
    except BuilderError as error:
        raise PrepareError(f"{where}: {error}") from None
    if source.kind == "dataset":
        examples = [collected.scrubber.example(example) for example in examples]
    for example in examples:
        example.meta.setdefault("file", str(source.path))
    chunks: list[Chunk] = []
    if source.kind == "documents" and project.task != "cpt":
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


def _synthesize(workspace: Workspace, project: Project, collected: _Collected, tokenizer: Any, say: Progress) -> None:
    """Synthetic Q&A from every source's chunks (see synth.py), counted in the sources' card rows."""
    from tailorlm.prepare.synth import synthesize

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            say(f"synthesizing: {done}/{total} chunk(s) asked")

    synthesis = synthesize(
        workspace,
        project,
        collected.chunks,
        tokenizer=tokenizer,
        say=say,
        progress=progress,
        file_of=lambda chunk: _label(Path(chunk.source_path), project),
    )
    collected.examples.extend(synthesis.examples)
    collected.skipped.update(synthesis.skips())
    for row, made in zip(collected.chunk_rows, synthesis.per_chunk, strict=True):
        collected.sources[row]["examples"] += made
        collected.sources[row]["synthetic"] = collected.sources[row].get("synthetic", 0) + made


def _read_by_builder(source: Source) -> tuple[Callable[[str], bool], Callable[[Document], bool]]:
    """The fields and texts the source's builder reads: only those are cleaned and redacted (redaction
    is the slow step; a table may have dozens of columns nobody uses)."""
    if source.kind == "email":  # of the headers only the subject is text; the ids thread the messages
        return EMAIL_TEXT_FIELDS.__contains__, lambda document: True
    columns: set[str] | None = None
    if source.kind == "faq":
        columns = {source.question, source.answer}
    elif source.kind == "table":
        columns = {source.input or "", *(source.fields or [])}
    elif source.kind == "extraction" and source.fields:
        columns = {source.input or "", *source.fields}
    if columns is None:  # every column but the label (a category, not personal data)
        return (lambda name: name != source.label), lambda document: True
    reads_text = source.kind == "extraction" and not source.input
    return columns.__contains__, lambda document: reads_text or not document.fields


def _write(
    workspace: Workspace,
    project: Project,
    splits: dict[str, list[Example]],
    chunks: Sequence[Chunk],
    card_inputs: CardInputs,
    inputs: Sequence[_SourceInput],
    tokenizer: Any,
    say: Progress,
) -> PrepareResult:
    """Write the next version through a staging folder, then register it and log the audit event."""
    name = project.dataset_name
    version = workspace.next_version("dataset", name)
    final = workspace.dataset_dir(name, version)
    say(f"writing {name}@{version}: " + ", ".join(f"{len(splits[s])} {s}" for s in SPLITS))
    with workspace.staging(final) as folder:
        for split in SPLITS:
            atomic_write_jsonl(folder / f"{split}.jsonl", (example.to_json() for example in splits[split]))
        card_inputs.files = {f"{split}.jsonl": sha256_file(folder / f"{split}.jsonl") for split in SPLITS}
        card_inputs.hash = hashlib.sha256(
            "".join(f"{file}:{sha}\n" for file, sha in card_inputs.files.items()).encode()
        ).hexdigest()
        if chunks:
            atomic_write_jsonl(folder / "chunks.jsonl", (chunk.to_json() for chunk in chunks))
        card = build_card(project, name, version, splits, card_inputs, tokenizer=tokenizer, created_at=now())
        atomic_write_json(folder / "card.json", card)
        atomic_write_text(folder / "card.md", render_markdown(card))

    counts = {split: len(splits[split]) for split in SPLITS}
    parents = [document_id for item in inputs for document_id in item.document_ids]
    meta = DatasetMeta(
        counts=counts,
        skipped=dict(card_inputs.builder_skips),
        task=project.task,
        format=card["format"],
        labels=sorted(card["labels"]),
        chunks=len(chunks),
        files=card_inputs.files,
        sources=[str(s.path) for s in project.sources],
    )
    artifact = Artifact(
        id=f"dataset-{name}-{version}",
        kind="dataset",
        name=name,
        version=version,
        hash=card_inputs.hash,
        key=card_inputs.key,
        path=workspace.relative(final),
        created_at=card["created_at"],
        meta=meta,
    )
    workspace.registry.add(artifact, parents=parents)
    input_files = [f["sha256"] for item in inputs for f in item.files]
    workspace.audit.append(
        "prepare",
        inputs=parents or input_files,
        outputs=[artifact.id],
        dataset=f"{name}@{version}",
        counts=counts,
        key=card_inputs.key,
        hash=card_inputs.hash,
    )
    return PrepareResult(artifact, final, counts, False, card)


def _warnings(
    project: Project, splits: Mapping[str, Sequence[Example]], tokenizer: Any, inputs: Sequence[_SourceInput]
) -> list[str]:
    warnings = [
        f"{row['path']}: {row['skipped_while_reading']} part(s) skipped while reading (rows, lines, pages; "
        "see sources in card.json)"
        for item in inputs
        for row in item.files
        if row.get("skipped_while_reading")
    ]
    warnings += [
        f"the {split} split is empty"
        for split in ("val", "test")
        if not splits[split] and getattr(project.prepare.split, split)
    ]
    if tokenizer is None:
        warnings.append(f"no tokenizer at base_model ({project.base_model}): token counts are estimates")
    return warnings


def _check_format(project: Project, examples: Sequence[Example]) -> None:
    """cpt trains on text, every other task on conversations; classify needs labels."""
    wrong: Counter[str] = Counter()
    for example in examples:
        file = str(example.meta.get("file", "?"))
        if (project.task == "cpt") == example.is_chat:
            wrong[f"{file}: {'chat' if example.is_chat else 'text'} examples"] += 1
        elif project.task == "classify" and example.label is None:
            wrong[f"{file}: examples without a label"] += 1
    if wrong:
        want = "text examples (continued pretraining)" if project.task == "cpt" else "chat examples"
        if project.task == "classify":
            want = "chat examples with a label"
        lines = "\n".join(f"  {what}: {n}" for what, n in wrong.items())
        raise PrepareError(f"task {project.task!r} trains on {want}; these sources don't fit:\n{lines}")


def _comparison_texts(examples: Sequence[Example]) -> list[str]:
    """What duplicates are judged on: every turn but the system prompt, without a shared instruction."""
    texts = []
    for example in examples:
        if "question" in example.meta and example.meta.get("synthetic"):  # RAFT: not the documents around it
            texts.append(f"{example.meta['question']}\n\n{example.target}")
        elif example.messages is None:
            texts.append(example.text or "")
        else:
            texts.append("\n\n".join(m.content for m in example.messages if m.role != "system"))
    return strip_shared_prefix(texts)


def _deduplicate(examples: list[Example], project: Project) -> tuple[list[Example], dict[str, Any]]:
    settings = project.prepare.dedup
    report: dict[str, Any] = {
        "exact": 0,
        "near": 0,
        "threshold": settings.near_threshold,
        "exact_enabled": settings.exact,
    }
    if not examples or (not settings.exact and settings.near_threshold is None):
        return examples, report
    from tailorlm.prepare.dedup import drop_duplicates, exact_duplicates

    texts = _comparison_texts(examples)
    if settings.near_threshold is None:  # exact only
        duplicates = {index for group in exact_duplicates(texts) for index in group[1:]}
        kept = [e for i, e in enumerate(examples) if i not in duplicates]
        report["exact"] = len(examples) - len(kept)
        return kept, report
    result = drop_duplicates(texts, threshold=settings.near_threshold)
    report["exact"], report["near"] = result.dropped_exact, result.dropped_near
    return [examples[i] for i in sorted(result.keep)], report


def _empty_message(
    project: Project, made: int, drops: Counter[str], dedup: dict[str, Any], skipped: Counter[str]
) -> str:
    sources = ", ".join(f"{s.path} ({s.kind})" for s in project.sources)
    why = [f"{n} {reason}" for reason, n in (drops + skipped).items()]
    if dedup.get("exact") or dedup.get("near"):
        why.append(f"{dedup['exact']} exact and {dedup['near']} near duplicates")
    chunk_only = [s for s in project.sources if s.kind == "documents"] if project.task != "cpt" else []
    hint = (
        " Documents are only chunked for the chat task; add faq/email/table sources or use task: cpt."
        if chunk_only and made == 0 and project.prepare.synthesize is None
        else ""
    )
    return (
        f"no examples from the sources {sources}: {made} made"
        + (f", dropped: {', '.join(why)}" if why else "")
        + f". Nothing was written.{hint}"
    )


def _read_card(path: Path) -> dict[str, Any]:
    card_file = path / "card.json"
    return json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}


__all__ = ["PrepareError", "PrepareResult", "dataset_key", "prepare"]
