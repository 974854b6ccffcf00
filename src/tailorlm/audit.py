"""Append-only, hash-chained audit log (`audit.jsonl`): who did what, when, with which inputs and outputs.

Each line carries the hash of the previous line, so editing, deleting or swapping a past event breaks the
chain and `verify()` names the first line that no longer matches. With a key file configured
(`$TAILORLM_AUDIT_KEY_FILE` or `governance.audit_key_file` in the project file, kept outside the
workspace) each line also carries an HMAC of its hash: someone who can write the workspace but not read
the key can't rewrite the chain from the edited line onwards. Deleting the last lines is not detectable
from the file alone; keep a copy of `tailorlm audit show --json`'s last hash elsewhere for that.

Who: `$TAILORLM_USER` when set (a service account, an API key id, a test), else the OS user; the OS user
is recorded too whenever the two differ.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailorlm.errors import UserError

GENESIS = "0" * 64
KEY_ENV = "TAILORLM_AUDIT_KEY_FILE"
USER_ENV = "TAILORLM_USER"


class AuditError(UserError, ValueError):
    """The audit log can't be written or checked as configured (a missing key file, a broken line)."""


def os_user() -> str:
    """The OS account running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def current_user() -> str:
    """Who acts: `$TAILORLM_USER` when set, else the OS user."""
    return os.environ.get(USER_ENV, "").strip() or os_user()


def _line_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k not in ("hash", "hmac")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _sign(key: bytes, line_hash: str) -> str:
    return hmac.new(key, line_hash.encode(), hashlib.sha256).hexdigest()


@dataclass
class Verdict:
    """The result of checking the chain: `ok`, a message naming the first bad line, and that line."""

    ok: bool
    message: str
    line: int | None = None
    events: int = 0
    signed: bool = False

    def __iter__(self) -> Iterator[Any]:  # `ok, message = log.verify()` keeps working
        return iter((self.ok, self.message))

    def __getitem__(self, index: int) -> Any:
        return (self.ok, self.message)[index]


class AuditLog:
    """The workspace's audit log.

    Args:
        path: The audit.jsonl file.
        key_file: Where the HMAC key is, or a function returning it (read when needed, so a project
            file changed later is honoured); None: `$TAILORLM_AUDIT_KEY_FILE`, else unsigned.
    """

    def __init__(self, path: Path, key_file: Path | Callable[[], Path | None] | None = None) -> None:
        self.path = path
        self._key_file = key_file

    # --- the key ---------------------------------------------------------------------------------
    def key_file(self) -> Path | None:
        """The configured key file: `$TAILORLM_AUDIT_KEY_FILE`, else the one given (project file)."""
        if os.environ.get(KEY_ENV):
            return Path(os.environ[KEY_ENV]).expanduser()
        chosen = self._key_file() if callable(self._key_file) else self._key_file
        return Path(chosen).expanduser() if chosen else None

    def _key(self, *, needed_for: str) -> bytes | None:
        path = self.key_file()
        if path is None:
            return None
        if not path.is_file():
            raise AuditError(
                f"audit key file not found: {path} (needed to {needed_for})",
                hint=f"restore it, or point ${KEY_ENV} / governance.audit_key_file at it; create one with "
                "`tailorlm audit keygen PATH` (outside the workspace)",
            )
        if self.path.parent.resolve() in path.resolve().parents:
            raise AuditError(
                f"the audit key {path} is inside the workspace: anyone who can edit the log could re-sign it",
                hint="move it outside the workspace (e.g. /etc/tailorlm/audit.key, readable only by TailorLM)",
            )
        key = path.read_bytes().strip()
        if len(key) < 16:
            raise AuditError(f"audit key file {path} holds {len(key)} bytes; use at least 16 random bytes")
        return key

    # --- writing ---------------------------------------------------------------------------------
    def _last_hash(self) -> str:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return GENESIS
        with self.path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            position = handle.tell()
            chunk = b""
            while position > 0 and chunk.count(b"\n") < 2:
                step = min(4096, position)
                position -= step
                handle.seek(position)
                chunk = handle.read(step) + chunk
        last = chunk.strip().splitlines()[-1]
        try:
            return json.loads(last)["hash"]
        except (ValueError, KeyError):
            raise AuditError(
                f"{self.path}: the last line is not an audit event; nothing was appended",
                hint="run `tailorlm audit verify` to see what was changed",
            ) from None

    def append(
        self,
        action: str,
        *,
        inputs: list[str] | None = None,
        outputs: list[str] | None = None,
        user: str | None = None,
        **details: Any,
    ) -> dict[str, Any]:
        """Record one event; returns it with its chain hash (and HMAC when a key is configured). `user`: who
        acted when the caller knows better than the process (a dashboard user); the OS user is kept beside it."""
        key = self._key(needed_for="sign the audit log")
        user, system_user = user or current_user(), os_user()
        event: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "user": user,
            "action": action,
            "inputs": inputs or [],
            "outputs": outputs or [],
            "details": details,
            "prev": self._last_hash(),
        }
        if system_user != user:
            event["os_user"] = system_user
        event["hash"] = _line_hash(event)
        if key is not None:
            event["hmac"] = _sign(key, event["hash"])
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return event

    # --- reading ---------------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """Every event; a line that is not JSON is an `AuditError` naming it."""
        if not self.path.exists():
            return []
        events = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except ValueError:
                raise AuditError(
                    f"audit.jsonl line {number} is not JSON (edited by hand?)",
                    hint="`tailorlm audit verify` names the first changed line",
                ) from None
        return events

    def since(self, moment: datetime) -> list[dict[str, Any]]:
        """The events at or after `moment` (timezone-aware)."""
        return [e for e in self.events() if datetime.fromisoformat(e["time"]) >= moment]

    def verify(self) -> Verdict:
        """Check the chain (and the HMACs when signed); the verdict names the first bad line."""
        previous, signed_from = GENESIS, None
        key: bytes | None = None
        key_read = False
        count = 0
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            count += 1
            try:
                event = json.loads(line)
                assert isinstance(event, dict)
            except (ValueError, AssertionError):
                return Verdict(False, f"audit.jsonl line {number}: not an audit event (edited)", number, count)
            if event.get("prev") != previous:
                return Verdict(
                    False,
                    f"audit.jsonl line {number}: previous-hash link broken (a line before it was deleted, "
                    "inserted or moved)",
                    number,
                    count,
                )
            if _line_hash(event) != event.get("hash"):
                return Verdict(False, f"audit.jsonl line {number}: content does not match its hash (edited)", number)
            if "hmac" in event:
                if not key_read:
                    key, key_read = self._key(needed_for="check the signed audit log"), True
                    if key is None:
                        raise AuditError(
                            f"audit.jsonl line {number} is signed (HMAC) but no key is configured",
                            hint=f"set ${KEY_ENV} or governance.audit_key_file to the key file",
                        )
                if not hmac.compare_digest(_sign(key, event["hash"]), str(event["hmac"])):  # type: ignore[arg-type]
                    return Verdict(
                        False, f"audit.jsonl line {number}: HMAC does not match (re-written without the key)", number
                    )
                signed_from = signed_from or number
            elif signed_from is not None:
                return Verdict(
                    False, f"audit.jsonl line {number}: unsigned, though lines from {signed_from} on are signed", number
                )
            previous = event["hash"]
        signed = signed_from is not None
        suffix = f", signed from line {signed_from}" if signed else ""
        return Verdict(True, f"audit chain intact ({count} events{suffix})", None, count, signed)

    @staticmethod
    def keygen(path: Path) -> Path:
        """Write a new random 32-byte key (hex) readable only by its owner; refuses to overwrite."""
        path = Path(path).expanduser()
        if path.exists():
            raise AuditError(f"{path} already exists; left unchanged")
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(os.urandom(32).hex() + "\n")
        return path
