"""The playground's ratings and corrections, stored through `tailorlm.feedback` (source `playground`): the
feedback builder of `prepare` turns them into training examples for the next dataset version."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tailorlm.errors import UserError
from tailorlm.feedback import FeedbackRecord, record
from tailorlm.workspace import Workspace


class FeedbackError(UserError, ValueError):
    """A rating or correction the feedback store refuses (e.g. a conversation not ending with the user)."""


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
        item = FeedbackRecord(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'feedback'}: {e['msg']}" for e in error.errors())
        raise FeedbackError(problems) from None
    stored = record(workspace, item, audit=False)
    workspace.audit.append("feedback.playground", inputs=[model], outputs=[stored.id], user=reviewer)
    return stored.id
