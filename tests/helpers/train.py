"""Training projects on the tiny model, and the losses a run logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def project_for(model_dir: Path, root: Path, **train_settings: Any):
    """A project on `model_dir` whose train settings learn the tiny chat set quickly; `train_settings`
    override them (e.g. `method="qlora"`)."""
    from tailorlm.config import parse_project

    settings = {
        "max_steps": 60,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "logging_steps": 5,
        "warmup_ratio": 0.0,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
    }
    settings.update(train_settings)
    return parse_project({"project": "tiny", "base_model": str(model_dir), "train": settings}, root=root)


def losses(result) -> list[float]:
    """The training losses a `TrainResult` logged, in order."""
    return [row["loss"] for row in result.metrics_rows() if "loss" in row]
