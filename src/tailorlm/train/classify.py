"""The classification-head recipe, top to bottom: set up the model and trainer → train → calibrate → save.

`task: classify` with `train.head: classification` (the default for that task) puts
`AutoModelForSequenceClassification` on the base model — an encoder (BERT, MiniLM, ModernBERT) or a
decoder LLM (`LlamaForSequenceClassification`, ...) — and trains it on the bare input texts:

* full: every weight; lora/dora: adapters plus the new head trained in full (PEFT `modules_to_save`);
  qlora: the same on a 4-bit NF4 base.
* imbalance: inverse-frequency weights in the loss (`weighted_loss`), or a sampler drawing rare labels
  more often (`sampling`); the label counts go into the run's record.
* multi-label: sigmoid outputs and binary cross-entropy, one threshold per label fitted on validation.
* after training, a temperature is fitted on the validation split, the expected calibration error is
  measured before and after, and the abstain threshold is chosen for `train.classify.target_precision`;
  everything the served model needs is saved as `classifier.json` beside the weights.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import Trainer, TrainingArguments, set_seed
from transformers.integrations import get_reporting_integration_callbacks
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tailorlm.calibration import (
    abstain_threshold,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    multi_label_thresholds,
    sigmoid,
    softmax,
)
from tailorlm.classifier import ClassifierInfo, gold_labels, load_sequence_classifier, text_to_classify
from tailorlm.config import TrainSettings
from tailorlm.dataset_splits import load_split
from tailorlm.errors import UserError
from tailorlm.lifecycle import Interrupted, stop_requested
from tailorlm.modeling import add_adapters, disable_cpu_bf16_repack, torch_dtype
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import Artifact
from tailorlm.train import strategy
from tailorlm.train.checkpoints import StopAndWholeRunLoss, save_checkpoints_atomically
from tailorlm.train.data import ListDataset
from tailorlm.train.plan import Plan
from tailorlm.train.sft import MetricsLogger, ReportProgress, shared_arguments, tracker_environment
from tailorlm.workspace import Workspace

# A new head starts from random weights: it needs a higher rate than sft's defaults (2e-5 / 2e-4).
DEFAULT_LEARNING_RATE = {"full": 1e-4, "lora": 1e-3, "dora": 1e-3, "qlora": 1e-3}


def handles(settings: TrainSettings, task: str) -> bool:
    """Classification runs, unless `train.head: generative` asks for answers written as text."""
    return task == "classify" and settings.head != "generative"


@dataclass
class LabelledSplit:
    """Token ids and label targets of one split, with the label set and counts."""

    labels: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    truncated: int = 0
    unknown_labels: int = 0
    tokens: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "examples": len(self.rows),
            "truncated": self.truncated,
            "tokens": self.tokens,
            "unknown_labels": self.unknown_labels,
            "label_counts": dict(self.counts),
        }


def load_splits(
    tokenizer: Any, workspace: Workspace, dataset: Artifact, settings: TrainSettings
) -> tuple[LabelledSplit, LabelledSplit]:
    """Train and val as (input text → label index) rows; the label set is the train split's, sorted."""
    train = load_split(workspace, dataset, "train")
    val = load_split(workspace, dataset, "val")
    unlabelled = [e.id for e in train if not (e.label or (e.is_chat and e.target))]
    if unlabelled:
        raise UserError(f"dataset {dataset.name}@{dataset.version}: example {unlabelled[0]} has no label to learn")
    labels = sorted(
        {
            part
            for e in train
            for part in gold_labels(_label(e), multi_label=settings.multi_label, separator=settings.label_separator)
        }
    )
    if len(labels) < 2:
        raise UserError(
            f"dataset {dataset.name}@{dataset.version}: a classifier needs at least 2 labels in the train split "
            f"(found {labels})"
        )
    return _tokenize(tokenizer, train, labels, settings), _tokenize(tokenizer, val, labels, settings)


def _label(example: Any) -> str:
    return str(example.label or example.target)


def _tokenize(tokenizer: Any, examples: list[Any], labels: list[str], settings: TrainSettings) -> LabelledSplit:
    index = {label: i for i, label in enumerate(labels)}
    max_length = max_input_tokens(tokenizer, settings)
    split = LabelledSplit(labels)
    counts: Counter[str] = Counter()
    for example in examples:
        golds = gold_labels(_label(example), multi_label=settings.multi_label, separator=settings.label_separator)
        if any(g not in index for g in golds):
            split.unknown_labels += 1  # a label the train split never shows can't be learned or scored
            continue
        ids = tokenizer(text_to_classify(example), truncation=False)["input_ids"]
        if len(ids) > max_length:
            split.truncated += 1
            ids = ids[:max_length]
        if settings.multi_label:
            target: Any = [1.0 if label in golds else 0.0 for label in labels]
        else:
            target = index[golds[0]]
        counts.update(golds)
        split.rows.append({"input_ids": ids, "labels": target})
        split.tokens += len(ids)
    split.counts = {label: counts.get(label, 0) for label in labels}
    return split


