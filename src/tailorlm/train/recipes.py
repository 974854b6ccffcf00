"""Training recipes — what a run optimises — one module each, chosen by the project's task and method.

A recipe is a module with three functions:

    handles(settings, task) -> bool          does this recipe train this run?
    load_splits(tokenizer, workspace, dataset, settings) -> (train, val)   tokenised splits (`Split`)
    fine_tune(run_dir=..., base_model=..., tokenizer=..., settings=..., plan=..., train_split=...,
              val_split=..., resume_from=..., callbacks=..., progress=...) -> metrics

Adding one (preference training, a classification head, ...) is that module plus one line in `RECIPES`.
The runner asks them in order and takes the first that handles the run; `sft` comes last and takes every
run the others leave.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

from tailorlm.config import TrainSettings
from tailorlm.progress import Progress
from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace

RECIPES: list[str] = [
    "tailorlm.train.preference",  # dpo, kto, orpo on a LoRA adapter (TRL)
    "tailorlm.train.classify",  # task classify with a classification head (the default for that task)
    "tailorlm.train.sft",  # supervised answers (full, LoRA, QLoRA, DoRA); keep it last
]


class Split(Protocol):
    """A tokenised split as the runner sees it: rows to count, a summary for the run's record."""

    rows: list[Any]

    def summary(self) -> dict[str, int]: ...


class Recipe(Protocol):
    """The functions a recipe module defines (a module satisfies this protocol)."""

    def handles(self, settings: TrainSettings, task: str) -> bool: ...

    def load_splits(
        self, tokenizer: Any, workspace: Workspace, dataset: Artifact, settings: TrainSettings
    ) -> tuple[Split, Split]: ...

    def fine_tune(
        self,
        *,
        run_dir: Path,
        base_model: Path,
        tokenizer: Any,
        settings: TrainSettings,
        plan: Any,
        train_split: Any,
        val_split: Any,
        resume_from: Path | None = None,
        callbacks: list[Any] | None = None,
        progress: Progress = ...,
        tracking_dir: Path | None = None,
    ) -> dict[str, Any]: ...


def recipe_for(settings: TrainSettings, task: str) -> tuple[str, Recipe]:
    """The recipe that trains a run of `task` with `settings`, and its short name (`sft`, ...)."""
    for name in RECIPES:
        module: ModuleType = importlib.import_module(name)
        if module.handles(settings, task):
            return name.rsplit(".", 1)[-1], cast(Recipe, module)
    raise LookupError(f"no training recipe handles task {task!r} with method {settings.method!r}")
