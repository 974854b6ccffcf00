"""The server's console log: uvicorn's format, with credentials redacted from every line.

A client may put its key where it does not belong (`?api_key=tlm_…` in the URL, a key as a path
segment, a bearer token in an error message); the access log prints the full URL. `RedactCredentials`
rewrites each record before it is formatted, on every handler of `log_config()`: TailorLM keys keep
their public id (`tlm_<id>_[REDACTED]`), bearer tokens and the values of credential-like query
parameters become `[REDACTED]`. The request log's texts go through `redact_credentials` too.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[REDACTED]"
_PATTERNS = [
    # a TailorLM key (tlm_<id>_<secret>): the id is public (it names the key in lists), the secret is not
    (re.compile(r"\b(tlm_[A-Za-z0-9]+_)[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),
    # `Authorization: Bearer …` / `Basic …` echoed anywhere
    (re.compile(r"\b(Bearer|Basic)\s+[^\s,;\"']+", re.IGNORECASE), rf"\1 {REDACTED}"),
    # credential-like query parameters, whatever their value looks like (raw or percent-encoded)
    (
        re.compile(
            r"([?&;](?:api[_-]?key|key|token|access[_-]?token|auth|authorization|password|passwd|secret)=)[^&;#\s\"]*",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
    # OpenAI-style keys of teacher or judge endpoints
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), f"sk-{REDACTED}"),
]


def redact_credentials(text: str) -> str:
    """`text` with every credential it holds replaced by `[REDACTED]` (a TailorLM key keeps its id)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    """Redacts credentials from a record's message, arguments and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # the access formatter builds its line from the arguments (client, method, URL, version, status)
            record.args = tuple(redact_credentials(a) if isinstance(a, str) else a for a in record.args)
        else:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a malformed call: leave it to the handler's error path
                return True
            record.msg, record.args = redact_credentials(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_credentials(record.exc_text)
        return True


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration with the redacting filter on every handler, and TailorLM's own
    loggers (`tailorlm.*`) printed the same way."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "filters": {"redact": {"()": RedactCredentials}},
        "handlers": {name: {**handler, "filters": ["redact"]} for name, handler in LOGGING_CONFIG["handlers"].items()},
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            "tailorlm": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
    }
    return config
