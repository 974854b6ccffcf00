"""The `prepare` stage, top to bottom: the project's sources → `datasets/<name>/<version>/`, registered.

1. check the project (`checks.problems`): every source path exists, its kind fits the task, ...;
2. ingest each source path (idempotent by content hash); any failed file stops here, nothing written;
3. skip when a complete dataset was built from the same file hashes and settings (unless `force`);
4. per source (sources.py): clean and redact the text its builder reads, run the builder, keep the
   chunks of a chunking builder; with `prepare.synthesize` a local teacher writes Q&A from the chunks;
5. quality filters, exact + near duplicate removal, the split by source, the contamination check;
6. write train/val/test.jsonl, card.json, card.md (and chunks.jsonl) into a staging folder renamed
   into place, then register the dataset (parents: the documents) and append an audit event.

SIGTERM or Ctrl-C stops it where it is (`tailorlm.lifecycle`): nothing half-written is left (the staging
folder is removed; one a SIGKILL left is removed by the next prepare), the teacher's replies so far are
kept for the next run, and a `prepare.interrupted` audit event says so.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm import offline
from tailorlm.checks import describe, problems
from tailorlm.config import Project
from tailorlm.dataset_splits import SPLITS
from tailorlm.documents import Ingest
from tailorlm.formats.examples import Example
from tailorlm.formats.preference import rejected_of
from tailorlm.lifecycle import signal_of, stop_signals
from tailorlm.prepare.builders import get_builder
from tailorlm.prepare.builders.documents import Chunk, base_tokenizer
from tailorlm.prepare.card import CardInputs, build_card, render_markdown
from tailorlm.prepare.clean import Scrubber, filter_examples
from tailorlm.prepare.errors import PrepareError
from tailorlm.prepare.sources import (
    Collected,
    Say,
    SourceInput,
    collect,
    ingest_source,
    synthesize_from_chunks,
)
from tailorlm.prepare.split import SplitError, contamination_report, split_examples, strip_shared_prefix
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import Artifact, DatasetMeta
from tailorlm.registry.store import now
from tailorlm.workspace import (
    Workspace,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    remove_abandoned_staging,
    sha256_file,
    stable_hash,
)

# Bump when a change to this stage changes the examples it makes: old datasets then stop matching.
PREPARE_FORMAT = 1


@dataclass
class PrepareResult:
    dataset: Artifact
    path: Path
    counts: dict[str, int]
    skipped: bool
    card: dict[str, Any]


def prepare(
    workspace: Workspace,
    project: Project,
    *,
    ingest: Ingest | None = None,
    progress: Progress = SILENT,
    force: bool = False,
) -> PrepareResult:
    """Build (or find) the dataset the project describes.

    Args:
        ingest: Reads a source's files into the workspace's documents: `tailorlm.ingest.ingest`, passed
            by the caller (the CLI, `tailorlm run`) because stages don't import each other. Needed
            unless every source's builder reads its files itself (`dataset`).

    Raises:
        PrepareError: a problem of the project (`checks.problems`: a missing source path, a kind that
            doesn't fit the task, ...), a file that failed to ingest, a builder that can't read a
            source, or no examples at all. Nothing is written then.
    """
    offline.enforce(project.allow_hosts)
    remove_abandoned_staging(workspace.dataset_dir(project.dataset_name, "v1").parent)  # a SIGKILL's leftovers
    try:
        with stop_signals():
            return _prepare(workspace, project, ingest=ingest, progress=progress, force=force)
    except KeyboardInterrupt as stop:
        workspace.audit.append("prepare.interrupted", dataset=project.dataset_name, signal=signal_of(stop))
        raise


def _prepare(
    workspace: Workspace, project: Project, *, ingest: Ingest | None, progress: Progress, force: bool
) -> PrepareResult:
    say = progress.say
    if not project.sources:
        raise PrepareError("the project has no sources: add files or folders under `sources:`")
    if wrong := problems(project, before="prepare", workspace=workspace):
        raise PrepareError(describe(wrong))
    inputs = [
        ingest_source(workspace, project, index, source, ingest, progress)
        for index, source in enumerate(project.sources)
    ]
    key = dataset_key(project, inputs)
    found = workspace.find_complete("dataset", key)
    if found is not None and not force:
        say(f"dataset {found.name}@{found.version} is up to date (inputs and settings unchanged)")
        path = workspace.path_of(found)
        return PrepareResult(found, path, dict(found.meta_as(DatasetMeta).counts), True, _read_card(path))

    tokenizer = base_tokenizer(project.base_model)
    collected = Collected(scrubber=Scrubber(project.prepare.pii, _ner_model(project)))
    for item in inputs:
        collect(workspace, project, item, collected, tokenizer, say)
    if project.prepare.synthesize is not None:
        if collected.chunks:
            synthesize_from_chunks(workspace, project, collected, tokenizer, progress)
        else:
            say("prepare.synthesize is set, but no documents source gave chunks: nothing to synthesize")
    _check_format(project, collected.examples)

    say(f"filtering {len(collected.examples)} examples")
    kept, drops = filter_examples(collected.examples, project.prepare)
    pinned = [e for e in kept if e.meta.get("split")]  # sources with `split:` — first, so dedup keeps them
    kept, dedup = _deduplicate(pinned + [e for e in kept if not e.meta.get("split")], project)
    kept = pinned + [e for e in kept if not e.meta.get("split")]
    if not kept:
        raise PrepareError(_empty_message(project, len(collected.examples), drops, dedup, collected.skipped))
    try:
        files = {f["path"]: f["sha256"] for item in inputs for f in item.files}
        free = [e for e in kept if not e.meta.get("split")]
        splits = (
            split_examples(free, project.prepare.split, stratify_by_label=project.task == "classify", files=files)
            if free
            else {split: [] for split in SPLITS}
        )
        for example in pinned:
            splits[example.meta["split"]].append(example)
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


def _ner_model(project: Project) -> Path | str | None:
    """A pipeline directory, `auto` (chosen per text by language) or None (`off`)."""
    model = project.prepare.pii_ner_model
    if model == "off":
        return None
    return model if model == "auto" else project.resolve(Path(model))


def dataset_key(project: Project, inputs: Sequence[SourceInput]) -> str:
    """What the dataset is built from: input file hashes, prepare settings, task, system prompt and the
    builder settings of each source (not its path: moving the project folder changes nothing)."""
    chunked = any(get_builder(item.source.kind).chunks for item in inputs)
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


def _write(
    workspace: Workspace,
    project: Project,
    splits: dict[str, list[Example]],
    chunks: Sequence[Chunk],
    card_inputs: CardInputs,
    inputs: Sequence[SourceInput],
    tokenizer: Any,
    say: Say,
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
    project: Project, splits: Mapping[str, Sequence[Example]], tokenizer: Any, inputs: Sequence[SourceInput]
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
            turns = [m.content for m in example.messages if m.role != "system"]
            rejected = rejected_of(example)  # preference pairs differ by their rejected answer too
            texts.append("\n\n".join(turns if rejected is None else [*turns, rejected]))
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
    chunk_only = [s for s in project.sources if get_builder(s.kind).chunks] if project.task != "cpt" else []
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
