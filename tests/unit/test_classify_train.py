"""The classification head on tiny models: each method trains, the head predicts, imbalance is reported,
multi-label heads learn per-label thresholds, and calibration is measured on validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.classify import build_tiny_encoder, ticket_examples, tickets
from helpers.data import register_dataset
from tailorlm.classifier import is_classifier, load_classifier, read_info
from tailorlm.config import parse_project
from tailorlm.registry import RunMeta
from tailorlm.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def classify_project(model_dir: Path, root: Path, **train_settings):
    settings = {"max_steps": 40, "batch_size": 8, "logging_steps": 10, "warmup_ratio": 0.0, "max_length": 32}
    settings.update(train_settings)
    return parse_project(
        {"project": "tickets", "base_model": str(model_dir), "task": "classify", "train": settings}, root=root
    )


def held_out_accuracy(result, n: int = 30) -> float:

    meta = result.run.meta_as(RunMeta)
    classifier = load_classifier(result.run_dir / meta.artifact, Path(meta.base_model), device="cpu")
    rows = tickets(n, seed=99)
    predictions = classifier.predict([t for t, _ in rows], min_confidence=0.0)
    return sum(p.label == gold for p, (_, gold) in zip(predictions, rows, strict=True)) / n


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder"), tiny_model_dir)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_classification_head_learns_on_a_tiny_decoder(workspace, tiny_model_dir, tmp_path, method):
    register_dataset(workspace, ticket_examples(96), name="tickets", val=24, test=0)
    rate = 3e-3 if method == "lora" else 1e-3
    result = train(workspace, classify_project(tiny_model_dir, tmp_path, method=method, learning_rate=rate))
    assert result.run.meta_as(RunMeta).recipe == "classify"
    artifact = result.run_dir / ("adapter" if method == "lora" else "model")
    assert is_classifier(artifact)
    info = read_info(artifact)
    assert info.labels == ["billing", "shipping", "technical"]
    assert {"ece_before", "ece_after", "val_accuracy", "coverage_curve"} <= set(info.calibration)
    assert result.data["train"]["label_counts"] == {"billing": 24, "shipping": 24, "technical": 24}
    assert held_out_accuracy(result) >= 0.8
    # calibration read the val rows in their order (an eval loader grouping by length would scramble them)
    val = ticket_examples(96)[:24]
    classifier = load_classifier(artifact, tiny_model_dir, device="cpu")
    predicted = classifier.predict([e.meta["input"] for e in val], min_confidence=0.0)
    measured = sum(p.label == e.label for p, e in zip(predicted, val, strict=True)) / len(val)
    assert abs(info.calibration["val_accuracy"] - measured) < 1e-9


def test_full_fine_tuning_of_a_tiny_encoder_with_a_weighted_sampler(workspace, tiny_encoder, tmp_path):
    examples = ticket_examples(120)
    # Imbalanced: drop most technical tickets from the train part (the first 24 are val).
    examples = examples[:24] + [e for i, e in enumerate(examples[24:]) if e.label != "technical" or i % 4 == 0]
    register_dataset(workspace, examples, name="tickets", val=24, test=0)
    project = classify_project(
        tiny_encoder, tmp_path, method="full", learning_rate=5e-3, imbalance="sampling", max_steps=80
    )
    result = train(workspace, project)
    counts = result.data["train"]["label_counts"]
    assert counts["technical"] < counts["billing"] / 2  # reported as it is
    assert held_out_accuracy(result) >= 0.7  # chance is 1/3


def test_qlora_trains_the_head_on_a_4bit_base(workspace, tiny_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    register_dataset(workspace, ticket_examples(72), name="tickets", val=12, test=0)
    result = train(workspace, classify_project(tiny_model_dir, tmp_path, method="qlora", max_steps=6))
    assert is_classifier(result.run_dir / "adapter")
    assert "classifier" in str(sorted(p.name for p in (result.run_dir / "adapter").iterdir()))


def test_multi_label_head_learns_thresholds(workspace, tiny_model_dir, tmp_path):
    examples = ticket_examples(120, multi=True)
    register_dataset(workspace, examples, name="tickets", val=30, test=0)
    project = classify_project(
        tiny_model_dir, tmp_path, method="lora", learning_rate=5e-3, multi_label=True, max_steps=80
    )
    result = train(workspace, project)
    info = read_info(result.run_dir / "adapter")
    assert info.multi_label and info.thresholds is not None and len(info.thresholds) == 3
    assert all(0 < t < 1 for t in info.thresholds)
    classifier = load_classifier(result.run_dir / "adapter", tiny_model_dir, device="cpu")
    held_out = ticket_examples(60, seed=5, multi=True)
    predicted = classifier.predict([e.meta["input"] for e in held_out], min_confidence=0.0)
    gold = [set(e.label.split(";")) for e in held_out]
    tp = sum(len(set(p.labels) & g) for p, g in zip(predicted, gold, strict=True))
    micro_f1 = 2 * tp / (sum(len(p.labels) for p in predicted) + sum(len(g) for g in gold))
    assert micro_f1 >= 0.7


def test_the_generative_head_still_trains_with_sft(workspace, tiny_model_dir, tmp_path):
    register_dataset(workspace, ticket_examples(40), name="tickets", val=4, test=0)
    result = train(workspace, classify_project(tiny_model_dir, tmp_path, head="generative", max_steps=4))
    assert result.run.meta_as(RunMeta).recipe == "sft"
    assert not is_classifier(result.run_dir / "adapter")
