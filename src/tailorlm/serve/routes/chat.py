"""`POST /v1/chat/completions`: a chat answer rendered with the same template as in training."""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tailorlm.serve.engine import Finished
from tailorlm.serve.errors import APIError
from tailorlm.serve.routes.answering import COMPLETION_ERRORS, SSE_RESPONSE, Generation, respond, usage
from tailorlm.serve.routes.classify import LabelAnswer
from tailorlm.serve.routes.common import ChatCaller, ServerState, note, sampling, served_for
from tailorlm.serve.routes.feedback import decoding_of
from tailorlm.serve.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
)

router = APIRouter(tags=["completions"])


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses={**COMPLETION_ERRORS, **SSE_RESPONSE})
async def chat_completions(body: ChatCompletionRequest, request: Request, who: ChatCaller, server: ServerState) -> Any:
    """A chat answer, rendered with the same template as in training; a classification model answers with
    the label of the last user message."""
    note(request, model=body.model)
    classifier = server.classifiers.get(body.model)  # a classification head answers with its label
    if classifier is not None:
        who.check_model(body.model)
    else:
        served = served_for(server, body.model, who)
    if body.tools:
        raise APIError(400, "tools are not supported by this server", param="tools", code="unsupported_value")
    messages = [m.as_template_message() for m in body.messages]
    note(request, prompt_text="\n".join(f"{m['role']}: {m['content']}" for m in messages))
    answer_id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    generation: Generation | LabelAnswer
    if classifier is not None:
        name = body.model
        generation = await LabelAnswer.of(classifier, messages)
        note(request, completion_id=answer_id, messages=messages, source=name)
    else:
        name = served.name
        engine = server.engine
        assert engine is not None  # served_for refuses every model when there is no engine
        with engine.incoming():
            prompt_ids = await run_in_threadpool(engine.chat_prompt, served, messages)
            params = sampling(server, body, served, len(prompt_ids))
            generation = Generation(engine, served, prompt_ids, params, stream=body.stream)
        note(request, completion_id=answer_id, messages=messages, source=served.source, decoding=decoding_of(params))

    def chunk(text: str | None, finish_reason: str | None, delta: ChatDelta | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=answer_id,
            created=created,
            model=name,
            choices=[ChatChunkChoice(index=0, delta=delta or ChatDelta(content=text), finish_reason=finish_reason)],
        )

    def final(text: str, finished: Finished) -> ChatCompletion:
        return ChatCompletion(
            id=answer_id,
            created=created,
            model=name,
            choices=[ChatChoice(index=0, message=AssistantMessage(content=text), finish_reason=finished.reason)],
            usage=usage(finished),
        )

    first = chunk(None, None, ChatDelta(role="assistant", content=""))
    return await respond(request, body, generation, chunk, final, first)
