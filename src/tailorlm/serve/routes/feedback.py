"""`POST /v1/feedback`: a reviewer's rating or correction of an answer the server gave, by its completion id.

The chat and completion routes note each answer's id, conversation, model and decoding; the server keeps
the latest `RecentAnswers.capacity` of them in memory (texts are written to disk only when feedback
arrives, or with `log_texts`), and the request log records every id. Feedback on an answer still in
memory needs only the id and a rating; an older one (known to the request log) needs its `messages` and
`answer` in the body. Same keys as the chat endpoints: a chat key rates the answers it was given, for
the models it may use; an admin key any answer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
from fastapi import APIRouter, Request
from pydantic import BaseModel, BeforeValidator, Field, Strict, ValidationError
from starlette.concurrency import run_in_threadpool

from tailorlm.feedback import FeedbackRecord
from tailorlm.serve.errors import APIError, error_responses
from tailorlm.serve.routes.common import ChatCaller, ServerState, note
from tailorlm.serve.schemas import STRICT, not_text_or_boolean

router = APIRouter(tags=["feedback"])


@dataclass
class Answer:
    """What the server answered under one completion id."""

    completion_id: str
    served: str | None  # the name it was asked for (what keys are limited to)
    model: str | None  # the registered model behind it (acme@v2), when known
    messages: list[dict[str, str]]
    answer: str
    decoding: dict[str, Any]
    key_id: str | None
    time: float = field(default_factory=time.time)


class RecentAnswers:
    """The latest answers by completion id (a bounded, thread-safe memory; the oldest are forgotten)."""

    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, noted: dict[str, Any], key_id: str | None) -> None:
        """Keep the answer a request noted (its id, messages and text), if it noted them all."""
        if not noted.get("completion_id") or noted.get("messages") is None or noted.get("completion_text") is None:
            return
        answer = Answer(
            noted["completion_id"],
            noted.get("model"),
            noted.get("source") or noted.get("model"),
            noted["messages"],
            noted["completion_text"],
            noted.get("decoding") or {},
            key_id,
        )
        with self._lock:
            self._answers[answer.completion_id] = answer
            while len(self._answers) > self.capacity:
                self._answers.popitem(last=False)

    def get(self, completion_id: str) -> Answer | None:
        with self._lock:
            return self._answers.get(completion_id)


def decoding_of(params: Any) -> dict[str, Any]:
    """The sampling settings an answer was generated with, as recorded with feedback."""
    return {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "seed": params.seed,
        "stop": list(params.stop),
    }


def logged_completion(database: Path, completion_id: str) -> dict[str, Any] | None:
    """The request-log row of an answer (its key and model), or None."""
    connection = sqlite3.connect(database, timeout=30)
    try:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT key_id, model FROM request_log WHERE completion_id = ? ORDER BY id DESC LIMIT 1", (completion_id,)
        ).fetchone()
        return dict(row) if row else None
    finally:
        connection.close()


Score = Annotated[int, Strict(False), annotated_types.Interval(ge=1, le=5), BeforeValidator(not_text_or_boolean)]
Rating = Literal["up", "down"] | Score


class FeedbackRequest(BaseModel):
    model_config = STRICT  # as every request body: "3" or true is not a rating

    completion_id: str = Field(description="The `id` of the chat completion or completion being reviewed.")
    rating: Rating | None = Field(None, description="up or down, or 1 (bad) to 5 (good); optional with `corrected`.")
    corrected: str | None = Field(None, description="The answer the reviewer wanted instead.")
    reason: str | None = Field(None, description="Why, in the reviewer's words.")
    tags: list[str] = Field(default_factory=list, description="Short labels, e.g. tone, wrong-fact.")
    reviewer: str | None = Field(None, description="Who reviewed (default: the API key's id).")
    messages: list[dict[str, str]] | None = Field(
        None, description="The conversation, when the server no longer holds the answer in memory."
    )
    answer: str | None = Field(None, description="The answer given, when the server no longer holds it.")


class FeedbackReceipt(BaseModel):
    id: str = Field(description="The stored feedback's id (fb-...).")
    object: Literal["feedback"] = "feedback"
    completion_id: str
    model: str | None = None


RecordFeedback = Callable[[FeedbackRecord], FeedbackRecord]


@router.post(
    "/v1/feedback", response_model=FeedbackReceipt, responses=error_responses(400, 401, 403, 404, 422, 429, 503)
)
async def feedback(body: FeedbackRequest, request: Request, who: ChatCaller, server: ServerState) -> Any:
    """Rate or correct an answer the server gave, by its completion id."""
    if server.feedback is None:
        raise APIError(503, "this server does not store feedback", code="feedback_unavailable")
    answer = server.answers.get(body.completion_id)
    if answer is not None and who.scope != "admin" and answer.key_id != who.key_id:
        answer = None  # another key's answer: as unknown as one never given
    if answer is None:
        logged = await run_in_threadpool(server.logged_completion, body.completion_id)
        if logged is None or (who.scope != "admin" and logged.get("key_id") != who.key_id):
            raise APIError(
                404,
                f"no answer with completion id {body.completion_id!r}",
                param="completion_id",
                code="completion_not_found",
            )
        if body.messages is None or body.answer is None:
            raise APIError(
                400,
                "this answer is no longer held in memory: send its `messages` and `answer` with the feedback",
                param="messages",
                code="missing_answer",
            )
        served = logged.get("model")
        answer = Answer(body.completion_id, served, served, body.messages, body.answer, {}, logged.get("key_id"))
    if answer.served:
        who.check_model(answer.served)
    note(request, model=answer.served)
    try:
        item = FeedbackRecord(
            messages=answer.messages,
            answer=answer.answer if body.answer is None else body.answer,
            rating=body.rating,
            corrected=body.corrected,
            reason=body.reason,
            tags=body.tags,
            reviewer=body.reviewer or who.key_id,
            source="api",
            model=answer.model,
            decoding=answer.decoding,
            completion_id=body.completion_id,
        )
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        raise APIError(
            400, f"{'.'.join(str(p) for p in problem['loc']) or 'feedback'}: {problem['msg']}", code="invalid_feedback"
        ) from None
    stored = await run_in_threadpool(server.feedback, item)
    return FeedbackReceipt(id=stored.id, completion_id=body.completion_id, model=answer.model)
