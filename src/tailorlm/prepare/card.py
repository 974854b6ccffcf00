"""The dataset card: `card.json` (for tools) and `card.md` (for people), written next to the splits.

It says what is in the dataset and how it was made: counts per split, per source file and per label;
token lengths with the base model's tokenizer (min/p50/p90/p99/max and the share over
`train.max_length`); languages; personal data found by type; what was filtered or deduplicated and
why; the sha256 of every input file; the train/val/test contamination check; the version, the settings
hash and when it was built. The Markdown follows the datasheet sections (motivation, composition,
collection, preprocessing, uses, distribution, maintenance), kept short.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailorlm.config import Project
from tailorlm.formats.examples import Example
from tailorlm.formats.templates import tokenize_example
from tailorlm.prepare.builders.documents import WORDS_PER_TOKEN_ESTIMATE
from tailorlm.prepare.clean import DROP_REASONS, detect_language
from tailorlm.prepare.split import SPLITS
from tailorlm.workspace import stable_hash

MAX_MEASURED = 20_000  # examples tokenised for the length table; more are sampled evenly
LISTED_FILES = 10  # input files per source named in card.md (card.json has them all)


@dataclass
class CardInputs:
    """What the stage measured on the way, for the card."""

    key: str
    sources: list[dict[str, Any]]  # {path, kind, files: [{path, sha256, documents}], examples, chunks}
    pii_counts: Counter[str] = field(default_factory=Counter)
    builder_skips: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    dedup: dict[str, Any] = field(default_factory=dict)
    contamination: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # split file → sha256
    hash: str = ""
    chunks: int = 0
    warnings: list[str] = field(default_factory=list)


def settings_hash(project: Project) -> str:
    """Hash of the prepare settings (the card shows it; the dataset key adds inputs and sources)."""
    return stable_hash(project.prepare.model_dump(mode="json"))


def build_card(
    project: Project,
    name: str,
    version: str,
    splits: Mapping[str, Sequence[Example]],
    inputs: CardInputs,
    *,
    tokenizer: Any = None,
    created_at: str,
) -> dict[str, Any]:
    """The card as a JSON-ready dict (see the module docstring)."""
    everything = [example for split in SPLITS for example in splits.get(split, [])]
    labels = sorted({e.label for e in everything if e.label is not None})
    per_file: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        for example in splits.get(split, []):
            counts = per_file.setdefault(str(example.meta.get("file", "(unknown)")), dict.fromkeys(SPLITS, 0))
            counts[split] += 1
    return {
        "name": name,
        "version": version,
        "id": f"dataset-{name}-{version}",
        "created_at": created_at,
        "task": project.task,
        "base_model": str(project.base_model),
        "system_prompt": project.system_prompt,
        "hash": inputs.hash,
        "files": inputs.files,
        "key": inputs.key,
        "settings_hash": settings_hash(project),
        "settings": project.prepare.model_dump(mode="json"),
        "counts": {**{split: len(splits.get(split, [])) for split in SPLITS}, "total": len(everything)},
        "format": "text" if everything and not everything[0].is_chat else "messages",
        "sources": inputs.sources,
        "per_file": dict(sorted(per_file.items())),
        "labels": {
            label: {split: sum(e.label == label for e in splits.get(split, [])) for split in SPLITS} for label in labels
        },
        "tokens": token_report(splits, tokenizer, project.train.max_length),
        "languages": dict(Counter(_language(e) or "unknown" for e in everything).most_common()),
        "pii": {"mode": project.prepare.pii, "counts": dict(sorted(inputs.pii_counts.items()))},
        "filters": {
            "dropped": dict(sorted(inputs.drops.items())),
            "reasons": {reason: DROP_REASONS.get(reason, "") for reason in sorted(inputs.drops)},
            "skipped_by_recipes": dict(sorted(inputs.builder_skips.items())),
        },
        "dedup": inputs.dedup,
        "chunks": inputs.chunks,
        "split": {**project.prepare.split.model_dump(mode="json"), "stratified": project.task == "classify"},
        "contamination": inputs.contamination,
        "warnings": inputs.warnings,
    }


def _language(example: Example) -> str | None:
    if example.messages is None:
        return detect_language(example.text or "")
    return detect_language("\n".join(m.content for m in example.messages if m.role != "system"))


# --- token lengths -------------------------------------------------------------------------------


def token_lengths(examples: Sequence[Example], tokenizer: Any = None) -> list[int]:
    """Tokens per example as training sees them (chat template included), or estimated as words x 1.3."""
    if tokenizer is None:
        return [math.ceil(len(_all_text(e).split()) * WORDS_PER_TOKEN_ESTIMATE) for e in examples]
    return [len(tokenize_example(tokenizer, example, 10**9).input_ids) for example in examples]


def _all_text(example: Example) -> str:
    if example.messages is None:
        return example.text or ""
    return "\n".join(m.content for m in example.messages)


def length_summary(lengths: Sequence[int], max_length: int) -> dict[str, Any]:
    """min/p50/p90/p99/max (nearest rank) and how many are over `max_length`."""
    if not lengths:
        return {"count": 0}
    ordered = sorted(lengths)

    def rank(q: float) -> int:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    over = sum(length > max_length for length in ordered)
    return {
        "count": len(ordered),
        "min": ordered[0],
        "p50": rank(0.5),
        "p90": rank(0.9),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 1),
        "over_max_length": over,
        "over_max_length_share": round(over / len(ordered), 4),
    }


def token_report(splits: Mapping[str, Sequence[Example]], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Token-length distributions overall and per split."""
    total = sum(len(splits.get(split, [])) for split in SPLITS)
    step = max(1, math.ceil(total / MAX_MEASURED))
    per_split = {}
    measured: list[int] = []
    for split in SPLITS:
        sample = list(splits.get(split, []))[::step]
        lengths = token_lengths(sample, tokenizer)
        per_split[split] = length_summary(lengths, max_length)
        measured.extend(lengths)
    return {
        "counted_with": "the base model's tokenizer (chat template included)"
        if tokenizer is not None
        else f"an estimate: whitespace words x {WORDS_PER_TOKEN_ESTIMATE} (no tokenizer found at base_model)",
        "max_length": max_length,
        "sampled_every": step,
        "all": length_summary(measured, max_length),
        "per_split": per_split,
    }


