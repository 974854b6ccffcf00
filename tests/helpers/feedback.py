"""Feedback for tests: reviewers who prefer the house style (first person plural, signed by the team)
over a curt answer, as preference pairs, single ratings or corrections, and a project on the tiny model
whose one source is that feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailorlm.config import Project, parse_project
from tailorlm.feedback import FeedbackRecord

TOPICS = ["order", "parcel", "refund", "invoice", "account", "password", "delivery", "return"]


def ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Where is my {TOPICS[i % len(TOPICS)]} number {i}?"}]


def good(i: int) -> str:
    return f"We have checked {TOPICS[i % len(TOPICS)]} {i}; we will email you today. The Acme Care Team"


def bad(i: int) -> str:
    return f"dunno {i}"


def style_feedback(n: int, kind: str = "pairs") -> list[FeedbackRecord]:
    """`pairs`: an up and a down answer per prompt; `corrections`: a down answer corrected; `singles`:
    every prompt rated once, alternately up (good answer) and down (bad answer)."""
    records = []
    for i in range(n):
        if kind == "pairs":
            records += [
                FeedbackRecord(messages=ask(i), answer=good(i), rating="up", pair=f"p{i}"),
                FeedbackRecord(messages=ask(i), answer=bad(i), rating="down", pair=f"p{i}"),
            ]
        elif kind == "corrections":
            records.append(FeedbackRecord(messages=ask(i), answer=bad(i), rating=1, corrected=good(i)))
        else:
            records.append(
                FeedbackRecord(messages=ask(i), answer=good(i) if i % 2 else bad(i), rating=5 if i % 2 else 1)
            )
    return records


def write_records(path: Path, records: list[FeedbackRecord]) -> Path:
    from tailorlm.feedback import write_feedback

    write_feedback(path, records, "records")
    return path


def feedback_project(tiny_model_dir: Path, root: Path, feedback_file: Path, **train: Any) -> Project:
    settings = {
        "method": "lora",
        "max_steps": 12,
        "batch_size": 4,
        "learning_rate": 5e-3,
        "logging_steps": 2,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        **train,
    }
    return parse_project(
        {
            "project": "fb",
            "base_model": str(tiny_model_dir),
            "system_prompt": "You are Acme support.",
            "sources": [{"path": str(feedback_file), "kind": "feedback"}],
            "prepare": {"split": {"test": 0.2, "val": 0.1}, "pii": "redact", "dedup": {"near_threshold": None}},
            "train": settings,
        },
        root=root,
    )


def preference_margin(artifact_dir: Path | None, base_model: Path, examples: list[Any]) -> float:
    """Mean log-probability of the chosen answer minus the rejected one, over preference pairs, under the
    base model (`artifact_dir` None) or base + a trained adapter: what preference training should raise."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tailorlm.modeling import load_trained
    from tailorlm.train.preference import trl_rows

    if artifact_dir is None:
        model = AutoModelForCausalLM.from_pretrained(base_model, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    else:
        model, tokenizer = load_trained(artifact_dir, base_model)
    model.eval()

    def logprob(prompt: str, answer: str) -> float:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
        targets = torch.tensor(ids[1:])
        picked = logits.gather(1, targets[:, None])[:, 0]
        return float(picked[len(prompt_ids) - 1 :].sum())

    margins = []
    for example in examples:
        for row in trl_rows(tokenizer, example, "dpo"):
            margins.append(logprob(row["prompt"], row["chosen"]) - logprob(row["prompt"], row["rejected"]))
    return sum(margins) / len(margins)
