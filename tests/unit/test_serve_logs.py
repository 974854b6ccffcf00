"""Credentials are redacted from every console line of the server: uvicorn's access log (a key in the
query string, in the path), its error log, TailorLM's own loggers and tracebacks."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from tailorlm.serve.logs import log_config, redact_credentials

KEY = "tlm_0123456789ab_Zq9XvB4k2Lm8Pq0rSt6UvW1xYz3AbCdEfGhIjKlMnOp"
SECRET = KEY.split("_", 2)[2]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"GET /v1/models?api_key={KEY} HTTP/1.1", "/v1/models?api_key=[REDACTED]"),
        ("GET /v1/models?token=abc%20def&x=1", "?token=[REDACTED]&x=1"),
        ("GET /v1/models?a=1&Key=hunter2", "&Key=[REDACTED]"),
        (f"GET /v1/models/{KEY}", "/v1/models/tlm_0123456789ab_[REDACTED]"),
        ("authorization: Bearer abc.def-ghi", "Bearer [REDACTED]"),
        ("judge key sk-abcdefghijklmnopqrstuvwx", "sk-[REDACTED]"),
        ("?password=pw;secret=s", "?password=[REDACTED];secret=[REDACTED]"),
    ],
)
def test_credentials_are_redacted(text, kept):
    redacted = redact_credentials(text)
    assert kept in redacted
    assert not any(secret in redacted for secret in (SECRET, "hunter2", "abc.def", "abcdefghijklmnop", "pw;", "=s"))


def test_ordinary_text_is_left_alone():
    line = '127.0.0.1:5000 - "POST /v1/chat/completions?stream=true HTTP/1.1" 200'
    assert redact_credentials(line) == line


def test_every_handler_of_the_server_log_config_redacts():
    """The configuration `serve()` hands uvicorn, applied to real loggers and formatters."""
    config = log_config()
    streams = {"default": io.StringIO(), "access": io.StringIO()}
    for name, handler in config["handlers"].items():
        handler["stream"] = streams[name]
    before = logging.getLogger("tailorlm").handlers[:], logging.getLogger("tailorlm").propagate
    logging.config.dictConfig(config)
    try:
        # uvicorn's access line: the URL is one of the record's arguments
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/models?api_key={KEY}", "1.1", 401
        )
        logging.getLogger("uvicorn.error").info("Invalid HTTP request: %s", f"/x?key={KEY}")
        logging.getLogger("tailorlm.serve.errors").warning("bad key %s", KEY)
        try:
            raise ValueError(f"the header was Bearer {KEY}")
        except ValueError:
            logging.getLogger("tailorlm.serve.errors").exception("internal error")
    finally:
        for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "tailorlm"):
            logging.getLogger(name).handlers.clear()
        logging.getLogger("tailorlm").handlers[:], logging.getLogger("tailorlm").propagate = before
    access, default = streams["access"].getvalue(), streams["default"].getvalue()
    assert "/v1/models?api_key=[REDACTED]" in access and "401" in access
    assert default.count("[REDACTED]") >= 3 and "Traceback" in default
    assert SECRET not in access + default
