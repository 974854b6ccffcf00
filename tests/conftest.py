"""Shared fixtures: every test runs offline, with HOME and the workspace pointed at a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests run where CUDA is, and are skipped with the reason elsewhere (torch is imported only
    when some are collected)."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False")
    for item in gpu_tests:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the network or the user's home: offline variables and a temp HOME."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("MPLCONFIGDIR", str(home / "mpl"))
    monkeypatch.delenv("TAILORLM_WORKSPACE", raising=False)
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def shared_data() -> Path:
    """The real public data in ../shared/data; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public data not found at {SHARED_DATA}")
    return SHARED_DATA


TINY_CORPUS = [
    "Thank you for contacting Acme. We are happy to help with your thermostat.",
    "Your order has shipped and will arrive within three business days.",
    "Please restart the hub, then hold the pairing button for five seconds.",
    "Refunds are issued to the original payment method within ten days.",
    "The Acme Thermo T5 supports heat pumps, boilers and two-stage systems.",
    "Question: how do I reset my password? Answer: use the link on the sign-in page.",
    "Billing shipping technical account returns installation low normal high urgent",
    '{"company": "ACME", "date": "2018-12-25", "total": "9.00"} JSON fields and values.',
] * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama model (random weights, hidden 64) with a BPE tokenizer trained on the fly."""
    from tailorlm.demo import build_demo_model

    os.environ.update(OFFLINE_ENV)
    return build_demo_model(
        tmp_path_factory.mktemp("tiny-model"),
        TINY_CORPUS,
        hidden_size=64,
        layers=2,
        heads=2,
        intermediate_size=128,
        vocab_size=512,
        max_positions=512,
    )


@pytest.fixture
def workspace(tmp_path: Path):
    """An empty workspace in a temp dir."""
    from tailorlm.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture
def tiny_project(tiny_model_dir: Path, tmp_path: Path):
    """A project on the tiny model whose dataset is registered by the test."""
    from tailorlm.config import parse_project

    return parse_project(
        {
            "project": "tiny",
            "base_model": str(tiny_model_dir),
            "system_prompt": "You are Acme support.",
            "train": {
                "method": "lora",
                "max_steps": 12,
                "batch_size": 4,
                "learning_rate": 3e-3,
                "logging_steps": 2,
                "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            },
        },
        root=tmp_path,
    )


@pytest.fixture(scope="module")
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy 2-core machine they make it ~8x slower."""
    from helpers.serve import single_torch_thread

    with single_torch_thread():
        yield


@pytest.fixture(scope="module")
def judge_server(tiny_model_dir: Path):
    """`tailorlm.serve` on a free loopback port serving the tiny model, recording every chat request:
    yields (base URL ending in /v1, the recorder). For the judge and OpenAI-compatible endpoint tests."""
    from helpers.serve import RecordingMiddleware, ServerThread
    from tailorlm.serve.app import create_app
    from tailorlm.serve.engine import Engine
    from tailorlm.serve.limits import Limits

    engine = Engine(tiny_model_dir, device="cpu", max_batch_size=8)
    recorder = RecordingMiddleware(create_app(engine, auth=None, limits=Limits(max_tokens_cap=8), request_log=None))
    try:
        with ServerThread(recorder) as server:
            yield f"{server.url}/v1", recorder
    finally:
        engine.close()
