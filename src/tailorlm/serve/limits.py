"""The server's limits: request body size (413), max tokens per answer, and a per-key rate limit (429).

The body limit is an ASGI middleware that reads at most `max_body_bytes` before the app sees the
request, so an oversized body is refused without being held in memory, whether or not it declares
its length. The rate limit is a token bucket per API key (per client address without auth): a burst
of up to a minute's allowance, refilled continuously.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailorlm.config import ServeSettings

_DEFAULTS = ServeSettings()  # the one place the defaults are written


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_body_bytes: int = _DEFAULTS.max_body_bytes
    max_tokens_cap: int = _DEFAULTS.max_tokens_cap
    rate_limit_per_minute: int = _DEFAULTS.rate_limit_per_minute  # requests per key; 0 turns the limit off

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be > 0 (got {self.max_body_bytes})")
        if self.max_tokens_cap < 1:
            raise ValueError(f"max_tokens_cap must be > 0 (got {self.max_tokens_cap})")
        if self.rate_limit_per_minute < 0:
            raise ValueError(f"rate_limit_per_minute must be >= 0 (got {self.rate_limit_per_minute})")


class RateLimiter:
    """Token buckets by client (key id or address); remembers at most `max_clients` of them."""

    def __init__(self, per_minute: int, *, max_clients: int = 10_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one request; returns 0 if allowed, else the seconds until one is allowed."""
        if self.capacity <= 0:
            return 0.0
        moment = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.capacity, moment))
            tokens = min(self.capacity, tokens + (moment - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, moment)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}).encode()


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413 before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:  # read the body here (bounded), then replay it to the app
            message = await receive()
            if message["type"] != "http.request":
                chunks = []
                replay: list[Message] = [message]
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                break

        async def replaying_receive() -> Message:
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, replaying_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = error_body(
            f"the request body is larger than this server accepts ({self.max_bytes} bytes)",
            "invalid_request_error",
            "request_too_large",
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
