"""Playground (`/playground`): chat with a registered model and its base model side by side, the same prompt
and system prompt, answers streamed as they are generated; rate an answer or write the corrected one,
stored as feedback for the next dataset version."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from tailorlm.registry import ModelMeta
from tailorlm.web.chat import BASE, Playground
from tailorlm.web.common import PageError, check_csrf, dashboard, page, require
from tailorlm.web.feedback import store_feedback

router = APIRouter()


class Message(BaseModel):
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str = Field(max_length=20_000)


class ChatRequest(BaseModel):
    model: str = Field(description="name@version of a registered model, or base:name@version for its base.")
    messages: list[Message] = Field(min_length=1, max_length=50)
    max_tokens: int = Field(128, ge=1, le=1024)
    temperature: float = Field(0.0, ge=0, le=2)
    retrieval: bool = Field(False, description="Add the passages the RAG baseline retrieves for the last question.")


class FeedbackRequest(BaseModel):
    model: str
    messages: list[Message] = Field(min_length=1, max_length=50)
    answer: str = Field(max_length=20_000)
    rating: str | None = Field(None, pattern="^(up|down)$")
    corrected: str | None = Field(None, max_length=20_000)
    decoding: dict[str, Any] = Field(default_factory=dict)
    pair: str | None = None


def playground(request: Request) -> Playground:
    state = request.app.state
    if getattr(state, "playground", None) is None:
        state.playground = Playground(dashboard(request).workspace)
    return state.playground


@router.get("/playground")
async def chat_page(request: Request, model: str = "") -> Response:
    workspace = dashboard(request).workspace
    models = workspace.registry.find("model", status="complete")
    chosen = next((m for m in models if f"{m.name}@{m.version}" == model), models[0] if models else None)
    system = chosen.meta_as(ModelMeta).system_prompt if chosen else ""
    return page(request, "playground.html.jinja", models=models, chosen=chosen, system=system or "")


async def _json(request: Request, model: type[BaseModel]) -> Any:
    check_csrf(request, None)  # the header X-CSRF-Token
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise PageError(400, problems) from None


def with_context(messages: list[dict[str, str]], passages: list[Any]) -> list[dict[str, str]]:
    """The conversation with the passages after the system prompt, as the RAG baseline asks."""
    from tailorlm.evaluate.baselines import with_passages

    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    return with_passages(system, [m for m in messages if m["role"] != "system"], passages)


@router.post("/api/playground/chat")
async def chat(request: Request) -> StreamingResponse:
    user = require(request, "viewer")
    body: ChatRequest = await _json(request, ChatRequest)
    reference = body.model.removeprefix(f"{BASE}:")
    dashboard(request).workspace.lookup(reference)  # unknown model: a 404 now, not a broken stream
    messages = [m.model_dump() for m in body.messages]

    async def events() -> AsyncIterator[str]:
        try:
            chosen = messages
            if body.retrieval:
                question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
                passages = await asyncio.to_thread(playground(request).retrieve, body.model, question)
                chosen = with_context(messages, passages)
                sources = [p.title or p.source for p in passages]
                yield f"event: context\ndata: {json.dumps({'sources': sources})}\n\n"
            async for text in playground(request).stream(
                body.model, chosen, max_tokens=body.max_tokens, temperature=body.temperature
            ):
                yield f"data: {json.dumps({'text': text})}\n\n"
            yield "event: done\ndata: {}\n\n"
        except Exception as error:  # shown in the answer's box, never a silent stop
            yield f"event: error\ndata: {json.dumps({'error': f'{type(error).__name__}: {error}'})}\n\n"

    dashboard(request).workspace.audit.append("playground.chat", inputs=[body.model], user=user.name)
    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


@router.post("/api/playground/feedback")
async def feedback(request: Request) -> JSONResponse:
    user = require(request, "editor")
    body: FeedbackRequest = await _json(request, FeedbackRequest)
    if body.rating is None and not (body.corrected or "").strip():
        raise PageError(400, "rate the answer (up or down) or write the corrected answer")
    stored = store_feedback(
        dashboard(request).workspace,
        model=body.model,
        messages=[m.model_dump() for m in body.messages],
        answer=body.answer,
        rating=body.rating,
        corrected=(body.corrected or "").strip() or None,
        reviewer=user.name,
        decoding=body.decoding,
        pair=body.pair,
    )
    return JSONResponse({"stored": stored})
