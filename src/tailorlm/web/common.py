"""What every dashboard page shares: the templates, who is asking (and may they), CSRF, form parsing,
and the one error page a failure becomes (a message, never a blank page)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tailorlm.web.sessions import Session, same_token
from tailorlm.web.users import ROLES, Role, User
from tailorlm.workspace import Workspace

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
MAX_FORM_BYTES = 1 << 20

templates = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "jinja"], default=True),  # company documents are untrusted
    trim_blocks=True,
    lstrip_blocks=True,
)


class PageError(Exception):
    """A request the dashboard refuses, with the HTTP status and the message shown on the page."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


@dataclass
class Dashboard:
    """The app's state: one workspace, whether logins are required, and the no-auth actor."""

    workspace: Workspace
    auth: bool
    secure_cookies: bool
    local_user: User


def dashboard(request: Request) -> Dashboard:
    return request.app.state.dashboard


def session_of(request: Request) -> Session | None:
    return getattr(request.state, "session", None)


def actor(request: Request) -> User:
    """Who is asking: the logged-in user, or the OS user (as admin) when auth is off."""
    session = session_of(request)
    if session is not None:
        return session.user
    board = dashboard(request)
    if board.auth:
        raise PageError(401, "log in first")
    return board.local_user


def require(request: Request, role: Role) -> User:
    """The actor, if their role is `role` or above; else 403 naming what is needed."""
    user = actor(request)
    if not user.can(role):
        raise PageError(403, f"{user.name} is a {user.role}: this needs the {role} role or above")
    return user


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the last value of each field), CSRF-checked for a logged-in user."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PageError(413, f"form too large (over {MAX_FORM_BYTES} bytes)")
    form = {key: values[-1] for key, values in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
    check_csrf(request, form.get("csrf"))
    return form


def check_csrf(request: Request, given: str | None) -> None:
    session = session_of(request)
    if session is None:
        return  # auth off (loopback only), or the route refuses anonymous users anyway
    if not same_token(given or request.headers.get("x-csrf-token"), session.csrf):
        raise PageError(403, "the form's security token is missing or stale: reload the page and try again")


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    board = dashboard(request)
    session = session_of(request)
    user = session.user if session else (None if board.auth else board.local_user)
    html = templates.get_template(template).render(
        request=request,
        user=user,
        roles=ROLES,
        csrf=session.csrf if session else "",
        auth=board.auth,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def error_response(request: Request, error: PageError) -> HTMLResponse | JSONResponse:
    if "application/json" in request.headers.get("accept", "") or request.url.path.startswith("/api/"):
        return JSONResponse({"error": error.message, "hint": error.hint}, status_code=error.status)
    return page(request, "error.html.jinja", status=error.status, message=error.message, hint=error.hint)
