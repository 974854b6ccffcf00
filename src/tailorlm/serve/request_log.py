"""The request log: one registry row per API request (time, key, model, token counts, latency, status).

Texts are stored only with `log_texts`, and then with personal data redacted by
`tailorlm.pii.redact` (e-mails, phone numbers, IBANs, cards... become `[EMAIL]` etc.).
Rows older than `retention_days` (>= 0; None keeps them) are purged when the server starts and once a
day while it runs, with a warning that says how many rows and up to when before they go;
`purge_request_log` does the same on demand. Credentials are redacted from every stored text.

Rows are written by a background thread on its own SQLite connection, so logging never blocks the
server's event loop; if the writer falls behind by `max_pending` rows, newer rows are dropped and
counted (`dropped`) rather than held in memory without bound.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailorlm.errors import UserError
from tailorlm.serve.logs import redact_credentials
from tailorlm.workspace import Workspace

logger = logging.getLogger(__name__)

COLUMNS = (
    "time",
    "key_id",
    "endpoint",
    "model",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "finish_reason",
    "error",
    "prompt_text",
    "completion_text",
    "completion_id",
)
PURGE_EVERY_SECONDS = 24 * 3600


@dataclass
class LogEntry:
    time: str
    endpoint: str
    status: int
    latency_ms: float
    key_id: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    prompt_text: str | None = None
    completion_text: str | None = None
    completion_id: str | None = None  # the id the answer was returned with (feedback names it)


def _cutoff(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")


def check_retention(days: float | None) -> None:
    """Refuse a retention that would delete what it should keep (a negative one deletes every row)."""
    if days is not None and not days >= 0:  # also refuses NaN
        raise RetentionError(f"log_retention_days must be >= 0 or None to keep every row (got {days})")


class RetentionError(UserError, ValueError):
    """A request-log retention that is negative or not a number."""


def purge(execute: Callable[[str, tuple[Any, ...]], sqlite3.Cursor], days: float) -> int:
    """Delete request-log rows older than `days` (through a connection's `execute`), saying first how
    many and up to when; returns how many."""
    check_retention(days)
    cutoff = _cutoff(days)
    (count,) = execute("SELECT COUNT(*) FROM request_log WHERE time < ?", (cutoff,)).fetchone()
    if count:
        logger.warning("request log: deleting %d rows older than %g days (before %s)", count, days, cutoff)
        execute("DELETE FROM request_log WHERE time < ?", (cutoff,))
    return count


def purge_request_log(workspace: Workspace, older_than_days: float) -> int:
    """Delete request-log rows older than `older_than_days`; returns how many."""
    return purge(workspace.registry.execute, older_than_days)


def read_request_log(workspace: Workspace, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest rows, newest first."""
    rows = workspace.registry.execute("SELECT * FROM request_log ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(row) for row in rows]


def _redactor() -> Any:
    from tailorlm.pii import redact

    return lambda text: redact(text, "redact").text if text else text


class RequestLog:
    """Writes request-log rows from a background thread."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        log_texts: bool = False,
        retention_days: float | None = 30,
        max_pending: int = 10_000,
    ) -> None:
        check_retention(retention_days)
        self.path = workspace.registry.path
        self.log_texts = log_texts
        self.retention_days = retention_days
        self._redact = _redactor() if log_texts else None
        if self._redact is not None:  # load the recognizers now: fail at start, not on the first request
            self._redact("warm-up")
        self._pending: queue.Queue[LogEntry | None] = queue.Queue(max_pending)
        self.dropped = 0
        self._thread = threading.Thread(target=self._write, name="tailorlm-request-log", daemon=True)
        self._thread.start()

    def record(self, entry: LogEntry) -> None:
        if not self.log_texts:
            entry.prompt_text = entry.completion_text = None
        try:
            self._pending.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every recorded row is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._pending.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 5.0) -> None:
        self._pending.put(None)
        self._thread.join(timeout)

    def _write(self) -> None:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        last_purge = float("-inf")
        placeholders = ", ".join("?" for _ in COLUMNS)
        try:
            while True:
                if self.retention_days is not None and time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                    last_purge = time.monotonic()
                    try:
                        purge(connection.execute, self.retention_days)
                    except sqlite3.Error:  # the log must never take the server down
                        logger.exception("could not purge the request log")
                entry = self._pending.get()
                if entry is None:
                    self._pending.task_done()
                    return
                batch = [entry]
                while len(batch) < 256:  # write what has piled up in one transaction
                    try:
                        more = self._pending.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._pending.put(None)
                        self._pending.task_done()
                        break
                    batch.append(more)
                try:
                    rows = [self._row(item) for item in batch]
                    connection.execute("BEGIN")
                    connection.executemany(
                        f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows
                    )
                    connection.execute("COMMIT")
                except Exception:  # the log must never take the server down
                    logger.exception("could not write %d request-log rows", len(batch))
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                finally:
                    for _ in batch:
                        self._pending.task_done()
        finally:
            connection.close()

    def _row(self, entry: LogEntry) -> tuple[Any, ...]:
        if self._redact is not None:
            entry.prompt_text = self._redact(entry.prompt_text)
            entry.completion_text = self._redact(entry.completion_text)
        for name in ("endpoint", "error", "prompt_text", "completion_text"):  # a pasted key is never stored
            if isinstance(value := getattr(entry, name), str):
                setattr(entry, name, redact_credentials(value))
        data = asdict(entry)
        return tuple(data[column] for column in COLUMNS)


class RequestLogMiddleware:
    """Times every /v1 request and records it with what the endpoint noted in `request.state.log`."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        arrived = datetime.now(UTC).isoformat(timespec="milliseconds")
        state = scope.setdefault("state", {})
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            noted: dict[str, Any] = state.get("log", {})
            if noted.get("cancelled"):
                status = 499
            self.log.record(
                LogEntry(
                    time=arrived,
                    endpoint=scope["path"],
                    status=status,
                    latency_ms=round((time.perf_counter() - started) * 1000, 2),
                    key_id=state.get("key_id"),
                    **{k: v for k, v in noted.items() if k in LogEntry.__dataclass_fields__},
                )
            )
