"""Dashboard users: a name, a role and an argon2id password hash in the registry (`tailorlm users ...`).

Roles are ordered: each can do what the ones before it can.

* viewer: read every page.
* editor: start, stop and resume jobs (prepare, train, evaluate, export); rate and correct answers.
* approver: approve or reject a model version; deploy and undeploy it.
* admin: everything, including users.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from tailorlm.errors import NotFound, UserError
from tailorlm.registry.store import now
from tailorlm.workspace import Workspace

Role = Literal["viewer", "editor", "approver", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8


class UsersError(UserError, ValueError):
    """A bad user name, role or password given to `tailorlm users`."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created_at: str = ""

    def can(self, role: Role) -> bool:
        """True when this user's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


@functools.cache
def _hasher() -> Any:
    """argon2id with the library's current recommended parameters (the `ui` extra)."""
    try:
        from argon2 import PasswordHasher
    except ImportError:
        raise UsersError(
            "dashboard logins need argon2-cffi", hint="pip install 'tailorlm[ui]', or run `tailorlm ui --no-auth`"
        ) from None
    return PasswordHasher()


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UsersError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsersError(f"a password needs at least {MIN_PASSWORD} characters (got {len(password)})")
    return password


def add_user(workspace: Workspace, name: str, role: str, password: str) -> User:
    if not NAME.match(name):
        raise UsersError(f"user name {name!r}: use letters, digits and . _ @ - (at most 64 characters)")
    chosen = check_role(role)
    if _row(workspace, name) is not None:
        raise UsersError(f"user {name!r} already exists", hint=f"change it with `tailorlm users passwd {name}`")
    stamp = now()
    workspace.registry.execute(
        "INSERT INTO users (name, role, hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (name, chosen, _hasher().hash(check_password(password)), stamp, stamp),
    )
    workspace.audit.append("user.add", outputs=[name], role=chosen)
    return User(name, chosen, stamp)


def list_users(workspace: Workspace) -> list[User]:
    rows = workspace.registry.execute("SELECT name, role, created_at FROM users ORDER BY name").fetchall()
    return [User(row["name"], row["role"], row["created_at"]) for row in rows]


def get_user(workspace: Workspace, name: str) -> User:
    row = _row(workspace, name)
    if row is None:
        raise NotFound(f"no user {name!r} in this workspace", hint="see `tailorlm users list`")
    return User(row["name"], row["role"], row["created_at"])


def remove_user(workspace: Workspace, name: str, *, by: str | None = None) -> None:
    get_user(workspace, name)
    workspace.registry.execute("DELETE FROM sessions WHERE user = ?", (name,))
    workspace.registry.execute("DELETE FROM users WHERE name = ?", (name,))
    workspace.audit.append("user.remove", inputs=[name], user=by)


def set_password(workspace: Workspace, name: str, password: str, *, by: str | None = None) -> None:
    """A new password; the user's open sessions end (a stolen cookie stops working)."""
    get_user(workspace, name)
    workspace.registry.execute(
        "UPDATE users SET hash = ?, updated_at = ? WHERE name = ?",
        (_hasher().hash(check_password(password)), now(), name),
    )
    workspace.registry.execute("DELETE FROM sessions WHERE user = ?", (name,))
    workspace.audit.append("user.passwd", inputs=[name], user=by)


def authenticate(workspace: Workspace, name: str, password: str) -> User | None:
    """The user when the password matches, else None (the same answer for an unknown name)."""
    row = _row(workspace, name)
    if row is None:
        _hasher().hash(password)  # spend the same time as a real check: the answer doesn't reveal who exists
        return None
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        _hasher().verify(row["hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher().check_needs_rehash(row["hash"]):
        workspace.registry.execute("UPDATE users SET hash = ? WHERE name = ?", (_hasher().hash(password), name))
    return User(row["name"], row["role"], row["created_at"])


def _row(workspace: Workspace, name: str):
    return workspace.registry.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
