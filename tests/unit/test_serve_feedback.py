"""`POST /v1/feedback` over real HTTP: an answer from the official client rated by the completion id the
server returned, stored with its conversation, model and decoding; the request log records the id; keys
and scopes as for chat (no key 401, another key's answer 404, a model the key may not use 403); an old
answer needs its texts; a bad rating is a 422 naming the field."""

from __future__ import annotations

import httpx2
import pytest

from helpers.serve import ServerThread, openai_client, single_torch_thread, trained_workspace_root
from tailorlm.feedback import list_feedback, record
from tailorlm.modeling import resolve_model
from tailorlm.serve.app import create_app
from tailorlm.serve.auth import KeyStore, create_key
from tailorlm.serve.engine import Engine
from tailorlm.serve.limits import Limits
from tailorlm.serve.request_log import RequestLog, read_request_log
from tailorlm.workspace import Workspace

MESSAGES = [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    workspace = Workspace(trained_workspace_root(tmp_path_factory, tiny_model_dir))
    keys = {
        "bot": create_key(workspace, "chat", name="bot")[1],
        "other": create_key(workspace, "chat", name="other bot")[1],
        "base-only": create_key(workspace, "chat", models=["base"], name="base bot")[1],
        "admin": create_key(workspace, "admin", name="ops")[1],
    }
    with single_torch_thread():
        engine = Engine(tiny_model_dir, max_batch_size=4, max_queue=8, threads=1)
        engine.load("acme", resolve_model(workspace, "acme"))
        log = RequestLog(workspace)
        app = create_app(
            engine,
            auth=KeyStore(workspace),
            request_log=log,
            limits=Limits(max_body_bytes=20_000, max_tokens_cap=16, rate_limit_per_minute=10_000),
            feedback=lambda item: record(workspace, item),
        )
        with ServerThread(app) as running:
            yield workspace, running.url, keys, app, log
        engine.close()
        log.close()


def post(url: str, key: str | None, body: dict) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=60)


def test_an_answer_is_rated_and_corrected_by_its_completion_id(server):
    workspace, url, keys, _app, log = server
    answer = openai_client(url, keys["bot"]).chat.completions.create(
        model="acme", messages=MESSAGES, max_tokens=6, temperature=0, extra_body={"ignore_eos": True}
    )
    given = answer.choices[0].message.content
    response = post(
        url,
        keys["bot"],
        {"completion_id": answer.id, "rating": "down", "corrected": "We will check it today.", "tags": ["tone"]},
    )
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["object"] == "feedback" and receipt["completion_id"] == answer.id and receipt["model"] == "acme@v1"

    [stored] = [f for f in list_feedback(workspace, source="api") if f.completion_id == answer.id]
    assert stored.id == receipt["id"] and stored.answer == given and stored.rating == "down"
    assert [m.model_dump() for m in stored.messages] == MESSAGES and stored.corrected == "We will check it today."
    assert stored.model == "acme@v1" and stored.decoding["temperature"] == 0 and stored.decoding["max_tokens"] == 6
    assert stored.reviewer == keys["bot"].split("_")[1]  # the key's public id
    log.flush()
    assert answer.id in {row["completion_id"] for row in read_request_log(workspace, limit=20)}


def test_feedback_takes_the_keys_and_scopes_of_chat(server):
    _workspace, url, keys, _app, _log = server
    answer = openai_client(url, keys["bot"]).chat.completions.create(model="acme", messages=MESSAGES, max_tokens=4)
    assert post(url, None, {"completion_id": answer.id, "rating": "up"}).status_code == 401
    assert post(url, "tlm_nope_nope", {"completion_id": answer.id, "rating": "up"}).status_code == 401
    other = post(url, keys["other"], {"completion_id": answer.id, "rating": "up"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "completion_not_found"
    assert post(url, keys["admin"], {"completion_id": answer.id, "rating": 4}).status_code == 200
    assert post(url, keys["bot"], {"completion_id": "chatcmpl-unknown", "rating": "up"}).status_code == 404
    bad = post(url, keys["bot"], {"completion_id": answer.id, "rating": 9})
    assert bad.status_code == 422 and "rating" in bad.text
    empty = post(url, keys["bot"], {"completion_id": answer.id})
    assert empty.status_code == 400 and "rating, a corrected answer" in empty.json()["error"]["message"]


def test_an_answer_no_longer_in_memory_needs_its_texts_and_the_key_may_use_its_model(server):
    _workspace, url, keys, app, log = server
    answer = openai_client(url, keys["bot"]).completions.create(model="acme", prompt="Hello", max_tokens=4)
    log.flush()
    app.state.server.answers._answers.clear()  # the server restarted, or many answers since
    missing = post(url, keys["bot"], {"completion_id": answer.id, "rating": "up"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    given = {"messages": [{"role": "user", "content": "Hello"}], "answer": answer.choices[0].text or "x"}
    assert post(url, keys["base-only"], {"completion_id": answer.id, "rating": "up", **given}).status_code == 404
    assert post(url, keys["bot"], {"completion_id": answer.id, "rating": "up", **given}).status_code == 200
