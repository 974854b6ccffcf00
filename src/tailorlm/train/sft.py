"""The supervised fine-tuning recipe, top to bottom: set up the model and trainer → train → save.

A transformers `Trainer` with assistant-masked labels, length-grouped batches, short examples packed into shared
rows without leaks (train/packing.py) and a lean loss (train/loss.py: logits only for the trained tokens, a chunk
at a time, never `[batch, seq, vocab]` whole): on CPU and on
small models this beats TRL's `SFTTrainer` (see docs/benchmarks.md), and every setting TRL would choose
silently (autocast, checkpointing, learning rate, max length) is chosen here on purpose.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainingArguments, set_seed
from transformers.integrations import get_reporting_integration_callbacks
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tailorlm.config import TrainSettings
from tailorlm.dataset_splits import load_split
from tailorlm.errors import UserError
from tailorlm.lifecycle import Interrupted, stop_requested
from tailorlm.modeling import add_adapters, load_base_model
from tailorlm.progress import SILENT, Progress, Task
from tailorlm.registry import Artifact
from tailorlm.train import strategy
from tailorlm.train.checkpoints import StopAndWholeRunLoss, save_checkpoints_atomically
from tailorlm.train.data import ListDataset, PadCollator, TokenizedSplit, tokenize_split
from tailorlm.train.packing import PackCollator, keeps_examples_apart
from tailorlm.train.plan import Plan
from tailorlm.train.trainer import LeanTrainer
from tailorlm.workspace import Workspace


def handles(settings: TrainSettings, task: str) -> bool:
    """Every run the more specific recipes leave (it comes last in `recipes.RECIPES`)."""
    return True


def load_splits(
    tokenizer: Any, workspace: Workspace, dataset: Artifact, settings: TrainSettings
) -> tuple[TokenizedSplit, TokenizedSplit]:
    """The train and val splits tokenised exactly as `data inspect` shows them (template, loss mask)."""
    return (
        tokenize_split(tokenizer, load_split(workspace, dataset, "train"), settings.max_length),
        tokenize_split(tokenizer, load_split(workspace, dataset, "val"), settings.max_length),
    )


def fine_tune(
    *,
    run_dir: Path,
    base_model: Path,
    tokenizer: Any,
    settings: TrainSettings,
    plan: Plan,
    train_split: TokenizedSplit,
    val_split: TokenizedSplit | None,
    resume_from: Path | None = None,
    callbacks: list[Any] | None = None,
    progress: Progress = SILENT,
    tracking_dir: Path | None = None,
) -> dict[str, Any]:
    """Train and save into `run_dir` (`adapter/` or `model/`); returns the trainer's final metrics.

    `progress` gets a task counting the steps (with loss and tokens/s) and a line per validation pass;
    `callbacks` are extra `transformers.TrainerCallback`s (benchmarks, tests)."""
    # --- setup ---------------------------------------------------------------------------------
    set_seed(settings.seed)  # adapter initialisation depends on it: same seed, same run
    model = load_base_model(base_model, method=settings.method, precision=plan.precision, device=plan.device)
    if settings.method == "full":
        if plan.gradient_checkpointing:
            model.gradient_checkpointing_enable()
    else:
        model = add_adapters(
            model,
            settings.method,
            settings.lora,
            gradient_checkpointing=plan.gradient_checkpointing,
            dropout=plan.lora_dropout,
        )
    model.config.use_cache = False
    collator = batch_collator(model, tokenizer, settings, plan, progress)
    has_val = val_split is not None and len(val_split.rows) > 0
    arguments = TrainingArguments(
        **shared_arguments(run_dir, settings, plan, has_val, plan.learning_rate),
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,  # every parameter that trains is used in each step
        prediction_loss_only=True,
        label_names=["labels"],  # validation goes through the trainer's (lean) loss too, for PEFT models as well
    )
    trackers = ExitStack()  # the trackers read their folders when the Trainer is built and while it trains
    trackers.enter_context(tracker_environment(settings.report_to, run_dir, tracking_dir))
    trainer = LeanTrainer(  # its loss: assistant tokens only, logits a chunk at a time (train/loss.py)
        model=model,
        args=arguments,
        train_dataset=ListDataset(train_split.rows),
        eval_dataset=ListDataset(val_split.rows) if has_val and val_split is not None else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[StopAndWholeRunLoss(), MetricsLogger(run_dir / "metrics.jsonl"), *(callbacks or [])],
    )
    strategy.check_trainer(trainer, plan.strategy)  # what was planned, on every process, or nothing
    save_checkpoints_atomically(trainer)  # complete or absent: a kill mid-save leaves nothing to resume from
    trainer.remove_callback(ProgressCallback)  # our progress (bar or log lines) instead of tqdm + dict dumps
    trainer.remove_callback(PrinterCallback)
    reporter = ReportProgress(progress)
    trainer.add_callback(reporter)

    # --- train ---------------------------------------------------------------------------------
    try:
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        reporter.close()  # on_train_end is not called when training stops with an error
        trackers.close()
    if signal_name := stop_requested():  # SIGTERM or Ctrl-C: a checkpoint was saved at the last step
        raise Interrupted(signal_name)
    metrics = dict(output.metrics)
    for tracker in get_reporting_integration_callbacks(settings.report_to):
        trainer.remove_callback(tracker)  # their run ended with training; the final pass is in run.json
    if has_val:
        metrics.update(trainer.evaluate())

    # --- save ----------------------------------------------------------------------------------
    target = run_dir / ("model" if settings.method == "full" else "adapter")
    if trainer.is_fsdp_enabled:  # every process hands over its shards; the Trainer writes on rank 0
        trainer.save_model(str(target))
        (target / "training_args.bin").unlink(missing_ok=True)
    elif trainer.is_world_process_zero():  # one set of artifacts per launch
        trainer.model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    return metrics


def batch_collator(model: Any, tokenizer: Any, settings: TrainSettings, plan: Plan, progress: Progress) -> Any:
    """Packed batches when the plan packs and the loaded model keeps packed examples apart, else padded ones.
    `packing: auto` on a model that leaks falls back to padding (and the plan says so); `packing: true` refuses."""
    if plan.packing and not keeps_examples_apart(model):
        reason = f"{type(model.get_base_model() if hasattr(model, 'get_base_model') else model).__name__}'s attention"
        reason += f" ({model.config._attn_implementation}) lets packed examples see each other"
        if settings.packing is True:
            raise UserError(f"train.packing: {reason}", hint="set train.packing: auto or false")
        plan.packing = False
        plan.notes.append(f"packing off: {reason}")
        progress.say(f"packing off: {reason}")
    if plan.packing:
        return PackCollator(tokenizer.pad_token_id)
    return PadCollator(tokenizer.pad_token_id)


def shared_arguments(
    run_dir: Path, settings: TrainSettings, plan: Plan, has_val: bool, learning_rate: float
) -> dict[str, Any]:
    """The trainer arguments every recipe sets alike (batch, schedule, precision, evaluation and checkpoint
    steps, logging, trackers, seeds, device); each recipe adds its own."""
    return {
        "output_dir": str(run_dir / "checkpoints"),
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation,
        "learning_rate": learning_rate,
        "num_train_epochs": plan.epochs,
        "max_steps": settings.max_steps or -1,
        "lr_scheduler_type": settings.scheduler,
        "warmup_steps": round(settings.warmup_ratio * plan.total_steps),
        "weight_decay": settings.weight_decay,
        "bf16": plan.precision == "bf16",
        "fp16": plan.precision == "fp16",
        "eval_strategy": "steps" if has_val else "no",
        "eval_steps": plan.eval_steps,
        "save_strategy": "steps",
        "save_steps": plan.save_steps,
        "save_total_limit": 2,
        "logging_steps": settings.logging_steps,
        "logging_first_step": True,
        "report_to": list(settings.report_to) or "none",
        "run_name": run_dir.name,  # the trackers' name for the run
        "seed": settings.seed,
        "data_seed": settings.seed,
        "use_cpu": plan.device == "cpu",
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        **strategy.trainer_arguments(
            plan.strategy,
            micro_batch=settings.batch_size,
            gradient_accumulation=settings.gradient_accumulation,
            precision=plan.precision,
        ),
    }


@contextmanager
def tracker_environment(report_to: Sequence[str], run_dir: Path, tracking_dir: Path | None) -> Iterator[None]:
    """Point the trackers the Trainer reports to at local folders, offline, for the length of the run:
    TensorBoard → run_dir/tensorboard, MLflow → a SQLite store (`tracking_dir`/mlflow.db, in the workspace),
    W&B → offline mode in the run folder (refused when wandb is not installed)."""
    values: dict[str, str] = {}
    if "tensorboard" in report_to:
        values["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
    if "mlflow" in report_to:
        store = tracking_dir or run_dir / "mlruns"
        store.mkdir(parents=True, exist_ok=True)
        values |= {
            "MLFLOW_TRACKING_URI": f"sqlite:///{store.resolve() / 'mlflow.db'}",
            "MLFLOW_EXPERIMENT_NAME": "tailorlm",
        }
    if "wandb" in report_to:
        if importlib.util.find_spec("wandb") is None:
            raise UserError("train.report_to: wandb is not installed (pip install wandb); it runs offline only")
        values |= {"WANDB_MODE": "offline", "WANDB_DIR": str(run_dir), "WANDB_NAME": run_dir.name}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class MetricsLogger(TrainerCallback):
    """Appends one JSON line per logging step: loss, val loss, lr, grad norm, tokens/s (and the logged values
    whose names start with one of `prefixes`, `/` written `_`: e.g. preference training's `rewards/margins`)."""

    def __init__(self, path: Path, prefixes: tuple[str, ...] = ()) -> None:
        self.path = path
        self.prefixes = prefixes
        self._last: tuple[float, int] | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        now, seen = time.perf_counter(), int(state.num_input_tokens_seen or 0)
        row: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0, 4)}
        for key, name in (
            ("loss", "loss"),
            ("eval_loss", "val_loss"),
            ("learning_rate", "lr"),
            ("grad_norm", "grad_norm"),
            ("train_loss", "train_loss_mean"),
        ):
            if key in logs:
                row[name] = float(logs[key])
        for key, value in logs.items():
            if key.startswith(self.prefixes) and self.prefixes and isinstance(value, int | float):
                row[key.replace("/", "_")] = float(value)
        if "loss" in logs and self._last is not None and now > self._last[0]:
            row["tokens_per_s"] = round((seen - self._last[1]) / (now - self._last[0]), 1)
        if "loss" in logs or self._last is None:
            self._last = (now, seen)
        row["tokens_seen"] = seen
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


class ReportProgress(TrainerCallback):
    """Steps, loss and tokens/s to a `Progress` (a live bar, or log lines off a terminal); one line per
    validation pass."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Task | None = None
        self.step = 0
        self.tokens = 0
        self.loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.step, self.tokens = state.global_step, int(state.num_input_tokens_seen or 0)
        self.task = self.progress.task("train", total=state.max_steps, completed=state.global_step, unit="steps")

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.task is None:
            return
        seen = int(state.num_input_tokens_seen or 0)
        fields: dict[str, Any] = {"tokens": seen - self.tokens}
        if self.loss is not None:
            fields["loss"] = self.loss
        self.task.advance(state.global_step - self.step, **fields)
        self.step, self.tokens = state.global_step, seen

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        if self.task is None or not logs:
            return
        if "loss" in logs:
            self.loss = float(logs["loss"])
            self.task.advance(0, loss=self.loss)
        if "eval_loss" in logs:
            self.progress.say(f"    step {state.global_step}: val loss {float(logs['eval_loss']):.4f}")

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.task is not None:
            self.task.done()
            self.task = None
