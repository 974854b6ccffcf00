"""Tiny, learnable datasets and runs on the tiny model, written the way the stages write them."""

from __future__ import annotations

from pathlib import Path


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
