"""Confidence of a classifier, shared by training (fit on validation), evaluation and serving (apply).

* `fit_temperature`: one scalar T dividing the logits, fitted on the validation split by minimising
  the negative log-likelihood (Guo et al. 2017): the ranking of labels never changes, only how sure
  the probabilities say the model is.
* `expected_calibration_error`: the gap between confidence and accuracy, averaged over equal-width bins.
* `abstain_threshold`: the lowest confidence at which the answers kept reach a target precision, so
  the served model says "needs a person" below it; `coverage_curve` is the trade-off it was chosen on.
* `multi_label_thresholds`: one probability threshold per label (multi-label heads), each splitting
  validation where that label's F1 is highest (halfway between the scores on either side of the split).

Pure numpy: no model is loaded here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64) / temperature))


def negative_log_likelihood(logits: np.ndarray, targets: Sequence[int], temperature: float = 1.0) -> float:
    probabilities = softmax(logits, temperature)
    picked = probabilities[np.arange(len(targets)), np.asarray(targets)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(logits: np.ndarray, targets: Sequence[int]) -> float:
    """The temperature minimising validation NLL, searched on a log grid then refined (golden section).

    Returns 1.0 (no change) when there is nothing to fit on."""
    logits = np.asarray(logits, dtype=np.float64)
    if len(targets) == 0 or logits.ndim != 2:
        return 1.0
    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 60))
    losses = [negative_log_likelihood(logits, targets, t) for t in grid]
    best = int(np.argmin(losses))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if negative_log_likelihood(logits, targets, a) < negative_log_likelihood(logits, targets, b):
            high = b
        else:
            low = a
    return float((low + high) / 2)


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence|, weighted by the bin's share."""
    confidence = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            error += members.mean() * abs(right[members].mean() - confidence[members].mean())
    return float(error)


def coverage_curve(confidences: Sequence[float], correct: Sequence[bool]) -> list[dict[str, float]]:
    """For each distinct confidence taken as the threshold (answer when confidence >= it): the share
    answered (coverage) and the accuracy of those answers, from full coverage down."""
    confidence = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    confidence, right = confidence[order], right[order]
    points = []
    kept_right = np.cumsum(right)
    n = len(confidence)
    for i in range(n - 1, -1, -1):
        if i + 1 < n and confidence[i] == confidence[i + 1]:
            continue  # the same threshold keeps the whole tie
        points.append(
            {
                "threshold": float(confidence[i]),
                "coverage": (i + 1) / n,
                "accuracy": float(kept_right[i] / (i + 1)),
            }
        )
    return points


def abstain_threshold(
    confidences: Sequence[float], correct: Sequence[bool], target_precision: float
) -> tuple[float, dict[str, float]]:
    """The lowest threshold whose kept answers reach `target_precision` (most coverage), and its point.

    When even the most confident answers miss the target, the threshold is above every confidence
    (1.0 + tiny): everything goes to a person, and the point says so (coverage 0)."""
    points = coverage_curve(confidences, correct)
    reaching = [p for p in points if p["accuracy"] >= target_precision]
    if not reaching:
        return math.nextafter(1.0, 2.0), {"threshold": math.nextafter(1.0, 2.0), "coverage": 0.0, "accuracy": math.nan}
    best = max(reaching, key=lambda p: (p["coverage"], -p["threshold"]))
    return best["threshold"], best


def multi_label_thresholds(probabilities: np.ndarray, targets: np.ndarray, default: float = 0.5) -> list[float]:
    """Per label, the probability threshold that maximises its F1 on validation (`default` for a label
    with no positive example there)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets).astype(bool)
    thresholds = []
    for column in range(probabilities.shape[1]):
        scores, gold = probabilities[:, column], targets[:, column]
        if not gold.any():
            thresholds.append(default)
            continue
        best, best_f1, below = default, -1.0, 0.0
        distinct = sorted(set(scores.tolist()))
        for i, candidate in enumerate(distinct):
            predicted = scores >= candidate
            tp = float((predicted & gold).sum())
            f1 = 2 * tp / (predicted.sum() + gold.sum())
            if f1 > best_f1:
                best, best_f1, below = candidate, f1, distinct[i - 1] if i else 0.0
        # halfway to the next lower score: the same split of validation, less fitted to its exact values
        thresholds.append(float((best + below) / 2))
    return thresholds
