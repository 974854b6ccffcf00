"""The OpenAI-compatible HTTP API (FastAPI) over an `Engine`.

Endpoints: `GET /health`, `GET /v1/models`, `GET /v1/models/{model}`, `POST /v1/chat/completions`,
`POST /v1/completions` (both streaming as server-sent events or not), `POST /v1/feedback`, and, for admin keys,
`GET|POST /v1/adapters` and `DELETE /v1/adapters/{name}` — one module per family in `routes/`, each
answering with the pydantic models of `schemas.py`. Errors are OpenAI-shaped (see `errors.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from tailorlm.modeling import ModelRef
from tailorlm.serve.auth import KeyStore
from tailorlm.serve.engine import Engine
from tailorlm.serve.errors import install_error_handlers
from tailorlm.serve.limits import BodySizeLimit, Limits, RateLimiter
from tailorlm.serve.request_log import RequestLog, RequestLogMiddleware
from tailorlm.serve.routes import ROUTERS
from tailorlm.serve.routes.common import Server
from tailorlm.serve.routes.feedback import RecentAnswers, logged_completion


def create_app(
    engine: Engine,
    *,
    auth: KeyStore | None,
    limits: Limits,
    request_log: RequestLog | None,
    resolve_model: Callable[[str], ModelRef] | None = None,
    audit: Callable[..., Any] | None = None,
    feedback: Callable[[Any], Any] | None = None,
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
        feedback: Stores a `FeedbackRecord` from `POST /v1/feedback` (`serve()` passes `tailorlm.feedback.record`
            on the workspace); None answers that route with 503.
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
    app.state.server = Server(
        engine, auth, limits, RateLimiter(limits.rate_limit_per_minute), resolve_model, audit, feedback, RecentAnswers()
    )
    if request_log is not None:
        app.state.server.logged_completion = functools.partial(logged_completion, request_log.path)
    for router in ROUTERS:
        app.include_router(router)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tailorlm")
    except PackageNotFoundError:
        return "0+unknown"
