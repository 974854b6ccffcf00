"""The dashboard verbs: `ui` serves it; `users add|list|remove|passwd` manage who may log in."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from tailorlm.cli import app
from tailorlm.cli.common import JsonOption, WorkspaceOption, _workspace, command
from tailorlm.output import console, print_json, print_table

users_app = typer.Typer(
    help="Dashboard users: roles viewer, editor, approver, admin (see docs/ui.md).", no_args_is_help=True
)
app.add_typer(users_app, name="users")

RoleOption = Annotated[str, typer.Option("--role", help="viewer, editor, approver or admin (see docs/ui.md).")]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="TAILORLM_PASSWORD",
        help="The password (default: asked on the terminal; $TAILORLM_PASSWORD for scripts).",
        show_default=False,
    ),
]


def _password(given: str | None) -> str:
    if given:
        return given
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        from tailorlm.web.users import UsersError

        raise UsersError("the two passwords differ")
    return first


@app.command()
@command
def ui(
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on; beyond loopback needs logins.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No logins: whoever reaches it acts as you, as admin (loopback only).")
    ] = False,
    behind_tls: Annotated[
        bool, typer.Option("--behind-tls", help="Behind an HTTPS proxy: session cookies are marked Secure.")
    ] = False,
) -> None:
    """Serve the web dashboard of a workspace: data, runs with live loss, evaluations, playground, models, audit.

    Add a user first (`tailorlm users add alice --role admin`), or use --no-auth on 127.0.0.1.

    \b
    Example:
      tailorlm ui --workspace ws --port 8700
    """
    from tailorlm.web import ui as serve_ui

    ws = _workspace(workspace)
    console.print(f"Dashboard of {ws.root} at http://{host}:{port}/ (Ctrl-C stops it)")
    serve_ui(ws, host=host, port=port, auth=not no_auth, secure_cookies=behind_tls)


@users_app.command("add")
@command
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: RoleOption = "viewer",
    password: PasswordOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Add a dashboard user.

    \b
    Example:
      tailorlm users add alice --role approver --workspace ws
    """
    from tailorlm.web.users import add_user, check_role

    check_role(role)
    user = add_user(_workspace(workspace), name, role, _password(password))
    console.print(f"Added {user.name} ({user.role}).")


@users_app.command("list")
@command
def users_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List dashboard users and their roles.

    \b
    Example:
      tailorlm users list --workspace ws --json
    """
    from tailorlm.web.users import list_users

    found = list_users(_workspace(workspace))
    if as_json:
        print_json([{"name": u.name, "role": u.role, "created_at": u.created_at} for u in found])
    else:
        print_table(["name", "role", "created"], [[u.name, u.role, u.created_at] for u in found])


@users_app.command("remove")
@command
def users_remove(name: Annotated[str, typer.Argument(help="Login name.")], workspace: WorkspaceOption = None) -> None:
    """Remove a dashboard user (their sessions end at once).

    \b
    Example:
      tailorlm users remove alice --workspace ws
    """
    from tailorlm.web.users import remove_user

    remove_user(_workspace(workspace), name)
    console.print(f"Removed {name}.")


@users_app.command("passwd")
@command
def users_passwd(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password: PasswordOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Set a dashboard user's password (their sessions end at once).

    \b
    Example:
      tailorlm users passwd alice --workspace ws
    """
    from tailorlm.web.users import get_user, set_password

    ws = _workspace(workspace)
    get_user(ws, name)
    set_password(ws, name, _password(password))
    console.print(f"Password of {name} changed.")
