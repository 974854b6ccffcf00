"""The OpenAI-compatible HTTP API (FastAPI) over an `Engine`.

Endpoints: `GET /health`, `GET /v1/models`, `GET /v1/models/{model}`, `POST /v1/chat/completions`,
`POST /v1/completions` (both streaming as server-sent events or not), and, for admin keys,
`GET|POST /v1/adapters` and `DELETE /v1/adapters/{name}`. Errors are OpenAI-shaped (see `errors.py`).

The event loop never generates: prompts are rendered and tokenised in a worker thread, generation
runs on the engine's thread, and tokens come back through an asyncio queue. A streaming client that
disconnects cancels its request; a non-streaming one is watched for disconnects too.
"""

import asyncio
import contextlib
import json
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from tailorlm.modeling import ModelRef
from tailorlm.serve.auth import InvalidKey, KeyStore
from tailorlm.serve.engine import Delta, Engine, Failed, Finished, SamplingParams, ServedModel
from tailorlm.serve.errors import APIError, as_api_error, error_responses, install_error_handlers
from tailorlm.serve.limits import BodySizeLimit, Limits, RateLimiter
from tailorlm.serve.request_log import RequestLog, RequestLogMiddleware
from tailorlm.serve.schemas import (
    AdapterInfo,
    AdapterList,
    AdapterRequest,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    Deleted,
    Health,
    ModelCard,
    ModelList,
    SamplingFields,
)
from tailorlm.workspace import NotFound

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


