"""The playground's ratings and corrections, stored through `tailorlm.feedback` (source `playground`) when
it is installed, else as `feedback.playground` audit events carrying the same fields, which it can import."""

from __future__ import annotations

from typing import Any

from tailorlm.workspace import Workspace


def store_feedback(
    workspace: Workspace,
    *,
    model: str,
    messages: list[dict[str, str]],
    answer: str,
    rating: str | None,
    corrected: str | None,
    reviewer: str,
    decoding: dict[str, Any],
    pair: str | None = None,
) -> str:
    """Store one review; returns its id."""
    fields: dict[str, Any] = {
        "messages": messages,
        "answer": answer,
        "rating": rating,
        "corrected": corrected,
        "reviewer": reviewer,
        "source": "playground",
        "model": model,
        "decoding": decoding,
        "pair": pair,
    }
    try:
        from tailorlm.feedback import FeedbackRecord, record  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        event = workspace.audit.append("feedback.playground", inputs=[model], user=reviewer, record=fields)
        return event["hash"][:16]
    return record(workspace, FeedbackRecord(**fields)).id
