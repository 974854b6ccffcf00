"""Synthetic examples for the current model's weakest failure clusters, written by the local teacher: the
optional data step of a `tailorlm iterate` round (`iterate.synthesize`).

1. The failed answers of the current model (an evaluation's `results.jsonl` rows) are ranked by the size
   of their failure cluster — the largest error type first (low_overlap, hallucinated_number...), then
   the largest source document — and, within one, the lowest score first; the first `limit` with a
   reference answer are taken.
2. Each one becomes a passage (its question and the reference answer) that the teacher in
   `prepare.synthesize` is asked about exactly as prepare asks about a document chunk
   (`prepare.synth.synthesize`: the allowlist, the resumable cache, grounding, question dedup), so every
   new answer is grounded in the reference.
3. A new question that is one of the evaluated questions (case and spacing aside) is dropped: the cases
   that judge the round must stay unseen. The rest are written as chat examples rated desirable (they
   train in `sft` rounds as targets and in `kto` rounds as good answers), each naming the failed case,
   its cluster and the teacher in its `meta`.

The round adds the file as a `kind: dataset` source pinned to the train split, so prepare redacts,
cleans and deduplicates the examples like any other source, and the round's dataset version (its card
and lineage) records them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.config import Project
from tailorlm.formats.preference import KEY
from tailorlm.prepare.builders.documents import Chunk
from tailorlm.prepare.synth import synthesize
from tailorlm.progress import SILENT, Progress
from tailorlm.workspace import Workspace, atomic_write_text

TITLE = "A customer's question and the right answer"


@dataclass
class FailureSynthesis:
    """What the teacher added in one round: the file, the failed cases it was asked about, the counts."""

    path: Path | None = None
    examples: int = 0
    teacher: str = ""
    cases: list[str] = field(default_factory=list)  # the failed cases asked about, weakest cluster first
    clusters: dict[str, int] = field(default_factory=dict)  # failure cluster → failed cases asked about
    skipped: dict[str, int] = field(default_factory=dict)  # why teacher pairs were not kept

    def summary(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "teacher": self.teacher,
            "cases": self.cases,
            "clusters": self.clusters,
            "skipped": self.skipped,
            "file": str(self.path) if self.path else None,
        }


def _cluster(row: dict[str, Any]) -> str:
    return (row.get("errors") or ["low_overlap"])[0]


def weakest_failures(rows: list[dict[str, Any]], candidate: str, metric: str, limit: int) -> list[dict[str, Any]]:
    """`candidate`'s failed answers with a reference, largest failure cluster first (error type, then source),
    lowest `metric` first within one; at most `limit`."""
    failed = [r for r in rows if r["candidate"] == candidate and r.get("passed") is False and r.get("expected")]
    by_error = Counter(error for r in failed for error in (r.get("errors") or ["low_overlap"]))
    by_source = Counter(r.get("source") or "" for r in failed)

    def rank(row: dict[str, Any]) -> tuple[int, int, float, str]:
        biggest = max(by_error[e] for e in (row.get("errors") or ["low_overlap"]))
        score = (row.get("scores") or {}).get(metric)
        return (-biggest, -by_source[row.get("source") or ""], score if score is not None else 0.0, row["case"])

    return sorted(failed, key=rank)[:limit]


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def synthesize_for_failures(
    workspace: Workspace,
    project: Project,
    rows: list[dict[str, Any]],
    candidate: str,
    *,
    metric: str,
    limit: int,
    path: Path,
    progress: Progress = SILENT,
) -> FailureSynthesis:
    """New examples from the teacher for `candidate`'s weakest failures in `rows`, written to `path` (see the
    module docstring); nothing is written, and no teacher asked, when there is no failure to ask about."""
    chosen = weakest_failures(rows, candidate, metric, limit)
    result = FailureSynthesis(cases=[r["case"] for r in chosen], clusters=dict(Counter(_cluster(r) for r in chosen)))
    if not chosen:
        progress.say("synthesize: no failed answer with a reference to ask the teacher about")
        return result
    chunks = [
        Chunk(
            text=f"Question: {row['input']}\nAnswer: {row['expected']}",
            document_id=f"failure#{row['case']}",
            source_path=f"failed case {row['case']}",
            locator=row["case"],
            title=TITLE,
            heading_path=[],
            index=index,
            tokens=len(row["input"].split()) + len(row["expected"].split()),
        )
        for index, row in enumerate(chosen)
    ]
    progress.say(
        f"synthesize: asking the teacher about {len(chunks)} failed answer(s) of {candidate} ("
        + ", ".join(f"{n} {name}" for name, n in result.clusters.items())
        + ")"
    )
    synthesis = synthesize(workspace, project, chunks, progress=progress, file_of=lambda chunk: chunk.source_path)
    result.teacher = synthesis.model
    skipped = synthesis.skips()
    evaluated = {_normal(r["input"]) for r in rows}
    by_case = {row["case"]: row for row in chosen}
    lines = []
    for example in synthesis.examples:
        if _normal(example.input_text) in evaluated:
            skipped["synthetic: an evaluated question"] += 1
            continue
        case = by_case[example.source.removeprefix("failure#")]
        example.meta.update({"failed_case": case["case"], "cluster": _cluster(case), KEY: {"desirable": True}})
        lines.append(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
    result.examples, result.skipped = len(lines), dict(skipped)
    if lines:
        atomic_write_text(path, "".join(lines))
        result.path = path
    progress.say(f"synthesize: {result.examples} new example(s) for the weakest failure clusters")
    return result
