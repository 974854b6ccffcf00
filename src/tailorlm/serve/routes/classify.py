"""`POST /v1/classify`: labels with calibrated probabilities from a served classification head, and
`abstained: true` ("needs a person") when the model is less sure than its abstain threshold.

    {"model": "acme-tickets", "input": "My invoice is wrong"}            (or "input": [several texts])
    → {"model": ..., "data": [{"index": 0, "label": "billing", "confidence": 0.93, "abstained": false,
                               "probabilities": {...}}]}

Same API keys, scopes and rate limit as the chat endpoints; at most `MAX_ITEMS` texts per request.

`POST /v1/chat/completions` naming a classification model answers too, for clients that only speak chat
(`LabelAnswer`): the last user message is classified and the answer's text is the label, or
`ABSTAIN_ANSWER` when the model abstains — whole or streamed, like a generated answer.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tailorlm.serve.errors import APIError, error_responses
from tailorlm.serve.generation import Delta, Finished
from tailorlm.serve.routes.common import ChatCaller, ServerState, note

MAX_ITEMS = 256
ABSTAIN_ANSWER = "needs a person"  # the chat answer when the model is less sure than its abstain threshold
_LOCK = threading.Lock()  # one classification at a time: torch on CPU already uses every core

router = APIRouter(tags=["classification"])


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A served classification model.")
    input: str | list[str] = Field(description="One text, or a list of texts, to classify.")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Abstain below this confidence instead of the model's own threshold."
    )


class Classification(BaseModel):
    index: int
    label: str | None = Field(description="The predicted label; null when abstaining.")
    confidence: float = Field(description="Calibrated probability of the most likely label.")
    abstained: bool = Field(description="True when the model is not sure enough: route to a person.")
    probabilities: dict[str, float]
    labels: list[str] | None = Field(None, description="Multi-label models: every label over its threshold.")


class ClassifyResponse(BaseModel):
    object: str = "list"
    model: str
    data: list[Classification]


@router.post("/v1/classify", response_model=ClassifyResponse, responses=error_responses(400, 401, 403, 404, 429))
async def classify(body: ClassifyRequest, request: Request, who: ChatCaller, server: ServerState) -> ClassifyResponse:
    """Classify one text or a list of texts with a served classification head."""
    note(request, model=body.model)
    who.check_model(body.model)
    classifier = server.classifiers.get(body.model)
    if classifier is None:
        served = ", ".join(server.classifiers) or "none"
        raise APIError(
            404,
            f"model {body.model!r} is not a classification model served here; served classifiers: {served}",
            code="model_not_found",
            param="model",
        )
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise APIError(400, "input is an empty list: send at least one text", code="empty_input", param="input")
    if len(texts) > MAX_ITEMS:
        raise APIError(
            400, f"input has {len(texts)} texts; at most {MAX_ITEMS} per request", code="too_many_items", param="input"
        )
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise APIError(400, f"input[{empty[0]}] is empty: nothing to classify", code="empty_input", param="input")

    predictions = await run_in_threadpool(_predict, classifier, texts, body.min_confidence)
    return ClassifyResponse(
        model=body.model,
        data=[
            Classification(
                index=i,
                label=p.label,
                confidence=p.confidence,
                abstained=p.abstained,
                probabilities=p.probabilities,
                labels=p.labels or None,
            )
            for i, p in enumerate(predictions)
        ],
    )


def _predict(classifier: Any, texts: list[str], min_confidence: float | None = None) -> list[Any]:
    with _LOCK:
        return classifier.predict(texts, min_confidence=min_confidence)


class LabelAnswer:
    """A chat answer from a classification head: the label of the last user message (or `ABSTAIN_ANSWER`),
    as the events a generation yields, so the chat route sends it whole or streamed like any answer."""

    def __init__(self, text: str, prompt_tokens: int) -> None:
        self.text = text
        self.prompt_tokens = prompt_tokens

    @classmethod
    async def of(cls, classifier: Any, messages: Sequence[dict[str, str]]) -> LabelAnswer:
        text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if not text.strip():
            raise APIError(
                400,
                "a classification model answers the last user message, and there is none (or it is empty)",
                code="empty_input",
                param="messages",
            )
        [prediction] = await run_in_threadpool(_predict, classifier, [text])
        prompt_tokens = len(
            classifier.tokenizer(text, truncation=True, max_length=classifier.info.max_length)["input_ids"]
        )
        return cls(ABSTAIN_ANSWER if prediction.abstained else str(prediction.label), prompt_tokens)

    def cancel(self) -> None:
        """Nothing runs once the label is known."""

    async def __aiter__(self) -> AsyncIterator[Delta | Finished]:
        yield Delta(self.text)
        yield Finished("stop", self.prompt_tokens, 0)  # one forward pass: no token was generated
