"""`POST /v1/completions`: a raw text continuation (no chat template)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tailorlm.serve.engine import Finished
from tailorlm.serve.errors import APIError, as_api_error
from tailorlm.serve.routes.answering import COMPLETION_ERRORS, SSE_RESPONSE, Generation, respond, usage
from tailorlm.serve.routes.common import ChatCaller, ServerState, note, sampling, served_for
from tailorlm.serve.routes.feedback import decoding_of
from tailorlm.serve.schemas import Completion, CompletionChunk, CompletionRequest, TextChoice

router = APIRouter(tags=["completions"])


@router.post("/v1/completions", response_model=Completion, responses={**COMPLETION_ERRORS, **SSE_RESPONSE})
async def completions(body: CompletionRequest, request: Request, who: ChatCaller, server: ServerState) -> Any:
    """A raw text continuation (no chat template)."""
    note(request, model=body.model)
    served = served_for(server, body.model, who)
    if isinstance(body.prompt, list) and len(body.prompt) != 1:
        raise APIError(
            400,
            f"prompt must be a string or a list of exactly one string (got {len(body.prompt)})",
            param="prompt",
            code="unsupported_value",
        )
    if body.echo or body.suffix:
        raise APIError(400, "echo and suffix are not supported by this server", param="echo", code="unsupported_value")
    prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
    note(request, prompt_text=prompt)
    engine = server.engine
    assert engine is not None  # served_for refuses every model when there is no engine
    with engine.incoming():
        try:
            prompt_ids = await run_in_threadpool(engine.text_prompt, served, prompt)
        except Exception as error:
            api_error = as_api_error(error)
            api_error.param = "prompt" if api_error.param == "messages" else api_error.param
            raise api_error from None
        params = sampling(server, body, served, len(prompt_ids))
        generation = Generation(engine, served, prompt_ids, params, stream=body.stream)
    answer_id, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())
    messages = [{"role": "user", "content": prompt}]
    note(request, completion_id=answer_id, messages=messages, source=served.source, decoding=decoding_of(params))

    def chunk(text: str | None, finish_reason: str | None) -> CompletionChunk:
        return CompletionChunk(
            id=answer_id,
            created=created,
            model=served.name,
            choices=[TextChoice(index=0, text=text or "", finish_reason=finish_reason)],
        )

    def final(text: str, finished: Finished) -> Completion:
        return Completion(
            id=answer_id,
            created=created,
            model=served.name,
            choices=[TextChoice(index=0, text=text, finish_reason=finished.reason)],
            usage=usage(finished),
        )

    return await respond(request, body, generation, chunk, final)
