"""From the engine to a response: one request's generation carried to the event loop, then collected
into a whole answer or sent as server-sent events.

The event loop never generates: generation runs on the engine's thread, and tokens come back through
an asyncio queue. A streaming client that disconnects cancels its request; a non-streaming one is
watched for disconnects too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tailorlm.serve.engine import Delta, Engine, Failed, Finished, SamplingParams, ServedModel
from tailorlm.serve.errors import as_api_error, error_responses
from tailorlm.serve.routes.common import note
from tailorlm.serve.schemas import SamplingFields, Usage

COMPLETION_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 500, 503)
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        # OpenAPI 3.1: `schema` of an event stream describes one event.
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {"type": "string", "description": "A JSON chunk, an error object, or [DONE]."},
                        "event": {"type": "string", "enum": ["message"]},
                    },
                }
            }
        },
        "description": "JSON, or server-sent events when `stream` is true.",
    }
}
DISCONNECT_POLL_SECONDS = 0.5

# A chunk of the stream for a piece of text (None: no text, e.g. the last chunk) and a finish reason.
MakeChunk = Callable[[str | None, str | None], BaseModel]


class Answer(Protocol):
    """What `respond` sends: events ending in `Finished` or `Failed`, and a way to stop them."""

    def cancel(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Delta | Finished | Failed]: ...


class Generation:
    """One request's events, carried from the engine's thread to the event loop."""

    def __init__(
        self, engine: Engine, served: ServedModel, prompt_ids: list[int], params: SamplingParams, *, stream: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[Delta | Finished | Failed] = asyncio.Queue()

        def emit(event: Delta | Finished | Failed) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the server is shutting down
                loop.call_soon_threadsafe(self.events.put_nowait, event)

        # A whole answer needs no per-token hops between threads: its text comes in one piece.
        self.job = engine.submit(served, prompt_ids, params, emit, emit_interval=0.0 if stream else math.inf)

    def cancel(self) -> None:
        """Stop generating; wakes `__aiter__` with a cancelled Finished event."""
        if not self.job.cancelled.is_set():
            self.job.cancel()
            self.events.put_nowait(Finished("cancelled", len(self.job.prompt_ids), 0))

    async def __aiter__(self) -> AsyncIterator[Delta | Finished | Failed]:
        while True:
            event = await self.events.get()
            yield event
            if not isinstance(event, Delta):
                return


def usage(finished: Finished) -> Usage:
    return Usage(
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        total_tokens=finished.prompt_tokens + finished.completion_tokens,
    )


async def respond(
    request: Request,
    body: SamplingFields,
    generation: Answer,
    make_chunk: MakeChunk,
    make_final: Callable[[str, Finished], BaseModel],
    first_chunk: BaseModel | None = None,
) -> Any:
    """The answer as one response body (`make_final`), or as a stream of `make_chunk` events."""
    if body.stream:
        return StreamingResponse(
            stream(request, body, generation, make_chunk, first_chunk),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    text, finished = await collect(request, generation)
    note(
        request,
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        finish_reason=finished.reason,
        completion_text=text,
        cancelled=finished.reason == "cancelled",
    )
    return make_final(text, finished)


async def collect(request: Request, generation: Answer) -> tuple[str, Finished]:
    """The whole answer; the request is cancelled if the client goes away meanwhile."""

    async def watch() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(DISCONNECT_POLL_SECONDS)
        generation.cancel()

    watcher = asyncio.create_task(watch())
    parts: list[str] = []
    try:
        async for event in generation:
            if isinstance(event, Delta):
                parts.append(event.text)
            elif isinstance(event, Failed):
                error = as_api_error(event.error)
                note(request, error=error.message)
                raise error
            else:
                return "".join(parts), event
    finally:
        watcher.cancel()
        generation.cancel()
    raise AssertionError("unreachable: generation ended without a final event")


async def stream(
    request: Request,
    body: SamplingFields,
    generation: Answer,
    make_chunk: MakeChunk,
    first_chunk: BaseModel | None,
) -> AsyncIterator[str]:
    """Server-sent events: the chunks, a last one with the finish reason (and one with the usage when
    asked), then `[DONE]`; an error mid-stream is sent as an error object."""
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    leave_out = None if include_usage else {"usage"}  # `usage: null` on every chunk only when asked for

    def event(chunk: BaseModel) -> str:
        return _sse(chunk.model_dump(mode="json", exclude=leave_out))

    parts: list[str] = []
    done = False
    try:
        if first_chunk is not None:
            yield event(first_chunk)
        async for item in generation:
            if isinstance(item, Delta):
                if item.text:
                    parts.append(item.text)
                    yield event(make_chunk(item.text, None))
            elif isinstance(item, Failed):
                error = as_api_error(item.error)
                note(request, error=error.message)
                yield _sse(error.body())
                break
            else:
                note(
                    request,
                    prompt_tokens=item.prompt_tokens,
                    completion_tokens=item.completion_tokens,
                    finish_reason=item.reason,
                    completion_text="".join(parts),
                )
                yield event(make_chunk(None, item.reason))
                if include_usage:
                    yield event(make_chunk(None, None).model_copy(update={"choices": [], "usage": usage(item)}))
        yield _sse("[DONE]")
        done = True
    finally:
        generation.cancel()
        if not done:
            note(request, cancelled=True, completion_text="".join(parts))


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
