"""`tailorlm ui`: serve the dashboard of one workspace with uvicorn. Listening beyond loopback is refused
unless logins are on (and at least one user exists), so an open dashboard never reaches the network."""

from __future__ import annotations

from tailorlm import offline
from tailorlm.errors import UserError
from tailorlm.offline import is_loopback
from tailorlm.web.users import list_users
from tailorlm.workspace import Workspace


class DashboardError(UserError, ValueError):
    """A dashboard that must not start as asked (open to the network, no user to log in)."""


def check_listening(workspace: Workspace, host: str, *, auth: bool) -> None:
    if not auth and not is_loopback(host):
        raise DashboardError(
            f"refusing to serve the dashboard on {host} without logins: anyone on the network could act as admin",
            hint="drop --no-auth (and add users with `tailorlm users add`), or listen on 127.0.0.1",
        )
    if auth and not list_users(workspace):
        raise DashboardError(
            f"no dashboard user in {workspace.root}",
            hint="add one with `tailorlm users add NAME --role admin`, or use --no-auth on 127.0.0.1",
        )


def ui(
    workspace: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    auth: bool = True,
    secure_cookies: bool = False,
) -> None:
    """Serve the dashboard until interrupted."""
    import uvicorn

    from tailorlm.web.app import create_app

    offline.enforce()
    check_listening(workspace, host, auth=auth)
    app = create_app(workspace, auth=auth, secure_cookies=secure_cookies)
    workspace.audit.append("ui.start", host=host, port=port, auth=auth)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=secure_cookies)
    finally:
        if getattr(app.state, "playground", None) is not None:
            app.state.playground.close()
        workspace.audit.append("ui.stop", host=host, port=port)