def max_input_tokens(tokenizer: Any, settings: TrainSettings) -> int:
    """`train.max_length`, lowered to what the tokenizer says the model reads (512 for BERT-style encoders)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return min(settings.max_length, int(limit)) if isinstance(limit, int) and limit > 0 else settings.max_length


class ClassifyCollator:
    """Right-pads input ids; labels become a long (single-label) or float (multi-label) tensor."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = pad_token_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = [r["input_ids"] + [self.pad] * (width - len(r["input_ids"])) for r in rows]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        labels = [r["labels"] for r in rows]
        dtype = torch.float32 if isinstance(labels[0], list) else torch.long
        return {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels, dtype=dtype),
        }


class ClassifyTrainer(Trainer):
    """The transformers Trainer with a class-weighted loss, or a sampler weighted towards rare labels."""

    def __init__(self, *args: Any, class_weights: Any = None, sample_weights: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.sample_weights = sample_weights

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        import torch

        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits.float()
        if labels.dtype == torch.float32:  # multi-label
            weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight)
        else:
            weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
            loss = torch.nn.functional.cross_entropy(logits, labels, weight=weight)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
        if self.sample_weights is None:
            return super()._get_train_sampler(*args, **kwargs)
        import torch

        generator = torch.Generator().manual_seed(self.args.seed)
        return torch.utils.data.WeightedRandomSampler(
            self.sample_weights, num_samples=len(self.sample_weights), replacement=True, generator=generator
        )


