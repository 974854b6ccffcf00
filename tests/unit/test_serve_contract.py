"""The API says what it enforces, over real HTTP: the OpenAPI schema states the limits, types are strict,
OPTIONS names every method, `/docs` needs no internet, and a revoked key is refused from the very next
request (revoked by the real CLI in another process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx2
import pytest

from helpers.serve import ServerThread, single_torch_thread
from tailorlm.serve.app import create_app
from tailorlm.serve.auth import KeyStore, create_key, revoke_key
from tailorlm.serve.engine import Engine
from tailorlm.serve.limits import Limits
from tailorlm.workspace import Workspace

CHAT = {"model": "base", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    workspace = Workspace(tmp_path_factory.mktemp("contract-ws"))
    _, admin = create_key(workspace, "admin", name="ops")
    with single_torch_thread():
        engine = Engine(tiny_model_dir, max_queue=16, threads=1)
        app = create_app(engine, auth=KeyStore(workspace), request_log=None, limits=Limits(max_tokens_cap=4))
        with (
            ServerThread(app) as running,
            httpx2.Client(base_url=running.url, headers={"authorization": f"Bearer {admin}"}, timeout=60) as http,
        ):
            yield workspace, http
        engine.close()
    workspace.close()


def schemas(http) -> dict:
    return http.get("/openapi.json").json()["components"]["schemas"]


def test_the_schema_states_the_limits_the_server_enforces(server):
    _, http = server
    found = schemas(http)
    chat, text, adapter = found["ChatCompletionRequest"], found["CompletionRequest"], found["AdapterRequest"]
    assert chat["properties"]["n"]["maximum"] == 1
    assert chat["properties"]["max_tokens"]["anyOf"][0]["minimum"] == 1
    stop_list = next(s for s in chat["properties"]["stop"]["anyOf"] if s.get("type") == "array")
    assert stop_list["maxItems"] == 8 and stop_list["items"]["minLength"] == 1
    prompt_list = next(s for s in text["properties"]["prompt"]["anyOf"] if s.get("type") == "array")
    assert prompt_list["minItems"] == prompt_list["maxItems"] == 1
    pattern = adapter["properties"]["name"]["pattern"]
    assert not re.search(pattern, "base") and re.search(pattern, "acme")
    assert chat["properties"]["tools"]["maxItems"] == 0
    # and the server refuses what the schema refuses
    assert http.post("/v1/chat/completions", json={**CHAT, "n": 2}).status_code == 400
    assert http.post("/v1/chat/completions", json={**CHAT, "stop": [f"s{i}" for i in range(9)]}).status_code == 422
    assert http.post("/v1/completions", json={"model": "base", "prompt": ["a", "b"]}).status_code == 400
    refused = http.post("/v1/adapters", json={"name": "base", "model": "acme"})
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "name"


@pytest.mark.parametrize(
    ("field", "value"),
    [("stream", 0), ("ignore_eos", 1), ("max_tokens", "10"), ("temperature", "0.5"), ("seed", 1.5), ("n", True)],
)
def test_types_are_strict(server, field, value):
    _, http = server
    response = http.post("/v1/chat/completions", json={**CHAT, field: value})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == field


def test_numbers_are_read_as_json_schema_reads_them(server):
    """An integer is a number (temperature 1), and 2.0 is an integer (JSON Schema), but 2.5 is not."""
    _, http = server
    response = http.post("/v1/chat/completions", json={**CHAT, "temperature": 1, "top_p": 1, "max_tokens": 2.0})
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] <= 2
    assert http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2.5}).status_code == 422


def test_options_and_405_name_every_method_of_a_path(server):
    _, http = server
    options = http.options("/v1/adapters")
    assert options.status_code == 204
    assert {"GET", "POST", "OPTIONS"} <= set(options.headers["allow"].split(", "))
    wrong = http.put("/v1/adapters", json={})
    assert wrong.status_code == 405
    assert {"GET", "POST"} <= set(wrong.headers["allow"].split(", "))
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert set(http.options("/v1/adapters/acme").headers["allow"].split(", ")) == {"DELETE", "OPTIONS"}


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_with_no_external_url(server, page):
    _, http = server
    response = http.get(page)
    assert response.status_code == 200
    html = response.text
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE), html
    parser = _Assets()
    parser.feed(html)
    assert len(parser.urls) >= 2  # script (and style for Swagger) and favicon
    for url in parser.urls:
        asset = http.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert "SwaggerUIBundle" in http.get("/docs-assets/swagger-ui-bundle.js").text
    assert http.get("/favicon.ico").headers["content-type"] == "image/png"


def test_a_revoked_key_is_refused_by_the_very_next_request(server):
    workspace, http = server
    for _ in range(3):  # revoked through another connection, as another process does, right after a success
        key_id, secret = create_key(workspace, "chat", name="leaving")
        headers = {"authorization": f"Bearer {secret}"}
        assert http.get("/v1/models", headers=headers).status_code == 200
        other = Workspace(workspace.root)
        revoke_key(other, key_id)
        other.close()
        assert http.get("/v1/models", headers=headers).status_code == 401

    # and by the real CLI in its own process
    key_id, secret = create_key(workspace, "chat", name="leaving")
    headers = {"authorization": f"Bearer {secret}"}
    assert http.get("/v1/models", headers=headers).status_code == 200
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", "keys", "revoke", key_id, "--workspace", str(workspace.root)],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    refused = http.get("/v1/models", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]


BAD_REQUESTS = Path(__file__).resolve().parents[1] / "assets" / "bad_inputs" / "api-requests.jsonl"


def test_every_hostile_request_of_the_corpus_gets_its_answer(server):
    """tests/assets/bad_inputs/api-requests.jsonl, sent one by one: each gets the status and error code
    it lists (the sampling edges get answers), and the server answers normally afterwards."""
    _, http = server
    cases = [json.loads(line) for line in BAD_REQUESTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(cases) >= 15
    key = http.headers["authorization"].removeprefix("Bearer ")
    anonymous = httpx2.Client(base_url=str(http.base_url), timeout=60)
    for case in cases:
        path = case["path"].format(key=key)
        client = anonymous if "{key}" in case["path"] else http
        response = client.request(case["method"], path, json=case.get("body"))
        assert response.status_code == case["status"], (case["case"], response.text)
        if case["code"] is not None:
            assert response.json()["error"]["code"] == case["code"], case["case"]
    anonymous.close()
    assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
