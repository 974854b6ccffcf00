"""The OpenAI-compatible API over real HTTP (uvicorn on a loopback port) with the official client:
answers, streaming, usage, stops, every error status as the client's exception, keys and scopes,
hot-loading, client disconnects, the request log, and `deploy()`."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx2
import openai
import pytest

from helpers.serve import ServerThread, openai_client, single_torch_thread, trained_workspace_root
from tailorlm.modeling import resolve_model
from tailorlm.serve import DeployError, ServeError, deploy, serve
from tailorlm.serve.app import create_app
from tailorlm.serve.auth import KeyStore, create_key, revoke_key
from tailorlm.serve.engine import Engine, SamplingParams
from tailorlm.serve.limits import Limits
from tailorlm.serve.request_log import RequestLog, read_request_log
from tailorlm.serve.schemas import ChatCompletionChunk, CompletionChunk
from tailorlm.workspace import Workspace

CAP = 48
MESSAGES = [{"role": "user", "content": "Where is my order?"}]


class Served:
    """The server under test and what a test needs to call it."""

    def __init__(self, workspace: Workspace, engine: Engine, url: str, log: RequestLog, keys: dict[str, str]):
        self.workspace, self.engine, self.url, self.log, self.keys = workspace, engine, url, log, keys

    def client(self, key: str = "chat") -> openai.OpenAI:
        return openai_client(self.url, self.keys.get(key, key))

    def http(self, key: str | None = "admin") -> httpx2.Client:
        headers = {"authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx2.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    workspace = Workspace(trained_workspace_root(tmp_path_factory, tiny_model_dir))
    keys = {
        "admin": create_key(workspace, "admin", name="ops")[1],
        "chat": create_key(workspace, "chat", name="bot")[1],
        "acme-only": create_key(workspace, "chat", models=["acme"], name="acme bot")[1],
    }
    with single_torch_thread():
        engine = Engine(tiny_model_dir, max_batch_size=8, max_queue=32, threads=1)
        engine.load("acme", resolve_model(workspace, "acme"))
        log = RequestLog(workspace, log_texts=True)
        app = create_app(
            engine,
            auth=KeyStore(workspace),
            request_log=log,
            limits=Limits(max_body_bytes=20_000, max_tokens_cap=CAP, rate_limit_per_minute=10_000),
            resolve_model=lambda reference: resolve_model(workspace, reference),
            audit=workspace.audit.append,
        )
        with ServerThread(app) as server:
            yield Served(workspace, engine, server.url, log, keys)
        engine.close()
        log.close()
    workspace.close()


def healthy(served: Served) -> bool:
    return httpx2.get(f"{served.url}/health", timeout=10).json()["status"] == "ok"


# --- answers ---------------------------------------------------------------------------------------


def test_models_are_listed_per_key(served):
    assert [m.id for m in served.client().models.list().data] == ["base", "acme"]
    assert [m.id for m in served.client("acme-only").models.list().data] == ["acme"]
    assert served.client().models.retrieve("acme").id == "acme"


def test_chat_answer_with_usage(served):
    response = served.client().chat.completions.create(
        model="acme", messages=MESSAGES, max_tokens=8, temperature=0, extra_body={"ignore_eos": True}
    )
    expected_prompt = served.engine.chat_prompt(served.engine.get("acme"), MESSAGES)
    assert response.object == "chat.completion" and response.model == "acme"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].finish_reason == "length"
    assert response.usage.prompt_tokens == len(expected_prompt)
    assert response.usage.completion_tokens == 8
    assert response.usage.total_tokens == len(expected_prompt) + 8


def test_streaming_sends_the_same_answer_in_chunks_with_usage(served):
    client = served.client()
    options = {
        "model": "acme",
        "messages": MESSAGES,
        "max_tokens": 10,
        "temperature": 0,
        "extra_body": {"ignore_eos": True},
    }
    whole = client.chat.completions.create(**options).choices[0].message.content
    chunks = list(client.chat.completions.create(**options, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize(
    ("path", "request_fields", "schema"),
    [
        ("/v1/chat/completions", {"messages": MESSAGES}, ChatCompletionChunk),
        ("/v1/completions", {"prompt": "Where is"}, CompletionChunk),
    ],
)
def test_stream_events_are_the_declared_chunk_models(served, path, request_fields, schema):
    body = {"model": "acme", "max_tokens": 4, "temperature": 0, "ignore_eos": True, "stream": True, **request_fields}
    with served.http("chat").stream("POST", path, json=body) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert [schema.model_validate(c).model_dump(mode="json", exclude={"usage"}) for c in chunks] == chunks
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    if schema is ChatCompletionChunk:  # the role first, then text only, then an empty delta with the reason
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert all(set(c["choices"][0]["delta"]) == {"content"} for c in chunks[1:-1])
        assert chunks[-1]["choices"][0]["delta"] == {}


def test_text_completions_stream_and_not(served):
    client = served.client()
    whole = client.completions.create(
        model="base", prompt="Refunds are", max_tokens=6, temperature=0, extra_body={"ignore_eos": True}
    )
    assert whole.object == "text_completion" and whole.usage.completion_tokens == 6
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="base",
            prompt="Refunds are",
            max_tokens=6,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert streamed == whole.choices[0].text


def test_stop_sequence_cuts_the_answer_streamed_or_not(served):
    client = served.client()
    options = {
        "model": "base",
        "prompt": "Your order",
        "max_tokens": 40,
        "temperature": 1.0,
        "seed": 11,
        "extra_body": {"ignore_eos": True},
    }
    full = client.completions.create(**options).choices[0].text
    # A stop that straddles tokens somewhere in the middle: three printable ASCII characters.
    start = next(i for i in range(8, len(full) - 3) if all(c.isascii() and c.isprintable() for c in full[i : i + 3]))
    stop = full[start : start + 3]
    cut = full[: full.index(stop)]
    answer = client.completions.create(**options, stop=[stop, "never-appears"])
    assert answer.choices[0].text == cut, (full, stop)
    assert answer.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(**options, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == cut
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_seed_reproduces_sampling_over_http(served):
    client = served.client()
    options = {
        "model": "acme",
        "messages": MESSAGES,
        "max_tokens": 12,
        "temperature": 0.9,
        "top_p": 0.9,
        "extra_body": {"ignore_eos": True},
    }
    first = client.chat.completions.create(**options, seed=5).choices[0].message.content
    assert client.chat.completions.create(**options, seed=5).choices[0].message.content == first


def test_max_tokens_above_the_cap_is_lowered_to_it(served):
    response = served.client().chat.completions.create(
        model="base", messages=MESSAGES, max_tokens=10_000, temperature=0, extra_body={"ignore_eos": True}
    )
    assert response.usage.completion_tokens == CAP
    assert response.choices[0].finish_reason == "length"


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "request_options", "exception", "code"),
    [
        ("chat", {"model": "nope"}, openai.NotFoundError, "model_not_found"),
        ("wrong", {}, openai.AuthenticationError, "invalid_api_key"),
        ("acme-only", {"model": "base"}, openai.PermissionDeniedError, "model_not_allowed"),
        ("chat", {"n": 2}, openai.BadRequestError, "unsupported_value"),
        ("chat", {"max_tokens": -5}, openai.UnprocessableEntityError, "invalid_value"),
        ("chat", {"temperature": 9}, openai.UnprocessableEntityError, "invalid_value"),
        (
            "chat",
            {"messages": [{"role": "user", "content": "word " * 600}]},
            openai.BadRequestError,
            "context_length_exceeded",
        ),
    ],
)
def test_errors_surface_as_the_clients_exceptions(served, key, request_options, exception, code):
    options = {"model": "acme", "messages": MESSAGES, "max_tokens": 2, **request_options}
    client = served.client(key) if key in served.keys else openai_client(served.url, "tlm_0000_bad")
    with pytest.raises(exception) as raised:
        client.chat.completions.create(**options)
    assert raised.value.body["code"] == code
    assert raised.value.body["message"]
    assert healthy(served)


def test_rate_limit_is_429_with_retry_after(served, tiny_model_dir):
    key = create_key(served.workspace, "chat", name="slow")[1]
    app = create_app(
        served.engine,
        auth=KeyStore(served.workspace),
        request_log=None,
        limits=Limits(rate_limit_per_minute=2),
    )
    with ServerThread(app) as server:
        client = openai_client(server.url, key)
        client.models.list()
        client.models.list()
        with pytest.raises(openai.RateLimitError) as raised:
            client.models.list()
    assert int(raised.value.response.headers["retry-after"]) >= 1
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_bad_bodies_get_documented_errors(served):
    with served.http("chat") as http:
        invalid_json = http.post(
            "/v1/chat/completions",
            content=b'{"model": "acme", "messages": [',
            headers={"content-type": "application/json"},
        )
        assert invalid_json.status_code == 400
        assert invalid_json.json()["error"]["code"] == "invalid_json"
        wrong_type = http.post("/v1/chat/completions", json={"model": "acme", "messages": "hi"})
        assert wrong_type.status_code == 422
        assert wrong_type.json()["error"]["param"].startswith("messages")
        oversized = http.post(
            "/v1/chat/completions", json={"model": "acme", "messages": [{"role": "user", "content": "x" * 30_000}]}
        )
        assert oversized.status_code == 413
        assert oversized.json()["error"]["code"] == "request_too_large"
        no_key = httpx2.post(f"{served.url}/v1/chat/completions", json={"model": "acme", "messages": MESSAGES})
        assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "missing_api_key"
        assert http.get("/v1/nothing-here").status_code == 404
    with pytest.raises(openai.APIStatusError) as raised:
        served.client().chat.completions.create(model="acme", messages=[{"role": "user", "content": "x" * 30_000}])
    assert raised.value.status_code == 413
    assert healthy(served)


# --- keys, scopes, adapters ------------------------------------------------------------------------


def test_revoked_key_is_refused_at_once(served):
    key_id, secret = create_key(served.workspace, "chat", name="temp")
    client = openai_client(served.url, secret)
    assert client.models.list().data
    revoke_key(served.workspace, key_id)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client.models.list()


def test_chat_key_can_not_manage_adapters(served):
    with served.http("chat") as http:
        response = http.post("/v1/adapters", json={"name": "x", "model": "support"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_adapter_hot_load_while_another_request_streams(served):
    client = served.client()
    stream = client.chat.completions.create(
        model="acme", messages=MESSAGES, max_tokens=CAP, temperature=0, stream=True, extra_body={"ignore_eos": True}
    )
    chunks = iter(stream)
    first = next(chunks)
    with served.http("admin") as http:
        loaded = http.post("/v1/adapters", json={"name": "support", "model": "support"})
        assert loaded.status_code == 201, loaded.text
        assert loaded.json()["source"] == "support@v1"
        assert http.post("/v1/adapters", json={"name": "support", "model": "support"}).status_code == 409
        assert http.post("/v1/adapters", json={"name": "ghost", "model": "no-such-model"}).status_code == 404
        answer = client.chat.completions.create(model="support", messages=MESSAGES, max_tokens=3)
        assert answer.usage.completion_tokens <= 3
        rest = [first, *chunks]
        assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "length"
        assert http.delete("/v1/adapters/support").status_code == 200
        assert http.delete("/v1/adapters/support").status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="support", messages=MESSAGES, max_tokens=2)
    actions = [event["action"] for event in served.workspace.audit.events()]
    assert "serve.adapter.load" in actions and "serve.adapter.unload" in actions


def test_deploy_loads_and_replaces_a_registered_model(served):
    result = deploy(served.workspace, "support", url=served.url, admin_key=served.keys["admin"])
    assert result["name"] == "support" and result["source"] == "support@v1"
    deploy(served.workspace, "support@v1", url=served.url, admin_key=served.keys["admin"])
    with pytest.raises(DeployError, match="403"):
        deploy(served.workspace, "support", url=served.url, admin_key=served.keys["chat"])
    with served.http("admin") as http:
        assert http.delete("/v1/adapters/support").status_code == 200


# --- disconnects and the request log ---------------------------------------------------------------


def test_client_disconnect_stops_generation_and_the_server_stays_up(served):
    long_answers = create_app(
        served.engine, auth=KeyStore(served.workspace), request_log=served.log, limits=Limits(max_tokens_cap=400)
    )
    before = dict(served.engine.stats)
    body = json.dumps(
        {"model": "base", "messages": MESSAGES, "max_tokens": 400, "temperature": 0, "stream": True, "ignore_eos": True}
    )
    with ServerThread(long_answers) as server:
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {served.keys['chat']}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
            connection.sendall(request.encode())
            received = b""
            while received.count(b"data: ") < 3:  # the role chunk and two tokens
                received += connection.recv(4096)
        deadline = time.monotonic() + 20
        while served.engine.stats["cancelled"] == before["cancelled"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert served.engine.stats["cancelled"] == before["cancelled"] + 1
        assert served.engine.stats["tokens"] - before["tokens"] < 400
    assert healthy(served)
    served.log.flush()
    assert any(row["status"] == 499 for row in read_request_log(served.workspace, limit=50))


def test_request_log_records_requests_with_redacted_texts(served):
    client = served.client()
    client.chat.completions.create(
        model="acme", max_tokens=2, messages=[{"role": "user", "content": "Mail me at jane.doe@example.com"}]
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=MESSAGES)
    served.log.flush()
    rows = read_request_log(served.workspace, limit=2)
    missing, answered = rows
    assert (missing["status"], missing["model"], missing["endpoint"]) == (404, "missing", "/v1/chat/completions")
    assert answered["status"] == 200 and answered["model"] == "acme"
    assert answered["prompt_tokens"] > 0 and answered["completion_tokens"] <= 2
    assert answered["key_id"] == served.keys["chat"].split("_")[1]
    assert "jane.doe@example.com" not in answered["prompt_text"] and "[EMAIL]" in answered["prompt_text"]
    assert answered["latency_ms"] > 0


def test_many_concurrent_clients_are_all_answered(served):
    results: list[int] = []

    def ask() -> None:
        response = served.client().chat.completions.create(
            model="acme", messages=MESSAGES, max_tokens=6, temperature=0, extra_body={"ignore_eos": True}
        )
        results.append(response.usage.completion_tokens)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [6] * 8


def test_no_auth_is_refused_off_loopback(served):
    with pytest.raises(ServeError, match="loopback"):
        serve(served.workspace, models=["acme"], host="0.0.0.0", no_auth=True)


def test_the_event_loop_never_waits_for_generation(served):
    release = threading.Event()
    ids = served.engine.chat_prompt(served.engine.get("base"), MESSAGES)
    # A request whose events block: the generation thread is stuck inside it until released.
    returned: list[bool] = []
    job = served.engine.submit(
        served.engine.get("base"), ids, SamplingParams(max_tokens=2), lambda event: returned.append(release.wait(30))
    )
    try:
        time.sleep(0.1)
        assert healthy(served)
        assert served.client().models.list().data
        # Both answered while the generation thread was still stuck inside the first event (no timing bound).
        assert not returned
    finally:
        release.set()
        job.cancel()
