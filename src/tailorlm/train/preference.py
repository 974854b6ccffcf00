"""The preference recipe (`train.method: dpo | kto | orpo`), top to bottom: set up → train → save.

TRL's trainers on a LoRA adapter: DPO and ORPO learn from pairs (a chosen and a rejected answer to one
prompt), KTO from answers rated desirable or not (a pair counts as one of each). Training starts from
`train.preference.start_from` — a registered model whose adapter is trained further and, for DPO and KTO,
kept as the frozen reference (TRL copies it as the `ref` adapter) — or from a new adapter on the base.
Prompts and answers are rendered with the same chat template as supervised training
(`formats/templates.py`), so the model is asked exactly as it will be served. Checkpoints, resume, the
progress bar and `metrics.jsonl` are the supervised recipe's, with TRL's reward margins and accuracies
added to the metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.config import PREFERENCE_METHODS, TrainSettings
from tailorlm.dataset_splits import load_split
from tailorlm.errors import UserError
from tailorlm.formats.examples import Example
from tailorlm.formats.preference import desirable_of, rejected_of
from tailorlm.formats.templates import ensure_chat_template, render
from tailorlm.lifecycle import Interrupted, stop_requested
from tailorlm.modeling import ModelRef, add_adapters, load_base_model, resolve_model
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import Artifact
from tailorlm.train import strategy
from tailorlm.train.checkpoints import StopAndWholeRunLoss, save_checkpoints_atomically
from tailorlm.train.plan import Plan
from tailorlm.train.sft import MetricsLogger, ReportProgress, shared_arguments, tracker_environment
from tailorlm.workspace import Workspace

METRIC_PREFIXES = ("rewards/", "logps/", "eval_rewards/", "eval_logps/", "kl")


class PreferenceError(UserError, ValueError):
    """A preference run that can't start (no pairs, a start model of another base...)."""


def handles(settings: TrainSettings, task: str) -> bool:
    """Runs whose method is dpo, kto or orpo."""
    return settings.method in PREFERENCE_METHODS


