"""Log in and out. Failed logins are rate limited per name and per address; every outcome is audited."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tailorlm.web.common import PageError, dashboard, page, read_form, session_of
from tailorlm.web.sessions import SESSION_COOKIE, SESSION_HOURS, end_session, same_token, start_session
from tailorlm.web.users import authenticate

router = APIRouter()
LOGIN_COOKIE = "tailorlm_login"  # double-submit token of the login form (there is no session yet)


def _safe_next(target: str | None) -> str:
    """Only a path on this server: `//host` or `https://...` would send the user elsewhere after login."""
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login")
async def login_form(request: Request, next: str = "/", message: str = "") -> Response:
    # Keep a token already given: a second tab (or the browser's own requests) must not void the first form.
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = page(request, "login.html.jinja", next=_safe_next(next), login_token=token, message=message)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=dashboard(request).secure_cookies)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    board = dashboard(request)
    form = await read_form(request)
    if not same_token(form.get("login_token"), request.cookies.get(LOGIN_COOKIE) or "-"):
        raise PageError(403, "the login form expired: reload the page and try again")
    name, password = form.get("name", "").strip(), form.get("password", "")
    address = request.client.host if request.client else "unknown"
    limiter = request.app.state.login_limiter
    if wait := limiter.retry_after(name, address):
        board.workspace.audit.append("ui.login.refused", user=name or "-", address=address, reason="rate limited")
        response = page(
            request,
            "login.html.jinja",
            status=429,
            next=_safe_next(form.get("next")),
            login_token=form.get("login_token"),
            message=f"Too many failed attempts: try again in {wait} s.",
        )
        response.headers["retry-after"] = str(wait)
        return response
    user = authenticate(board.workspace, name, password)
    if user is None:
        limiter.failed(name, address)
        board.workspace.audit.append("ui.login.failed", user=name or "-", address=address)
        return page(
            request,
            "login.html.jinja",
            status=401,
            next=_safe_next(form.get("next")),
            login_token=form.get("login_token"),
            message="Wrong name or password.",
        )
    limiter.succeeded(name)
    token, _ = start_session(board.workspace, user)
    board.workspace.audit.append("ui.login", user=user.name, address=address)
    redirect = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    redirect.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=board.secure_cookies,
        path="/",
    )
    redirect.delete_cookie(LOGIN_COOKIE)
    return redirect


@router.post("/logout")
async def logout(request: Request) -> Response:
    await read_form(request)
    board = dashboard(request)
    if (session := session_of(request)) is not None:
        end_session(board.workspace, request.cookies.get(SESSION_COOKIE))
        board.workspace.audit.append("ui.logout", user=session.user.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
