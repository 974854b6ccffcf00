"""Defaults by device and data size: precision, gradient checkpointing, epochs, learning rate, step
intervals — decided once, printed, and recorded in the run so nothing is silently chosen."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.config import PREFERENCE_METHODS, TrainSettings


def detect_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def auto_epochs(n_train: int) -> int:
    """3 passes, raised for small sets so the model sees ≥ 100 examples' worth of steps, lowered for
    large ones so it sees ≤ 25,000 (the rule OpenAI's fine-tuning API documents)."""
    if n_train <= 0:
        return 1
    if n_train * 3 < 100:
        return min(25, math.ceil(100 / n_train))
    if n_train * 3 > 25_000:
        return max(1, 25_000 // n_train)
    return 3


@dataclass
class Plan:
    device: str
    precision: str
    gradient_checkpointing: bool
    epochs: int
    learning_rate: float
    steps_per_epoch: int
    total_steps: int
    eval_steps: int
    save_steps: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(settings: TrainSettings, n_train: int, *, device: str | None = None) -> Plan:
    import torch

    device = device or detect_device()
    notes: list[str] = []
    precision = settings.precision
    if precision == "auto" and device == "cuda":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    elif precision == "auto":
        precision = "fp32"
    if precision == "fp16" and device == "cpu":
        raise ValueError("train.precision: fp16 is not supported on CPU (use fp32 or bf16)")
    checkpointing = settings.gradient_checkpointing
    if checkpointing == "auto":
        checkpointing = device == "cuda" and settings.method in ("full", "qlora")
    epochs = auto_epochs(n_train) if settings.epochs == "auto" else settings.epochs
    if settings.epochs == "auto":
        notes.append(f"epochs auto: {epochs} for {n_train} training examples")
    lr = settings.learning_rate or (
        2e-5 if settings.method == "full" else 5e-5 if settings.method in PREFERENCE_METHODS else 2e-4
    )
    per_step = settings.batch_size * settings.gradient_accumulation
    steps_per_epoch = max(1, math.ceil(n_train / per_step))
    total = settings.max_steps or steps_per_epoch * epochs
    return Plan(
        device=device,
        precision=precision,
        gradient_checkpointing=bool(checkpointing),
        epochs=epochs,
        learning_rate=lr,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        eval_steps=settings.eval_steps or max(1, total // 5),
        save_steps=settings.save_steps or max(1, total // 2),
        notes=notes,
    )


def describe_plan(plan: Plan, method: str, n_train: int, resume_from: Path | None = None) -> str:
    """The line printed before training starts: what will run where, and for how long."""
    line = (
        f"plan: {method} on {plan.device}, {plan.precision}, {plan.total_steps} steps "
        f"({plan.epochs} epoch(s) of {plan.steps_per_epoch} over {n_train} examples), "
        f"learning rate {plan.learning_rate:g}" + (", gradient checkpointing" if plan.gradient_checkpointing else "")
    )
    if resume_from is not None:
        line += f"; resuming from {resume_from.name}"
    return "; ".join([line, *plan.notes])