@dataclass(frozen=True)
class Caller:
    """Who is calling: their key (None without auth) and what it allows."""

    key_id: str | None
    scope: str
    models: tuple[str, ...] | None

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise APIError(
                403,
                f"this API key may only use: {', '.join(self.models)} (asked for {model!r})",
                code="model_not_allowed",
                param="model",
            )


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


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(
    engine: Engine,
    *,
    auth: KeyStore | None,
    limits: Limits,
    request_log: RequestLog | None,
    resolve_model: Callable[[str], ModelRef] | None = None,
    audit: Callable[..., Any] | None = None,
) -> FastAPI:
    """The API for `engine`.

    Args:
        auth: Verifies API keys; None serves without keys (`serve()` allows that on loopback only).
        limits: Body size, max tokens per answer, rate limit.
        request_log: Where requests are recorded; None records nothing.
        resolve_model: Turns a registered-model reference into a `ModelRef` for `POST /v1/adapters`;
            None refuses adapter loads.
        audit: Called as `audit(action, inputs=..., **details)` when adapters are loaded or unloaded
            (`serve()` passes the workspace's audit log).
    """
    app = FastAPI(
        title="TailorLM",
        version=_version(),
        description="OpenAI-compatible API for models fine-tuned with TailorLM. See docs/serve.md.",
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    if request_log is not None:
        app.add_middleware(RequestLogMiddleware, log=request_log)
    limiter = RateLimiter(limits.rate_limit_per_minute)
    bearer = HTTPBearer(auto_error=False, description="An API key from `tailorlm keys create`.")

    def caller(scope: str) -> Callable[..., Any]:
        async def dependency(
            request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
        ) -> Caller:
            if auth is None:
                who = Caller(key_id=None, scope="admin", models=None)
                bucket = request.client.host if request.client else "local"
            else:
                if credentials is None:
                    raise APIError(
                        401, "missing API key: send the header `Authorization: Bearer <key>`", code="missing_api_key"
                    )
                try:
                    key = auth.verify(credentials.credentials)
                except InvalidKey as error:
                    raise APIError(401, str(error), code="invalid_api_key") from None
                who = Caller(key_id=key.id, scope=key.scope, models=key.models)
                bucket = key.id
                request.state.key_id = key.id
            if scope == "admin" and who.scope != "admin":
                raise APIError(
                    403,
                    "this API key has scope 'chat'; managing adapters needs an 'admin' key",
                    code="insufficient_scope",
                )
            wait = limiter.take(bucket)
            if wait:
                raise APIError(
                    429,
                    f"rate limit of {limits.rate_limit_per_minute} requests per minute reached; retry in {wait:.1f} s",
                    code="rate_limit_exceeded",
                    headers={"retry-after": limiter.retry_after(wait)},
                )
            return who

        return dependency

    ChatCaller = Annotated[Caller, Depends(caller("chat"))]
    AdminCaller = Annotated[Caller, Depends(caller("admin"))]

    def served_for(model: str, who: Caller) -> ServedModel:
        who.check_model(model)
        return engine.get(model)

    def sampling(body: SamplingFields, served: ServedModel, prompt_tokens: int) -> SamplingParams:
        if body.n != 1:
            raise APIError(
                400,
                f"only n=1 is supported (got n={body.n}); send separate requests",
                param="n",
                code="unsupported_value",
            )
        if body.logprobs:
            raise APIError(400, "logprobs are not supported by this server", param="logprobs", code="unsupported_value")
        requested = body.requested_max_tokens()
        room = served.context_length - prompt_tokens
        max_tokens = min(requested or limits.max_tokens_cap, limits.max_tokens_cap, room)
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=body.stop_list(),
            ignore_eos=body.ignore_eos,
        )

    def note(request: Request, **values: Any) -> None:
        """What the request log records for this request."""
        request.scope.setdefault("state", {}).setdefault("log", {}).update(values)

    async def collect(request: Request, generation: Generation) -> tuple[str, Finished]:
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

    async def respond(
        request: Request,
        body: SamplingFields,
        generation: Generation,
        make_chunk: Callable[..., dict[str, Any]],
        make_final: Callable[[str, Finished], Any],
        first_delta: dict[str, Any] | None,
    ) -> Any:
        if body.stream:
            return StreamingResponse(
                stream(request, body, generation, make_chunk, first_delta),
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

    async def stream(
        request: Request,
        body: SamplingFields,
        generation: Generation,
        make_chunk: Callable[..., dict],
        first_delta: dict[str, Any] | None,
    ) -> AsyncIterator[str]:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        extra = {"usage": None} if include_usage else {}
        parts: list[str] = []
        done = False
        try:
            if first_delta is not None:
                yield _sse({**make_chunk(first_delta, None), **extra})
            async for event in generation:
                if isinstance(event, Delta):
                    if event.text:
                        parts.append(event.text)
                        yield _sse({**make_chunk(event.text, None), **extra})
                elif isinstance(event, Failed):
                    error = as_api_error(event.error)
                    note(request, error=error.message)
                    yield _sse(error.body())
                    break
                else:
                    note(
                        request,
                        prompt_tokens=event.prompt_tokens,
                        completion_tokens=event.completion_tokens,
                        finish_reason=event.reason,
                        completion_text="".join(parts),
                    )
                    yield _sse({**make_chunk(None, event.reason), **extra})
                    if include_usage:
                        usage = _usage(event)
                        yield _sse({**make_chunk(None, None), "choices": [], "usage": usage})
            yield _sse("[DONE]")
            done = True
        finally:
            generation.cancel()
            if not done:
                note(request, cancelled=True, completion_text="".join(parts))

    # routes -------------------------------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["server"])
    async def health() -> Health:
        """Liveness: always answers while the server runs (no key needed)."""
        return Health(models=engine.names(), queued=engine.queued, stats=dict(engine.stats))

    @app.get("/v1/models", response_model=ModelList, responses=error_responses(401, 429), tags=["models"])
    async def list_models(who: ChatCaller) -> ModelList:
        """The models this key may use."""
        cards = [
            ModelCard(id=m.name, created=m.created)
            for m in engine.models()
            if who.models is None or m.name in who.models
        ]
        return ModelList(data=cards)

    @app.get(
        "/v1/models/{model}", response_model=ModelCard, responses=error_responses(401, 403, 404, 429), tags=["models"]
    )
    async def get_model(model: str, who: ChatCaller) -> ModelCard:
        served = served_for(model, who)
        return ModelCard(id=served.name, created=served.created)

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        responses={**COMPLETION_ERRORS, **SSE_RESPONSE},
        tags=["completions"],
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request, who: ChatCaller) -> Any:
        """A chat answer, rendered with the same template as in training."""
        note(request, model=body.model)
        served = served_for(body.model, who)
        if body.tools:
            raise APIError(400, "tools are not supported by this server", param="tools", code="unsupported_value")
        messages = [m.as_template_message() for m in body.messages]
        note(request, prompt_text="\n".join(f"{m['role']}: {m['content']}" for m in messages))
        with engine.incoming():
            prompt_ids = await run_in_threadpool(engine.chat_prompt, served, messages)
            params = sampling(body, served, len(prompt_ids))
            generation = Generation(engine, served, prompt_ids, params, stream=body.stream)
        answer_id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())

        def chunk(content: str | dict[str, Any] | None, finish_reason: str | None) -> dict[str, Any]:
            delta = content if isinstance(content, dict) else {} if content is None else {"content": content}
            return {
                "id": answer_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": served.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            }

        def final(text: str, finished: Finished) -> dict[str, Any]:
            return {
                "id": answer_id,
                "object": "chat.completion",
                "created": created,
                "model": served.name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finished.reason,
                        "logprobs": None,
                    }
                ],
                "usage": _usage(finished),
            }

        return await respond(request, body, generation, chunk, final, {"role": "assistant", "content": ""})

    @app.post(
        "/v1/completions",
        response_model=Completion,
        responses={**COMPLETION_ERRORS, **SSE_RESPONSE},
        tags=["completions"],
    )
    async def completions(body: CompletionRequest, request: Request, who: ChatCaller) -> Any:
        """A raw text continuation (no chat template)."""
        note(request, model=body.model)
        served = served_for(body.model, who)
        if isinstance(body.prompt, list) and len(body.prompt) != 1:
            raise APIError(
                400,
                f"prompt must be a string or a list of exactly one string (got {len(body.prompt)})",
                param="prompt",
                code="unsupported_value",
            )
        if body.echo or body.suffix:
            raise APIError(
                400, "echo and suffix are not supported by this server", param="echo", code="unsupported_value"
            )
        prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        note(request, prompt_text=prompt)
        with engine.incoming():
            try:
                prompt_ids = await run_in_threadpool(engine.text_prompt, served, prompt)
            except Exception as error:
                api_error = as_api_error(error)
                api_error.param = "prompt" if api_error.param == "messages" else api_error.param
                raise api_error from None
            params = sampling(body, served, len(prompt_ids))
            generation = Generation(engine, served, prompt_ids, params, stream=body.stream)
        answer_id, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())

        def chunk(text: str | None, finish_reason: str | None) -> dict[str, Any]:
            return {
                "id": answer_id,
                "object": "text_completion",
                "created": created,
                "model": served.name,
                "choices": [{"index": 0, "text": text or "", "finish_reason": finish_reason, "logprobs": None}],
            }

        def final(text: str, finished: Finished) -> dict[str, Any]:
            return {
                "id": answer_id,
                "object": "text_completion",
                "created": created,
                "model": served.name,
                "choices": [{"index": 0, "text": text, "finish_reason": finished.reason, "logprobs": None}],
                "usage": _usage(finished),
            }

        return await respond(request, body, generation, chunk, final, None)

    @app.get("/v1/adapters", response_model=AdapterList, responses=error_responses(401, 403, 429), tags=["adapters"])
    async def list_adapters(who: AdminCaller) -> AdapterList:
        """Every served model with where it came from (admin)."""
        return AdapterList(data=[AdapterInfo(**m.describe()) for m in engine.models()])

    @app.post(
        "/v1/adapters",
        response_model=AdapterInfo,
        status_code=201,
        responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429, 500, 503),
        tags=["adapters"],
    )
    async def load_adapter(body: AdapterRequest, request: Request, who: AdminCaller) -> AdapterInfo:
        """Serve a registered model under `name` without restarting (admin)."""
        note(request, model=body.name)
        if resolve_model is None:
            raise APIError(400, "this server has no workspace to load registered models from", code="no_workspace")
        try:
            ref = resolve_model(body.model)
        except NotFound:
            raise  # a 404 that names the known models (see errors.as_api_error)
        except KeyError:  # a run id that is not in the registry
            raise APIError(
                404,
                f"no registered model or run {body.model!r} in the server's workspace",
                code="model_not_found",
                param="model",
            ) from None
        served = await run_in_threadpool(engine.load, body.name, ref, replace=body.replace)
        if audit is not None:
            audit("serve.adapter.load", inputs=[served.source], name=body.name, key_id=who.key_id, replace=body.replace)
        return AdapterInfo(**served.describe())

    @app.delete(
        "/v1/adapters/{name}",
        response_model=Deleted,
        responses=error_responses(400, 401, 403, 404, 429),
        tags=["adapters"],
    )
    async def unload_adapter(name: str, request: Request, who: AdminCaller) -> Deleted:
        """Stop serving `name`; its memory is freed when its last request ends (admin)."""
        note(request, model=name)
        await run_in_threadpool(engine.unload, name)
        if audit is not None:
            audit("serve.adapter.unload", name=name, key_id=who.key_id)
        return Deleted(id=name)

    @app.get("/", include_in_schema=False)
    async def root() -> JSONResponse:
        return JSONResponse({"service": "tailorlm", "docs": "/docs", "openapi": "/openapi.json"})

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tailorlm")
    except PackageNotFoundError:
        return "0+unknown"


def _usage(finished: Finished) -> dict[str, int]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }
