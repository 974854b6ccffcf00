"""A trained classification head, shared by the stages that use one: evaluation, serving and the
`classify` verb load it from a run's `adapter/` or `model/` folder and predict labels with calibrated
probabilities and an abstain decision.

A run trained with a classification head (train/classify.py) writes `classifier.json` beside its
weights: the label set in order, single- or multi-label, the temperature fitted on validation, the
confidence below which it abstains and, for multi-label heads, one threshold per label.

    classifier = load_classifier(ref.artifact_dir, ref.base_model)
    classifier.predict(["My invoice is wrong"])[0].label      # 'billing' (or None: needs a person)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tailorlm.calibration import sigmoid, softmax
from tailorlm.progress import SILENT, Progress

CLASSIFIER_FILE = "classifier.json"


class ClassifierInfo(BaseModel):
    """What a classification run decided, saved as `classifier.json` beside its weights."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(description="The label set, in the order of the head's outputs.")
    multi_label: bool = Field(False, description="Sigmoid per label (several may apply) instead of softmax.")
    temperature: float = Field(1.0, gt=0, description="Logits are divided by it (fitted on validation).")
    min_confidence: float = Field(0.0, ge=0, description="Below this top probability the answer is 'abstain'.")
    thresholds: list[float] | None = Field(None, description="Multi-label: one probability threshold per label.")
    separator: str = Field(";", min_length=1, description="Multi-label: what joins several labels in one cell.")
    max_length: int = Field(256, gt=0, description="Tokens read per input; longer inputs are truncated.")
    calibration: dict[str, Any] = Field(default_factory=dict, description="ECE before/after, the coverage curve.")

    def save(self, folder: Path) -> Path:
        from tailorlm.workspace import atomic_write_json

        path = Path(folder) / CLASSIFIER_FILE
        atomic_write_json(path, self.model_dump(mode="json"))
        return path


def is_classifier(artifact_dir: Path) -> bool:
    """Whether a run's weights folder holds a classification head (it has `classifier.json`)."""
    return (Path(artifact_dir) / CLASSIFIER_FILE).is_file()


def read_info(artifact_dir: Path) -> ClassifierInfo:
    return ClassifierInfo.model_validate(json.loads((Path(artifact_dir) / CLASSIFIER_FILE).read_text("utf-8")))


@dataclass
class Prediction:
    """One input's answer: the label (None when abstaining), the confidence and every probability."""

    label: str | None
    confidence: float
    probabilities: dict[str, float]
    abstained: bool = False
    labels: list[str] = field(default_factory=list)  # multi-label: every label over its threshold

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "abstained": self.abstained,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
        }
        if self.labels:
            out["labels"] = self.labels
        return out


def load_sequence_classifier(
    base_model: Path, labels: Sequence[str], *, multi_label: bool = False, dtype: Any = None, **kwargs: Any
) -> Any:
    """`AutoModelForSequenceClassification` on a base model with a fresh head over `labels`; decoder
    LLMs get a pad token id (their head reads the last non-pad token)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(base_model, local_files_only=True)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    if getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = config.eos_token_id if isinstance(config.eos_token_id, int) else 0
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, config=config, local_files_only=True, dtype=dtype, **kwargs
    )
    return model


class Classifier:
    """A trained classification run loaded for inference (CPU or the first GPU)."""

    def __init__(self, artifact_dir: Path, base_model: Path, *, device: str | None = None) -> None:
        import torch

        from tailorlm.modeling import load_tokenizer

        self.info = read_info(artifact_dir)
        self.created = int(time.time())  # when it was loaded, for the model list
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(artifact_dir)
        if (Path(artifact_dir) / "adapter_config.json").is_file():
            from peft import PeftModel

            base = load_sequence_classifier(base_model, self.info.labels, multi_label=self.info.multi_label)
            model = PeftModel.from_pretrained(base, artifact_dir)
        else:
            from transformers import AutoModelForSequenceClassification

            model = AutoModelForSequenceClassification.from_pretrained(artifact_dir, local_files_only=True)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.device).eval()

    @property
    def labels(self) -> list[str]:
        return self.info.labels

    def logits(self, texts: Sequence[str], *, batch_size: int = 32, progress: Progress = SILENT) -> np.ndarray:
        """Raw logits, one row per text, batched by length (shortest first, order restored)."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: list[np.ndarray] = [np.zeros(0)] * len(texts)
        task = progress.task("classify", total=len(texts), unit="inputs")
        try:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self.info.max_length,
                    return_tensors="pt",
                ).to(self.device)
                with torch.inference_mode():
                    out = self.model(**batch).logits.float().cpu().numpy()
                for i, row in zip(chunk, out, strict=True):
                    rows[i] = row
                task.advance(len(chunk))
        finally:
            task.done()
        return np.stack(rows) if rows else np.zeros((0, len(self.labels)))

    def predict(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        min_confidence: float | None = None,
        progress: Progress = SILENT,
    ) -> list[Prediction]:
        """Calibrated predictions; `min_confidence` overrides the run's own abstain threshold."""
        return predictions_from_logits(
            self.logits(texts, batch_size=batch_size, progress=progress), self.info, min_confidence
        )

    def close(self) -> None:
        self.model = None


def predictions_from_logits(
    logits: np.ndarray, info: ClassifierInfo, min_confidence: float | None = None
) -> list[Prediction]:
    """Logits → labels, calibrated probabilities and abstain decisions, as `info` says."""
    floor = info.min_confidence if min_confidence is None else min_confidence
    labels = info.labels
    out = []
    if info.multi_label:
        probabilities = sigmoid(logits, info.temperature)
        thresholds = info.thresholds or [0.5] * len(labels)
        for row in probabilities:
            chosen = [label for label, p, t in zip(labels, row, thresholds, strict=True) if p >= t]
            top = int(np.argmax(row))
            confidence = float(row[top])
            abstained = not chosen or confidence < floor
            out.append(
                Prediction(
                    None if abstained else labels[top],
                    confidence,
                    dict(zip(labels, map(float, row), strict=True)),
                    abstained,
                    [] if abstained else chosen,
                )
            )
        return out
    probabilities = softmax(logits, info.temperature)
    for row in probabilities:
        top = int(np.argmax(row))
        confidence = float(row[top])
        abstained = confidence < floor
        out.append(
            Prediction(
                None if abstained else labels[top],
                confidence,
                dict(zip(labels, map(float, row), strict=True)),
                abstained,
            )
        )
    return out


def load_classifier(artifact_dir: Path, base_model: Path, *, device: str | None = None) -> Classifier:
    return Classifier(Path(artifact_dir), Path(base_model), device=device)


def text_to_classify(example: Any) -> str:
    """What a classification head reads of an example: the bare input the `table` builder kept
    (`meta.input`), else the last user turn."""
    meta = getattr(example, "meta", None) or {}
    return str(meta.get("input") or example.input_text)


def gold_labels(label: str, *, multi_label: bool, separator: str = ";") -> list[str]:
    """The labels of one gold cell: itself, or its parts split on `separator` for multi-label heads."""
    if not multi_label:
        return [label]
    return [part.strip() for part in label.split(separator) if part.strip()]
