"""`POST /v1/classify` over real HTTP (uvicorn on loopback): labels with probabilities and abstain decisions
from a classification head trained on the tiny model, behind the same API keys as the chat endpoints,
and the bad inputs a client can send."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from helpers.classify import ticket_examples
from helpers.data import register_dataset
from helpers.serve import ServerThread
from tailorlm.classifier import load_classifier
from tailorlm.config import parse_project
from tailorlm.serve.routes.classify import MAX_ITEMS
from tailorlm.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def classify_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The API with the tiny engine and a classification head named `tickets`; yields (url, a chat key)."""
    from tailorlm.serve.app import create_app
    from tailorlm.serve.auth import KeyStore, create_key
    from tailorlm.serve.engine import Engine
    from tailorlm.serve.limits import Limits
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
    classifier = load_classifier(result.run_dir / "adapter", tiny_model_dir, device="cpu")
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