# --- Markdown ------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(card: Mapping[str, Any]) -> str:
    """`card.md`: the card for people, in datasheet sections."""
    counts = card["counts"]
    tokens = card["tokens"]
    out = [f"# Dataset card: {card['name']} {card['version']}", ""]
    out += [
        f"`{card['id']}` · task `{card['task']}` · built {card['created_at']} · "
        f"hash `{card['hash'][:16]}` · settings `{card['settings_hash'][:16]}`",
        "",
    ]
    out += [
        "## Motivation",
        "",
        f"Fine-tuning `{card['base_model']}` for the `{card['task']}` task on the organisation's own data.",
        "",
    ]
    out += [
        "## Composition",
        "",
        f"{counts['total']} examples ({card['format']}): {counts['train']} train, {counts['val']} val, "
        f"{counts['test']} test.",
        "",
    ]
    if card["per_file"]:
        out += [
            _table(["file", *SPLITS], [[f, *(c[s] for s in SPLITS)] for f, c in card["per_file"].items()]),
            "",
        ]
    if card["labels"]:
        out += [
            _table(["label", *SPLITS], [[k, *(v[s] for s in SPLITS)] for k, v in card["labels"].items()]),
            "",
        ]
    rows = [
        [name, *(stats.get(k, "") for k in ("count", "min", "p50", "p90", "p99", "max", "over_max_length"))]
        for name, stats in [("all", tokens["all"]), *tokens["per_split"].items()]
    ]
    out += [
        f"Tokens per example, counted with {tokens['counted_with']}; training truncates at "
        f"{tokens['max_length']} (`train.max_length`):",
        "",
        _table(["split", "n", "min", "p50", "p90", "p99", "max", f"> {tokens['max_length']}"], rows),
        "",
    ]
    if card["languages"]:
        out += ["Languages: " + ", ".join(f"{k} {v}" for k, v in card["languages"].items()) + ".", ""]
    out += ["## Collection", ""]
    for source in card["sources"]:
        out.append(
            f"- `{source['path']}` ({source['kind']}): {len(source['files'])} file(s), "
            f"{source['examples']} example(s)" + (f", {source['chunks']} chunk(s)" if source.get("chunks") else "")
        )
        out += [f"  - `{f['path']}` sha256 `{f['sha256']}`" for f in source["files"][:LISTED_FILES]]
        if len(source["files"]) > LISTED_FILES:
            out.append(f"  - ... and {len(source['files']) - LISTED_FILES} more (card.json lists every file)")
    out += ["", "## Preprocessing", ""]
    pii = card["pii"]
    found = ", ".join(f"{k} {v}" for k, v in pii["counts"].items()) or "none found"
    out.append(
        f"- Cleaning: Unicode NFKC, whitespace, repeated page headers/footers. Personal data ({pii['mode']}): {found}."
    )
    filters = card["filters"]
    dropped = ", ".join(f"{k} {v}" for k, v in filters["dropped"].items()) or "none"
    skipped = ", ".join(f"{k} {v}" for k, v in filters["skipped_by_recipes"].items()) or "none"
    out.append(f"- Skipped by builders: {skipped}. Dropped by quality filters: {dropped}.")
    dedup = card["dedup"]
    out.append(
        f"- Duplicates dropped: {dedup.get('exact', 0)} exact, {dedup.get('near', 0)} near "
        f"(threshold {dedup.get('threshold')})."
    )
    split = card["split"]
    out.append(
        f"- Split by {split['by']} with seed {split['seed']} (test {split['test']}, val {split['val']}"
        + (", stratified by label" if split["stratified"] else "")
        + ")."
    )
    contamination = card["contamination"]
    if contamination:
        out.append(
            f"- Contamination check (MinHash ≥ {contamination.get('threshold')}): "
            + (", ".join(f"{k} {v}" for k, v in contamination.get("counts", {}).items()) or "nothing compared")
            + " near-identical input pair(s)."
        )
    if card["chunks"]:
        out.append(f"- {card['chunks']} document chunk(s) kept in chunks.jsonl for the RAG baseline and synthesis.")
    out += [
        "",
        "## Uses",
        "",
        f"Training (`train`), validation loss (`val`) and evaluation (`test`) of `{card['task']}` models in "
        "this workspace. Not for models shared outside the organisation unless the sources allow it.",
        "",
    ]
    out += [
        "## Distribution",
        "",
        "Stays in this workspace; nothing is uploaded. Files: "
        + ", ".join(f"`{k}` (`{v[:16]}`)" for k, v in card["files"].items())
        + ".",
        "",
    ]
    out += [
        "## Maintenance",
        "",
        "Rebuilt by `tailorlm prepare` when the input files or settings change (a new version; "
        f"this one's key is `{card['key'][:16]}`); old versions are kept.",
        "",
    ]
    if card["warnings"]:
        out += ["## Warnings", "", *(f"- {w}" for w in card["warnings"]), ""]
    return "\n".join(out)
