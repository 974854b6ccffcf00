"""Login sessions and the login rate limit of the dashboard.

A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure behind TLS); the registry keeps
only its SHA-256, the user, an expiry and the CSRF token every state-changing request must send back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tailorlm.registry.store import now
from tailorlm.web.users import User
from tailorlm.workspace import Workspace

SESSION_COOKIE = "tailorlm_session"
SESSION_HOURS = 12


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(workspace: Workspace, user: User, *, hours: int = SESSION_HOURS) -> tuple[str, Session]:
    """A new session for `user`: (the cookie's token, the session)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = (datetime.now(UTC) + timedelta(hours=hours)).isoformat(timespec="seconds")
    workspace.registry.execute(
        "INSERT INTO sessions (token_hash, user, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (_digest(token), user.name, csrf, now(), expires),
    )
    return token, Session(user, csrf)


def find_session(workspace: Workspace, token: str | None) -> Session | None:
    """The live session of a cookie's token, else None (unknown, expired, or its user removed)."""
    if not token:
        return None
    row = workspace.registry.execute(
        "SELECT s.csrf, s.expires_at, u.name, u.role, u.created_at FROM sessions s JOIN users u ON u.name = s.user"
        " WHERE s.token_hash = ?",
        (_digest(token),),
    ).fetchone()
    if row is None or row["expires_at"] < now():
        return None
    return Session(User(row["name"], row["role"], row["created_at"]), row["csrf"])


def end_session(workspace: Workspace, token: str | None) -> None:
    if token:
        workspace.registry.execute("DELETE FROM sessions WHERE token_hash = ?", (_digest(token),))


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())  # type: ignore[union-attr]


class LoginLimiter:
    """At most `attempts` failed logins per name and per client address within `window` seconds; a success
    clears the name's count. Kept in memory: a restart forgives, an attacker still gets a handful a minute."""

    def __init__(self, attempts: int = 5, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, moment: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] < moment - self.window:
            failures.popleft()
        return failures

    def retry_after(self, name: str, address: str) -> int:
        """Seconds until another attempt is allowed for this name or address; 0 when allowed now."""
        moment = time.monotonic()
        with self._lock:
            waits = [
                failures[0] + self.window - moment
                for key in (f"name:{name.lower()}", f"addr:{address}")
                if len(failures := self._recent(key, moment)) >= self.attempts
            ]
        return int(max(waits, default=0)) + (1 if waits else 0)

    def failed(self, name: str, address: str) -> None:
        moment = time.monotonic()
        with self._lock:
            for key in (f"name:{name.lower()}", f"addr:{address}"):
                self._recent(key, moment).append(moment)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"name:{name.lower()}", None)
