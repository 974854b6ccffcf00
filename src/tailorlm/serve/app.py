"""The OpenAI-compatible HTTP API (FastAPI) over an `Engine`.

Endpoints: `GET /health`, `GET /v1/models`, `GET /v1/models/{model}`, `POST /v1/chat/completions`,
`POST /v1/completions` (both streaming as server-sent events or not), `POST /v1/feedback`, and, for admin keys,
`GET|POST /v1/adapters` and `DELETE /v1/adapters/{name}`; `POST /v1/classify` for classification heads —
one module per family in `routes/`, each
answering with the pydantic models of `schemas.py`. Errors are OpenAI-shaped (see `errors.py`).

`/docs` (Swagger UI) and `/redoc` work air-gapped: their scripts, styles and favicon are served from
the `fastapi-offline` package (Swagger UI is Apache-2.0, ReDoc and fastapi-offline MIT), never a CDN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

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
    engine: Engine | None,
    *,
    auth: KeyStore | None,
    limits: Limits,
    request_log: RequestLog | None,
    resolve_model: Callable[[str], ModelRef] | None = None,
    audit: Callable[..., Any] | None = None,
    feedback: Callable[[Any], Any] | None = None,
    classifiers: dict[str, Any] | None = None,
) -> FastAPI:
    """The API for `engine` (None: only `classifiers` are served, through `/v1/classify` and chat).

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
        classifiers: Classification heads by served name (`tailorlm.classifier.Classifier`), for `POST /v1/classify`.
    """
    app = FastAPI(
        title="TailorLM",
        version=_version(),
        description="OpenAI-compatible API for models fine-tuned with TailorLM. See docs/serve.md.",
        docs_url=None,  # replaced by offline_docs()
        redoc_url=None,
    )
    offline_docs(app)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    if request_log is not None:
        app.add_middleware(RequestLogMiddleware, log=request_log)
    app.state.server = Server(
        engine, auth, limits, RateLimiter(limits.rate_limit_per_minute), resolve_model, audit, feedback, RecentAnswers()
    )
    app.state.server.classifiers = dict(classifiers or {})
    if request_log is not None:
        app.state.server.logged_completion = functools.partial(logged_completion, request_log.path)
    for router in ROUTERS:
        app.include_router(router)
    # every route with its methods, for OPTIONS and 405's Allow header (see errors.allowed_methods)
    app.state.routes = [
        route for router in (app.router, *ROUTERS) for route in router.routes if isinstance(route, APIRoute | Route)
    ]
    return app


DOCS_ASSETS = "/docs-assets"


def offline_docs(app: FastAPI) -> None:
    """`/docs`, `/redoc` and `/favicon.ico` with every asset served by this app (nothing from the internet)."""
    from importlib.resources import files

    assets = Path(str(files("fastapi_offline") / "static"))
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get(app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(assets / "favicon.png", media_type="image/png")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tailorlm")
    except PackageNotFoundError:
        return "0+unknown"