@dataclass
class PreferenceSplit:
    """Rows for TRL (`prompt`/`chosen`/`rejected`, or `prompt`/`completion`/`label` for KTO), the model
    training starts from, and what was left out."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    start: ModelRef | None = None
    left_out: int = 0
    parents: list[str] = field(default_factory=list)  # registry ids besides the dataset: the start model

    def summary(self) -> dict[str, int]:
        return {"examples": len(self.rows), "left_out": self.left_out}


def load_splits(
    tokenizer: Any, workspace: Workspace, dataset: Artifact, settings: TrainSettings
) -> tuple[PreferenceSplit, PreferenceSplit]:
    """The train and val splits as TRL rows; the start model resolved (and checked) now, before training."""
    start, parents = None, []
    if settings.preference.start_from:
        reference = settings.preference.start_from
        start = resolve_model(workspace, reference)
        parents = [reference if reference.startswith("run-") else workspace.resolve("model", reference).id]
        if not start.is_adapter:
            raise PreferenceError(
                f"train.preference.start_from: {settings.preference.start_from} has full weights; preference "
                "training starts from a LoRA adapter (train it with method lora, or leave start_from out)"
            )
    ensure_chat_template(tokenizer)
    splits = []
    for name in ("train", "val"):
        split = PreferenceSplit(start=start, parents=parents)
        for example in load_split(workspace, dataset, name):
            rows = trl_rows(tokenizer, example, settings.method)
            split.rows.extend(rows)
            split.left_out += not rows
        splits.append(split)
    if not splits[0].rows:
        wants = "pairs (a chosen and a rejected answer)" if settings.method != "kto" else "rated answers or pairs"
        raise PreferenceError(
            f"dataset {dataset.name}@{dataset.version} has no {wants} for {settings.method} in its train split "
            f"({splits[0].left_out} other examples); build it from a `kind: feedback` source"
        )
    return splits[0], splits[1]


def trl_rows(tokenizer: Any, example: Example, method: str) -> list[dict[str, Any]]:
    """One example as TRL rows, rendered with the chat template: DPO/ORPO a pair; KTO one row per answer."""
    if example.messages is None:
        return []
    prompt_messages = example.prompt
    prompt = render(tokenizer, prompt_messages, add_generation_prompt=True)

    def answer(text: str) -> str:
        full = render(tokenizer, [*prompt_messages, {"role": "assistant", "content": text}])
        return full[len(prompt) :] if full.startswith(prompt) else text

    rejected, desirable = rejected_of(example), desirable_of(example)
    if method in ("dpo", "orpo"):
        return [{"prompt": prompt, "chosen": answer(example.target), "rejected": answer(rejected)}] if rejected else []
    if rejected is not None:
        return [
            {"prompt": prompt, "completion": answer(example.target), "label": True},
            {"prompt": prompt, "completion": answer(rejected), "label": False},
        ]
    if desirable is not None:
        return [{"prompt": prompt, "completion": answer(example.target), "label": desirable}]
    return []


def fine_tune(
    *,
    run_dir: Path,
    base_model: Path,
    tokenizer: Any,
    settings: TrainSettings,
    plan: Plan,
    train_split: PreferenceSplit,
    val_split: PreferenceSplit | None,
    resume_from: Path | None = None,
    callbacks: list[Any] | None = None,
    progress: Progress = SILENT,
    tracking_dir: Path | None = None,
) -> dict[str, Any]:
    """Train the adapter with TRL's trainer for the method and save it into `run_dir/adapter`."""
    from datasets import Dataset
    from peft import PeftModel
    from transformers import set_seed
    from transformers.integrations import get_reporting_integration_callbacks
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # --- setup ---------------------------------------------------------------------------------
    start = train_split.start
    if start is not None and Path(start.base_model).resolve() != Path(base_model).resolve():
        raise PreferenceError(
            f"train.preference.start_from: {start.name}@{start.version} was trained on {start.base_model}, "
            f"not on this project's base_model {base_model}"
        )
    set_seed(settings.seed)
    model = load_base_model(base_model, method="lora", precision=plan.precision, device=plan.device)
    if start is not None:
        model = PeftModel.from_pretrained(model, start.artifact_dir, is_trainable=True)
    else:
        model = add_adapters(
            model, "lora", settings.lora, gradient_checkpointing=plan.gradient_checkpointing, dropout=plan.lora_dropout
        )
    model.config.use_cache = False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    has_val = val_split is not None and len(val_split.rows) > 0
    trainer_class, config_class, options = _trainer(settings)
    arguments = config_class(
        **shared_arguments(run_dir, settings, plan, has_val, plan.learning_rate),
        ddp_find_unused_parameters=False,
        max_length=settings.max_length,
        **options,
    )
    trackers = ExitStack()  # the trackers read their folders when the trainer is built and while it trains
    trackers.enter_context(tracker_environment(settings.report_to, run_dir, tracking_dir))
    trackers.enter_context(_datasets_quiet())  # TRL maps the rows with `datasets`' own bars; ours is the one shown
    trainer = trainer_class(
        model=model,
        args=arguments,
        train_dataset=Dataset.from_list(train_split.rows),
        eval_dataset=Dataset.from_list(val_split.rows) if has_val and val_split is not None else None,
        processing_class=tokenizer,
        callbacks=[
            StopAndWholeRunLoss(),
            MetricsLogger(run_dir / "metrics.jsonl", METRIC_PREFIXES),
            *(callbacks or []),
        ],
    )
    strategy.check_trainer(trainer, plan.strategy, recipe=settings.method, shards=False)
    save_checkpoints_atomically(trainer)  # as in sft.py: complete or absent, SIGTERM at a step's end
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    reporter = ReportProgress(progress)
    trainer.add_callback(reporter)

    # --- train ---------------------------------------------------------------------------------
    try:
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        reporter.close()
        trackers.close()
    if signal_name := stop_requested():
        raise Interrupted(signal_name)
    metrics = dict(output.metrics)
    for tracker in get_reporting_integration_callbacks(settings.report_to):
        trainer.remove_callback(tracker)  # their run ended with training
    if has_val:
        metrics.update(trainer.evaluate())

    # --- save ----------------------------------------------------------------------------------
    target = run_dir / "adapter"
    if trainer.is_world_process_zero():  # one set of artifacts per launch
        trainer.model.save_pretrained(target, selected_adapters=["default"])  # not TRL's frozen `ref` copy
        tokenizer.save_pretrained(target)
    return {key.replace("/", "_"): value for key, value in metrics.items()}


@contextmanager
def _datasets_quiet() -> Iterator[None]:
    """`datasets`' progress bars off (TRL's "Adding EOS to train dataset", "Tokenizing train dataset"...),
    as they were afterwards."""
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def _trainer(settings: TrainSettings) -> tuple[type, type, dict[str, Any]]:
    """TRL's trainer and config for the method, and the method's own options."""
    beta = settings.preference.beta
    if settings.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig, {"beta": beta}
    if settings.method == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig, {"beta": beta}
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return ORPOTrainer, ORPOConfig, {"beta": beta, "remove_unused_columns": False}
