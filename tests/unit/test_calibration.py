"""Temperature scaling, expected calibration error, the abstain threshold and multi-label thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from tailorlm.calibration import (
    abstain_threshold,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    multi_label_thresholds,
    softmax,
)
from tailorlm.classifier import ClassifierInfo, predictions_from_logits


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a 4-label model that is right ~70% of the time but says so with ~99% confidence."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 4, n)
    predicted = np.where(rng.random(n) < 0.7, gold, rng.integers(0, 4, n))
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), predicted] += 8.0
    return logits, gold


def ece(logits: np.ndarray, gold: np.ndarray, temperature: float = 1.0) -> float:
    probabilities = softmax(logits, temperature)
    return expected_calibration_error(probabilities.max(axis=1), probabilities.argmax(axis=1) == gold)


def test_temperature_fitted_on_validation_lowers_ece_on_a_held_out_split():
    val_logits, val_gold = overconfident(400, seed=1)
    test_logits, test_gold = overconfident(400, seed=2)
    temperature = fit_temperature(val_logits, val_gold)
    assert temperature > 1.5  # overconfident logits are softened
    before, after = ece(test_logits, test_gold), ece(test_logits, test_gold, temperature)
    assert after < before / 2
    # the ranking of labels never changes
    assert (softmax(test_logits, temperature).argmax(1) == test_logits.argmax(1)).all()


def test_ece_is_zero_when_confidence_matches_accuracy():
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == 0.0
    assert expected_calibration_error([1.0, 1.0], [False, False]) == 1.0


def test_the_abstain_threshold_meets_its_target_precision_on_validation():
    logits, gold = overconfident(300, seed=3)
    # an informative confidence: right answers get a larger margin
    right = logits.argmax(1) == gold
    logits[right, logits.argmax(1)[right]] += 2.0
    probabilities = softmax(logits, fit_temperature(logits, gold))
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == gold
    assert correct.mean() < 0.9
    threshold, point = abstain_threshold(confidence, correct, target_precision=0.9)
    kept = confidence >= threshold
    assert correct[kept].mean() >= 0.9
    assert 0 < kept.mean() == point["coverage"] < 1
    # the lowest such threshold: one step lower misses the target
    lower = sorted(c for c in set(confidence.tolist()) if c < threshold)
    if lower:
        assert correct[confidence >= lower[-1]].mean() < 0.9


def test_an_unreachable_precision_sends_everything_to_a_person():
    threshold, point = abstain_threshold([0.9, 0.8], [False, False], target_precision=0.9)
    assert threshold > 1.0 and point["coverage"] == 0.0
    info = ClassifierInfo(labels=["a", "b"], min_confidence=threshold)
    predictions = predictions_from_logits(np.array([[9.0, 0.0]]), info)
    assert predictions[0].abstained and predictions[0].label is None


def test_the_coverage_curve_runs_from_full_coverage_down():
    curve = coverage_curve([0.9, 0.8, 0.8, 0.5], [True, True, False, False])
    assert [p["coverage"] for p in curve] == [1.0, 0.75, 0.25]
    assert [p["accuracy"] for p in curve] == [0.5, 2 / 3, 1.0]


def test_multi_label_thresholds_maximise_each_labels_f1():
    probabilities = np.array([[0.9, 0.3], [0.6, 0.2], [0.4, 0.15], [0.2, 0.1]])
    gold = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
    thresholds = multi_label_thresholds(probabilities, gold)
    assert thresholds == pytest.approx([0.5, 0.175])  # label 2 is under-confident: 0.5 would never fire
    info = ClassifierInfo(labels=["a", "b"], multi_label=True, thresholds=thresholds)
    predictions = predictions_from_logits(np.log(probabilities / (1 - probabilities)), info)
    assert [p.labels for p in predictions] == [["a", "b"], ["a", "b"], [], []]
    assert predictions[2].abstained
