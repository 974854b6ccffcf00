"""The shared OpenAI-compatible client (`tailorlm.endpoints`): its own error names the URL and the
reason, before any connection for a bad URL or a host outside the allowlist."""

from __future__ import annotations

import socket

import pytest

from tailorlm.endpoints import EndpointError, endpoint_host, first_model, openai_client


def test_endpoint_errors_name_the_url_and_the_reason() -> None:
    assert endpoint_host("http://127.0.0.1:8000/v1") == "127.0.0.1"
    with pytest.raises(EndpointError, match=r"'ftp://127.0.0.1/v1' is not an http\(s\) URL"):
        openai_client("ftp://127.0.0.1/v1")
    with pytest.raises(EndpointError, match=r"endpoint http://llm.not-allowlisted.example:8000/v1: .*allow_hosts"):
        openai_client("http://llm.not-allowlisted.example:8000/v1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    url = f"http://127.0.0.1:{port}/v1"
    client = openai_client(url, timeout=5)
    with pytest.raises(EndpointError, match=rf"endpoint {url} can't be reached: APIConnectionError"):
        first_model(client, url)
    client.close()
