"""The feedback record: what a reviewer said about one answer, with everything needed to learn from it.

A record holds the conversation the model was asked (`messages`, ending with the user's turn), the
answer it gave, which model and decoding gave it, the reviewer's rating (`up`/`down`, or 1–5), an
optional corrected answer, a reason and tags, who reviewed and when, and where the record came from.
Answers compared side by side share a `pair` id. The id is a hash of the content, so the same
feedback imported twice is stored once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailorlm.formats.examples import Message

Thumb = Literal["up", "down"]
Rating = Thumb | Annotated[int, Field(ge=1, le=5)]
FeedbackSource = Literal["api", "file", "evaluation", "playground"]
SOURCES: tuple[str, ...] = ("api", "file", "evaluation", "playground")

GOOD_SCORE = 0.75  # a rating at or above this (up, 4, 5) marks a desirable answer
BAD_SCORE = 0.25  # at or below this (down, 1, 2) an undesirable one; 3 is neutral


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FeedbackRecord(BaseModel):
    """One reviewer's judgement of one answer."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field("", description="fb-<hash of the content>; set when empty.")
    messages: list[Message] = Field(
        min_length=1, description="The conversation the model answered, ending with the user's turn."
    )
    answer: str = Field(description="The model's answer that was reviewed (may be empty: an empty answer is bad).")
    rating: Rating | None = Field(None, description="up or down, or 1 (bad) to 5 (good); optional with a correction.")
    corrected: str | None = Field(None, description="The answer the reviewer wanted instead.")
    reason: str | None = Field(None, description="Why, in the reviewer's words.")
    tags: list[str] = Field(default_factory=list, description="Short labels, e.g. tone, wrong-fact, missing-step.")
    reviewer: str | None = Field(None, description="Who gave it (a name, or the API key id).")
    time: str = Field(default_factory=_now, description="When, UTC ISO 8601.")
    source: FeedbackSource = Field("file", description="Where it came from: api, file, evaluation or playground.")
    model: str | None = Field(None, description="The model that answered (name@version or the served name).")
    decoding: dict[str, Any] = Field(default_factory=dict, description="How it answered: temperature, max_tokens...")
    completion_id: str | None = Field(None, description="The id the server returned with the answer.")
    pair: str | None = Field(None, description="Shared by answers to one prompt that were compared side by side.")

    @model_validator(mode="after")
    def _check(self) -> FeedbackRecord:
        if self.messages[-1].role != "user":
            raise ValueError("messages must end with the user's turn (the answer is given in `answer`)")
        if self.rating is None and not (self.corrected or "").strip():
            raise ValueError("give a rating, a corrected answer, or both")
        if self.corrected is not None and not self.corrected.strip():
            self.corrected = None
        if not self.id:
            self.id = "fb-" + hashlib.sha256(self.content_key().encode()).hexdigest()[:16]
        return self

    def content_key(self) -> str:
        """What makes two records the same feedback (the time it was stored is not part of it)."""
        return json.dumps(
            [
                [[m.role, m.content] for m in self.messages],
                self.answer,
                self.rating,
                self.corrected,
                self.reviewer,
                self.pair,
                self.completion_id,
            ],
            ensure_ascii=False,
        )

    @property
    def prompt(self) -> list[dict[str, str]]:
        return [m.model_dump() for m in self.messages]

    @property
    def score(self) -> float | None:
        """The rating on 0..1: down 0, up 1, 1–5 → 0, 0.25, ..., 1; None without a rating."""
        if self.rating is None:
            return None
        if self.rating == "up":
            return 1.0
        if self.rating == "down":
            return 0.0
        return (int(self.rating) - 1) / 4

    @property
    def desirable(self) -> bool | None:
        """True for a good answer, False for a bad one, None for neutral or unrated."""
        score = self.score
        if score is None:
            return None
        if score >= GOOD_SCORE:
            return True
        if score <= BAD_SCORE:
            return False
        return None


def prompt_key(messages: list[dict[str, str]] | list[Message]) -> str:
    """A short stable hash of a prompt: the unit kept on one side of a split, and what groups answers."""
    turns = [[m["role"], m["content"]] if isinstance(m, dict) else [m.role, m.content] for m in messages]
    return hashlib.sha256(json.dumps(turns, ensure_ascii=False).encode()).hexdigest()[:16]
