"""The dashboard's FastAPI app: sessions and security headers on every response, the pages mounted from
`routes/`, static assets served from the package (no CDN), and errors shown as a page with the message."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tailorlm.errors import NotFound, UserError
from tailorlm.web.common import STATIC, Dashboard, PageError, error_response
from tailorlm.web.routes import ROUTERS
from tailorlm.web.sessions import SESSION_COOKIE, LoginLimiter, find_session
from tailorlm.web.users import User
from tailorlm.workspace import Workspace

PUBLIC = ("/login", "/static/", "/health", "/favicon.ico")
# Scripts and styles only from this server; no inline script can run even if some text escaped escaping.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}
log = logging.getLogger(__name__)


def create_app(workspace: Workspace, *, auth: bool = True, secure_cookies: bool = False) -> FastAPI:
    """The dashboard of `workspace`. `auth=False` lets anyone who reaches it act as the OS user with the
    admin role (`ui()` allows that on loopback only); `secure_cookies` marks the session cookie Secure
    (behind TLS)."""
    app = FastAPI(title="TailorLM dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    local = User(_os_user(), "admin")
    app.state.dashboard = Dashboard(workspace, auth, secure_cookies, local)
    app.state.login_limiter = LoginLimiter()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def sessions(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.session = find_session(workspace, request.cookies.get(SESSION_COOKIE)) if auth else None
        path = request.url.path
        if auth and request.state.session is None and not path.startswith(PUBLIC):
            if request.method == "GET" and not path.startswith("/api/"):
                return RedirectResponse(f"/login?next={path}", status_code=303)
            response: Response = error_response(request, PageError(401, "log in first"))
        else:
            response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(PageError)
    async def page_error(request: Request, error: PageError) -> Response:
        return error_response(request, error)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound) -> Response:
        return error_response(request, PageError(404, error.message, error.hint))

    @app.exception_handler(UserError)
    async def user_error(request: Request, error: UserError) -> Response:
        return error_response(request, PageError(400, error.message, error.hint))

    @app.exception_handler(Exception)
    async def failure(request: Request, error: Exception) -> Response:
        log.exception("dashboard request failed: %s", request.url.path)
        return error_response(request, PageError(500, f"{type(error).__name__}: {error}"))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
