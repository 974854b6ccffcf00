"""Bootstrap intervals (coverage and width), paired comparison and Cohen's kappa."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tailorlm.evaluate.metrics import Case, get_metric
from tailorlm.evaluate.stats import bootstrap_ci, bootstrap_mean_ci, cohen_kappa, paired_comparison


def _bernoulli_dataset(rng: np.random.Generator, n: int, p: float) -> tuple[list[str], list[Case]]:
    """n exact-match items, each right with probability p."""
    right = rng.random(n) < p
    return ["yes" if r else "no" for r in right], [Case(expected="yes")] * n


def test_bootstrap_ci_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(1234)
    datasets = 200
    covered = 0
    for seed in range(datasets):
        predictions, cases = _bernoulli_dataset(rng, 200, 0.7)
        low, high = bootstrap_ci(predictions, cases, "exact_match", seed=seed)
        covered += low <= 0.7 <= high
    assert 0.90 * datasets <= covered <= 0.99 * datasets


def test_bootstrap_ci_narrows_as_the_dataset_grows():
    rng = np.random.default_rng(7)
    widths = []
    for n in (50, 200, 2000):
        low, high = bootstrap_ci(*_bernoulli_dataset(rng, n, 0.7), "exact_match")
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # The normal approximation: width ≈ 2 · 1.96 · sqrt(0.7 · 0.3 / n).
    assert widths[2] == pytest.approx(2 * 1.96 * math.sqrt(0.21 / 2000), rel=0.25)


def test_bootstrap_ci_is_reproducible_and_contains_the_value():
    predictions, cases = _bernoulli_dataset(np.random.default_rng(0), 100, 0.6)
    value = get_metric("exact_match")(predictions, cases).value
    first = bootstrap_ci(predictions, cases, "exact_match", seed=3)
    assert first == bootstrap_ci(predictions, cases, get_metric("exact_match"), seed=3)
    assert first[0] <= value <= first[1]


def test_bootstrap_ci_recomputes_a_metric_that_does_not_decompose():
    # macro-F1 with a rare label: resamples that miss it keep the full label set for parsing.
    rng = np.random.default_rng(5)
    golds = ["billing"] * 30 + ["shipping"] * 25 + ["refund"] * 5
    outputs = [g if rng.random() < 0.8 else "billing" for g in golds]
    cases = [Case(label=g) for g in golds]
    value = get_metric("macro_f1")(outputs, cases).value
    low, high = bootstrap_ci(outputs, cases, "macro_f1", n_resamples=300)
    assert 0.0 <= low <= value <= high <= 1.0
    assert (low, high) == bootstrap_ci(outputs, cases, "macro_f1", n_resamples=300)


def test_bootstrap_ci_of_a_metric_that_applies_to_nothing_is_nan():
    low, high = bootstrap_ci(["x"], [Case()], "must_contain")
    assert math.isnan(low) and math.isnan(high)


def test_bootstrap_rejects_bad_settings():
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        bootstrap_mean_ci([1.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples must be >= 1"):
        bootstrap_mean_ci([1.0], n_resamples=0)


def test_paired_comparison_by_hand():
    a = [1.0, 0.0, 1.0, 0.5, None, 1.0]
    b = [0.0, 0.0, 1.0, 0.7, 1.0, 1.0 + 1e-12]
    # compared: items 0, 1, 2, 3, 5 (item 4 unscored for A); A − B = 1, 0, 0, −0.2, ~0
    comparison = paired_comparison(a, b)
    assert (comparison.wins, comparison.losses, comparison.ties) == (1, 1, 3)
    assert comparison.n == 5
    assert comparison.flipped == [0, 3]
    assert comparison.mean_diff == pytest.approx(0.8 / 5)
    low, high = comparison.ci
    assert low <= comparison.mean_diff <= high

    # With a pass mark of 1.0 only item 0 changes outcome (0.5 and 0.7 both fail).
    assert paired_comparison(a, b, pass_threshold=1.0).flipped == [0]


def test_paired_comparison_needs_aligned_scores():
    with pytest.raises(ValueError, match="got 2 and 1"):
        paired_comparison([1.0, 0.0], [1.0])


def test_cohen_kappa_by_hand():
    a = ["yes", "yes", "no", "no", "yes", "no"]
    b = ["yes", "no", "no", "no", "yes", "yes"]
    # observed agreement 4/6; each rater says yes half the time, so chance agreement 1/2;
    # kappa = (2/3 − 1/2) / (1 − 1/2) = 1/3
    assert cohen_kappa(a, b) == pytest.approx(1 / 3)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["yes", "yes"], ["yes", "yes"]))
    # Ordinal scores: a near miss counts less against agreement with weights.
    assert cohen_kappa([1, 2, 3, 4, 5], [2, 2, 3, 4, 5], weights="quadratic") > cohen_kappa(
        [1, 2, 3, 4, 5], [2, 2, 3, 4, 5]
    )
