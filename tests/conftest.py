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


def make_chat_examples(n: int = 40):
    """Small, learnable chat examples: each question has one fixed answer."""
    from tailorlm.formats.examples import Example

    answers = [
        "Your order has shipped and will arrive within three business days.",
        "Please restart the hub, then hold the pairing button for five seconds.",
        "Refunds are issued to the original payment method within ten days.",
        "The Acme Thermo T5 supports heat pumps, boilers and two-stage systems.",
    ]
    questions = [
        "Where is my order?",
        "How do I pair the hub?",
        "When do I get my refund?",
        "Does T5 fit my boiler?",
    ]
    return [
        Example.chat(
            system="You are Acme support.",
            user=f"{questions[i % 4]} (ticket {i})",
            assistant=answers[i % 4],
            source=f"doc-{i}",
        )
        for i in range(n)
    ]


def register_dataset(ws, examples, *, name: str = "tiny", val: int = 4, test: int = 4):
    """Write examples as a dataset artifact (train/val/test) the way `prepare` does."""
    from tailorlm.registry import Artifact
    from tailorlm.workspace import atomic_write_jsonl, sha256_tree

    version = ws.next_version("dataset", name)
    final = ws.dataset_dir(name, version)
    splits = {"val": examples[:val], "test": examples[val : val + test], "train": examples[val + test :]}
    with ws.staging(final) as staging:
        for split, rows in splits.items():
            atomic_write_jsonl(staging / f"{split}.jsonl", [e.to_json() for e in rows])
    return ws.registry.add(
        Artifact(
            id=f"dataset-{name}-{version}",
            kind="dataset",
            name=name,
            version=version,
            hash=sha256_tree(final),
            path=ws.relative(final),
            meta={"counts": {k: len(v) for k, v in splits.items()}},
        )
    )


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


def train_registered(ws, model_dir: Path, *names: str, learning_rate: float = 3e-2, max_steps: int = 12) -> str:
    """Train one LoRA run on the tiny model and register it under each name; returns the run id. The
    high learning rate makes the adapter change the answers, so parity checks mean something."""
    from tailorlm.config import parse_project
    from tailorlm.register import register
    from tailorlm.train import train

    register_dataset(ws, make_chat_examples(40))
    project = parse_project(
        {
            "project": "tiny",
            "base_model": str(model_dir),
            "system_prompt": "You are Acme support.",
            "train": {
                "method": "lora",
                "max_steps": max_steps,
                "batch_size": 4,
                "learning_rate": learning_rate,
                "logging_steps": 2,
                "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            },
        },
        root=ws.root,
    )
    run_id = train(ws, project).run.id
    for index, name in enumerate(names):
        register(ws, run_id, name=name, system_prompt="You are Acme support." if index == 0 else None)
    return run_id


@pytest.fixture(scope="module")
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy 2-core machine they make it ~8x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
