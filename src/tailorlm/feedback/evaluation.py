"""Feedback on an evaluation's answers: a reviewer reading the report rates or corrects one item.

    from_evaluation(workspace, "eval-…", "a1b2c3", rating="down", corrected="…", reviewer="ana")

The item's question and the candidate's answer are read from the evaluation's `results.jsonl`; the record's
model is the run that answered, its source `evaluation`. Only the last user turn is kept per case in the
results, so that is the conversation recorded (with the evaluation's system prompt, when it had one).
"""

from __future__ import annotations

from typing import Any

from tailorlm.errors import NotFound
from tailorlm.feedback.records import FeedbackRecord, Rating
from tailorlm.feedback.store import record
from tailorlm.registry import EvaluationMeta
from tailorlm.workspace import Workspace, read_jsonl


def from_evaluation(
    workspace: Workspace,
    evaluation: str,
    case: str,
    *,
    candidate: str | None = None,
    rating: Rating | None = None,
    corrected: str | None = None,
    reason: str | None = None,
    tags: list[str] | None = None,
    reviewer: str | None = None,
) -> FeedbackRecord:
    """Store a reviewer's rating or correction of one evaluated answer (default candidate: the fine-tuned
    run's, or the only run's when several were compared)."""
    artifact = workspace.registry.get(evaluation)
    meta = artifact.meta_as(EvaluationMeta)
    rows = read_jsonl(workspace.path_of(artifact) / "results.jsonl")
    wanted = candidate or ("finetuned" if "finetuned" in meta.candidates else (meta.runs[-1] if meta.runs else None))
    found = [r for r in rows if r["case"] == case and r["candidate"] == wanted]
    if not found:
        cases = sorted({r["case"] for r in rows})
        raise NotFound(
            f"{evaluation} has no answer of {wanted!r} to case {case!r}",
            hint=f"candidates: {', '.join(meta.candidates)}; cases: {', '.join(cases[:10])}"
            + (" …" if len(cases) > 10 else ""),
        )
    row: dict[str, Any] = found[0]
    model = wanted if wanted in meta.runs else (meta.runs[0] if len(meta.runs) == 1 else wanted)
    item = FeedbackRecord(
        messages=[{"role": "user", "content": row["input"]}],
        answer=row["output"],
        rating=rating,
        corrected=corrected,
        reason=reason,
        tags=[*(tags or []), f"case:{case}"],
        reviewer=reviewer,
        source="evaluation",
        model=model,
        decoding={"evaluation": evaluation},
    )
    return record(workspace, item)
