"""`POST /v1/classify` over real HTTP (uvicorn on loopback): labels with probabilities and abstain decisions
from a classification head trained on the tiny model, behind the same API keys as the chat endpoints,
and the bad inputs a client can send. The chat endpoint answers with the label for clients that only
speak chat (the official `openai` client, whole and streamed), and `tailorlm serve` serves a
classification model on its own (no generative model, no engine)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from helpers.classify import ticket_examples
from helpers.data import register_dataset
from helpers.serve import ServerThread, openai_client
from tailorlm.classifier import load_classifier
from tailorlm.config import parse_project
from tailorlm.serve.routes.classify import ABSTAIN_ANSWER, MAX_ITEMS
from tailorlm.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def classify_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A workspace with a classification run on the tiny model: (workspace root, run id, its adapter folder)."""
    from tailorlm.workspace import Workspace

    root = tmp_path_factory.mktemp("classify-serve")
    workspace = Workspace(root / "ws")
    register_dataset(workspace, ticket_examples(96), name="tickets", val=24, test=0)
    project = parse_project(
        {
            "project": "tickets",
            "base_model": str(tiny_model_dir),
            "task": "classify",
            "train": {"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0},
        },
        root=root,
    )
    result = train(workspace, project)
    workspace.close()
    return root / "ws", result.run.id, result.run_dir / "adapter"


@pytest.fixture(scope="module")
def classify_server(classify_run, tiny_model_dir: Path):
    """The API with the tiny engine and a classification head named `tickets`; yields (url, a chat key)."""
    from tailorlm.serve.app import create_app
    from tailorlm.serve.auth import KeyStore, create_key
    from tailorlm.serve.engine import Engine
    from tailorlm.serve.limits import Limits
    from tailorlm.workspace import Workspace

    root, _, adapter = classify_run
    workspace = Workspace(root)
    classifier = load_classifier(adapter, tiny_model_dir, device="cpu")
    _, key = create_key(workspace, "chat", name="app")
    engine = Engine(tiny_model_dir, device="cpu", max_batch_size=2)
    app = create_app(
        engine, auth=KeyStore(workspace), limits=Limits(), request_log=None, classifiers={"tickets": classifier}
    )
    try:
        with ServerThread(app) as server:
            yield server.url, key
    finally:
        engine.close()
        workspace.close()


def post(url: str, key: str | None, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/classify", json=body, headers=headers, timeout=60)


def test_one_text_and_a_batch_get_labels_probabilities_and_abstain_flags(classify_server):
    url, key = classify_server
    one = post(url, key, {"model": "tickets", "input": "refund invoice please help"})
    assert one.status_code == 200, one.text
    [item] = one.json()["data"]
    assert item["label"] == "billing" or item["abstained"]
    assert set(item["probabilities"]) == {"billing", "shipping", "technical"}
    assert abs(sum(item["probabilities"].values()) - 1) < 1e-4
    texts = ["parcel shipped the days", "restart hub button thank", "invoice price we you"]
    batch = post(url, key, {"model": "tickets", "input": texts, "min_confidence": 0}).json()["data"]
    assert [d["index"] for d in batch] == [0, 1, 2]
    assert [d["label"] for d in batch] == ["shipping", "technical", "billing"]
    assert not any(d["abstained"] for d in batch)
    never_sure = post(url, key, {"model": "tickets", "input": texts, "min_confidence": 1}).json()["data"]
    assert all(d["abstained"] and d["label"] is None for d in never_sure)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "tickets", "input": []}, 400, "empty_input"),
        ({"model": "tickets", "input": "   "}, 400, "empty_input"),
        ({"model": "nope", "input": "hi"}, 404, "model_not_found"),
        ({"model": "base", "input": "hi"}, 404, "model_not_found"),  # served, but not a classifier
        ({"model": "tickets", "input": ["x"] * (MAX_ITEMS + 1)}, 400, "too_many_items"),
    ],
)
def test_bad_inputs_get_a_clear_error(classify_server, body, status, code):
    url, key = classify_server
    response = post(url, key, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_the_same_keys_as_chat(classify_server):
    url, _ = classify_server
    assert post(url, None, {"model": "tickets", "input": "hi"}).status_code == 401
    assert post(url, "tlm-wrong", {"model": "tickets", "input": "hi"}).status_code == 401
    malformed = post(url, _, {"model": "tickets"})
    assert malformed.status_code == 400 or malformed.status_code == 422


TEXTS = ["parcel shipped the days", "restart hub button thank", "invoice price we you", "refund invoice please help"]


def expected_answers(url: str, key: str | None) -> list[str]:
    """What `/v1/classify` says of TEXTS, as a chat answer: the label, or ABSTAIN_ANSWER."""
    data = post(url, key, {"model": "tickets", "input": TEXTS}).json()["data"]
    return [ABSTAIN_ANSWER if d["abstained"] else d["label"] for d in data]


def chat_answers(url: str, key: str | None) -> list[str]:
    client = openai_client(url, key)
    answers = []
    for text in TEXTS:
        answer = client.chat.completions.create(
            model="tickets", messages=[{"role": "system", "content": "Route it."}, {"role": "user", "content": text}]
        )
        assert answer.model == "tickets" and answer.choices[0].finish_reason == "stop"
        assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens == 0  # no token generated
        answers.append(answer.choices[0].message.content)
    return answers


def test_the_chat_endpoint_answers_with_the_label(classify_server):
    url, key = classify_server
    expected = expected_answers(url, key)
    assert set(expected) - {ABSTAIN_ANSWER} <= {"billing", "shipping", "technical"}
    assert chat_answers(url, key) == expected
    stream = openai_client(url, key).chat.completions.create(
        model="tickets",
        messages=[{"role": "user", "content": TEXTS[0]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected[0]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 0
    models = [m.id for m in openai_client(url, key).models.list()]
    assert "tickets" in models and "base" in models


def test_the_chat_endpoint_refuses_a_conversation_with_nothing_to_classify(classify_server):
    import openai

    url, key = classify_server
    with pytest.raises(openai.BadRequestError, match="last user message"):
        openai_client(url, key).chat.completions.create(
            model="tickets", messages=[{"role": "system", "content": "Route tickets."}]
        )


def test_serve_runs_a_classification_model_on_its_own(classify_run, tmp_path):
    """`tailorlm serve -m RUN` with only a classification run: no generative model, no engine; classify,
    chat and the model list answer; text completion names the model as not generative."""
    import socket
    import subprocess
    import sys

    import openai

    from tailorlm.serve import wait_until_healthy

    root, run_id, _ = classify_run
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "tailorlm.cli", "serve", "-m", f"tickets={run_id}", "-w", str(root)]
    command += ["--no-auth", "--port", str(port), "--threads", "1"]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process=process, timeout=120)
        health = httpx.get(f"{url}/health", timeout=30).json()
        assert health["models"] == ["tickets"] and health["queued"] == 0
        assert [m.id for m in openai_client(url).models.list()] == ["tickets"]
        assert chat_answers(url, None) == expected_answers(url, None)
        with pytest.raises(openai.NotFoundError, match="only classification models"):
            openai_client(url).completions.create(model="tickets", prompt="Hello")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    assert process.returncode in (0, -signal.SIGTERM, 143), (tmp_path / "serve.log").read_text()[-2000:]