def fine_tune(
    *,
    run_dir: Path,
    base_model: Path,
    tokenizer: Any,
    settings: TrainSettings,
    plan: Plan,
    train_split: LabelledSplit,
    val_split: LabelledSplit | None,
    resume_from: Path | None = None,
    callbacks: list[Any] | None = None,
    progress: Progress = SILENT,
    tracking_dir: Path | None = None,
) -> dict[str, Any]:
    """Train the head (and the base or its adapters), calibrate on val, save `classifier.json` with the weights.

    Checkpoints, stops on a signal and experiment trackers work as in `sft.py`."""
    import torch

    # --- setup ---------------------------------------------------------------------------------
    set_seed(settings.seed)
    labels = train_split.labels
    kwargs: dict[str, Any] = {}
    if settings.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(plan.precision),
        )
    dtype = torch.float32 if settings.method == "full" else torch_dtype(plan.precision)
    model = load_sequence_classifier(base_model, labels, multi_label=settings.multi_label, dtype=dtype, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if settings.method != "full":
        model = add_adapters(
            model,
            settings.method,
            settings.lora,
            gradient_checkpointing=plan.gradient_checkpointing,
            task_type="SEQ_CLS",
            dropout=plan.lora_dropout,
        )
        if settings.method == "qlora":
            disable_cpu_bf16_repack(model)
    class_weights, sample_weights = _imbalance(settings, train_split)
    has_val = val_split is not None and len(val_split.rows) > 0
    learning_rate = settings.learning_rate or DEFAULT_LEARNING_RATE.get(settings.method, 1e-3)
    arguments = TrainingArguments(
        **shared_arguments(run_dir, settings, plan, has_val, learning_rate),
        train_sampling_strategy="group_by_length" if settings.group_by_length and sample_weights is None else "random",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
    )
    trackers = ExitStack()  # the trackers read their folders when the Trainer is built and while it trains
    trackers.enter_context(tracker_environment(settings.report_to, run_dir, tracking_dir))
    trainer = ClassifyTrainer(
        model=model,
        args=arguments,
        train_dataset=ListDataset(train_split.rows),
        eval_dataset=ListDataset(val_split.rows) if has_val and val_split is not None else None,
        data_collator=ClassifyCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[StopAndWholeRunLoss(), MetricsLogger(run_dir / "metrics.jsonl"), *(callbacks or [])],
        class_weights=class_weights,
        sample_weights=sample_weights,
    )
    strategy.check_trainer(trainer, plan.strategy, recipe="classify", shards=False)
    save_checkpoints_atomically(trainer)  # complete or absent, as in sft.py
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
    if signal_name := stop_requested():  # SIGTERM or Ctrl-C: a checkpoint was saved at the last step
        raise Interrupted(signal_name)
    for tracker in get_reporting_integration_callbacks(settings.report_to):
        trainer.remove_callback(tracker)
    metrics: dict[str, Any] = dict(output.metrics)
    metrics["learning_rate"] = learning_rate

    # --- calibrate -----------------------------------------------------------------------------
    info = ClassifierInfo(
        labels=labels,
        multi_label=settings.multi_label,
        separator=settings.label_separator,
        max_length=max_input_tokens(tokenizer, settings),
    )
    if has_val and val_split is not None:
        # In order, by hand: the Trainer's eval loader may group by length, which reorders the rows.
        logits = validation_logits(trainer.model, val_split.rows, ClassifyCollator(tokenizer.pad_token_id), settings)
        targets = [row["labels"] for row in val_split.rows]
        info = calibrate(info, logits, targets, settings)
        metrics.update(
            {k: v for k, v in info.calibration.items() if isinstance(v, int | float)}  # val accuracy, ECE, ...
        )
    elif settings.classify.min_confidence is not None:
        info.min_confidence = settings.classify.min_confidence
    metrics["temperature"] = info.temperature
    metrics["min_confidence"] = info.min_confidence

    # --- save ----------------------------------------------------------------------------------
    if trainer.is_world_process_zero():  # one set of artifacts per launch, as in sft.py
        target = run_dir / ("model" if settings.method == "full" else "adapter")
        trainer.model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        info.save(target)
    return metrics


def validation_logits(
    model: Any, rows: list[dict[str, Any]], collate: ClassifyCollator, settings: TrainSettings
) -> np.ndarray:
    """The model's logits for `rows`, in their order."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(rows), settings.batch_size):
            batch = collate(rows[start : start + settings.batch_size])
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            out.append(logits.logits.float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def _imbalance(settings: TrainSettings, split: LabelledSplit) -> tuple[Any, Any]:
    """Inverse-frequency class weights for the loss, or per-example weights for the sampler (or neither)."""
    import torch

    if settings.imbalance == "none" or not split.rows:
        return None, None
    counts = np.array([max(split.counts.get(label, 0), 1) for label in split.labels], dtype=np.float64)
    if settings.multi_label:
        # pos_weight: negatives per positive, so a rare label's positives are not drowned out.
        weights = (len(split.rows) - counts) / counts
        return (
            (torch.tensor(weights, dtype=torch.float32), None)
            if settings.imbalance == "weighted_loss"
            else (None, None)
        )
    weights = counts.sum() / (len(counts) * counts)
    if settings.imbalance == "weighted_loss":
        return torch.tensor(weights, dtype=torch.float32), None
    return None, [float(weights[row["labels"]]) for row in split.rows]


def calibrate(info: ClassifierInfo, logits: np.ndarray, targets: list[Any], settings: TrainSettings) -> ClassifierInfo:
    """Temperature, ECE before and after, per-label thresholds (multi-label) and the abstain threshold,
    all measured on the validation split."""
    options = settings.classify
    report: dict[str, Any] = {"val_examples": len(targets)}
    if info.multi_label:
        gold = np.asarray(targets, dtype=bool)
        before = sigmoid(logits)
        info.thresholds = multi_label_thresholds(before, gold)
        chosen = before >= np.asarray(info.thresholds)
        report["val_exact_match"] = float((chosen == gold).all(axis=1).mean())
        confidence = before.max(axis=1)
        correct = gold[np.arange(len(gold)), before.argmax(axis=1)]
        report["ece_before"] = expected_calibration_error(confidence, correct)
        report["ece_after"] = report["ece_before"]
    else:
        gold_index = np.asarray(targets, dtype=int)
        before = softmax(logits)
        report["ece_before"] = expected_calibration_error(before.max(axis=1), before.argmax(axis=1) == gold_index)
        if options.calibrate:
            info.temperature = fit_temperature(logits, gold_index)
        after = softmax(logits, info.temperature)
        confidence, correct = after.max(axis=1), after.argmax(axis=1) == gold_index
        report["ece_after"] = expected_calibration_error(confidence, correct)
        report["val_accuracy"] = float(correct.mean())
    if options.min_confidence is not None:
        info.min_confidence = options.min_confidence
        report["abstain_rule"] = "fixed (train.classify.min_confidence)"
    else:
        threshold, point = abstain_threshold(confidence, correct, options.target_precision)
        info.min_confidence = float(threshold)
        report["abstain_rule"] = f"lowest confidence reaching precision {options.target_precision} on val"
        report["val_coverage"] = point["coverage"]
        report["val_precision_kept"] = point["accuracy"]
    report["coverage_curve"] = coverage_curve(confidence, correct)
    info.calibration = report
    return info
