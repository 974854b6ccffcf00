"""Append-only, hash-chained audit log (`audit.jsonl`): who did what, when, with which inputs and outputs.

Each line carries the hash of the previous line, so editing or deleting a past event breaks the chain
and `verify()` names the first line that no longer matches.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def _line_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class AuditLog:
    """The workspace's audit log."""

    def __init__(self, path: Path) -> None:
        self.path = path

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
        return json.loads(last)["hash"]

    def append(
        self,
        action: str,
        *,
        inputs: list[str] | None = None,
        outputs: list[str] | None = None,
        **details: Any,
    ) -> dict[str, Any]:
        """Record one event; returns it with its chain hash."""
        event: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "user": _user(),
            "action": action,
            "inputs": inputs or [],
            "outputs": outputs or [],
            "details": details,
            "prev": self._last_hash(),
        }
        event["hash"] = _line_hash(event)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return event

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def verify(self) -> tuple[bool, str]:
        """Check the chain; returns (ok, message naming the first broken line)."""
        previous = GENESIS
        for number, event in enumerate(self.events(), start=1):
            if event.get("prev") != previous:
                return False, f"audit.jsonl line {number}: previous-hash link broken"
            if _line_hash(event) != event.get("hash"):
                return False, f"audit.jsonl line {number}: content does not match its hash"
            previous = event["hash"]
        return True, "audit chain intact"
