"""The OpenAI-compatible endpoint client shared by the stages: prepare's synthesis teacher, the
evaluation's judge and endpoint candidates. Through the official `openai` client; the host must be
loopback or in the project's `allow_hosts` (checked before any connection); an endpoint that can't
be reached or lists no model is an `EndpointError` naming its URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from tailorlm.errors import UserError


class EndpointError(UserError, ValueError):
    """An endpoint URL that is malformed, not allowlisted, unreachable or serving no model."""


def endpoint_host(url: str) -> str:
    """The host of an http(s) endpoint URL (`EndpointError` for anything else)."""
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise EndpointError(f"endpoint {url!r} is not an http(s) URL like http://127.0.0.1:8000/v1")
    return parsed.hostname


def openai_client(url: str, *, api_key: str | None = None, timeout: float = 120.0) -> Any:
    """An `openai` client for a local OpenAI-compatible endpoint, after checking its host."""
    from openai import OpenAI

    from tailorlm.offline import NetworkRefused, check_host

    try:
        check_host(endpoint_host(url))
    except NetworkRefused as error:
        raise EndpointError(f"endpoint {url}: {error}") from None
    return OpenAI(base_url=url, api_key=api_key or "not-needed", max_retries=0, timeout=timeout)


def first_model(client: Any, url: str) -> str:
    """The first model an endpoint lists; a clear error when the endpoint can't be reached."""
    try:
        models = client.models.list()
    except Exception as error:  # openai raises APIConnectionError, APIStatusError...
        raise EndpointError(f"endpoint {url} can't be reached: {type(error).__name__}: {error}") from None
    names = [m.id for m in models.data]
    if not names:
        raise EndpointError(f"endpoint {url} lists no model")
    return names[0]
