"""Statistics behind release decisions: how sure is a score (``bootstrap_ci``), is model A better
than model B on the same items (``paired_comparison``), and does a judge agree with people
(``cohen_kappa``).

    low, high = bootstrap_ci(predictions, cases, "rouge_l")
    comparison = paired_comparison(new.per_item, old.per_item, pass_threshold=1.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.metrics import cohen_kappa_score

from tailorlm.evaluate.metrics import Case, Metric, get_metric

# Resampled index matrices are built in chunks of at most this many entries, to bound memory.
_CHUNK_ENTRIES = 4_000_000


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1 (got {n_resamples})")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (got {confidence})")


def _percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    replicates = replicates[~np.isnan(replicates)]
    if replicates.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_mean_ci(
    scores: Sequence[float], *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of ``scores``; (nan, nan) when empty."""
    _check(n_resamples, confidence)
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ENTRIES // values.size)
    means = np.concatenate(
        [
            values[rng.integers(0, values.size, size=(min(rows, n_resamples - start), values.size))].mean(axis=1)
            for start in range(0, n_resamples, rows)
        ]
    )
    return _percentile_interval(means, confidence)


def bootstrap_ci(
    predictions: Sequence[str],
    cases: Sequence[Case],
    metric: Metric | str,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    **options: Any,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a metric over items.

    A metric whose value is the mean of its per-item scores (``decomposes``) is resampled on those
    scores alone, which is fast. Any other (macro-F1) is recomputed on each resample of the items;
    a label set it derived from the whole data (``details["labels"]``) is kept fixed across
    resamples so every replicate is scored against the same labels.

    Args:
        predictions: Model outputs, one per case.
        cases: Reference sides.
        metric: A metric or its registered name.
        n_resamples: Number of bootstrap replicates.
        confidence: Coverage of the interval, e.g. 0.95.
        seed: Seed of the resampling; the same seed gives the same interval.
        **options: Passed to the metric (e.g. ``labels=[...]``).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when the metric applies to no item.
    """
    _check(n_resamples, confidence)
    scorer = get_metric(metric) if isinstance(metric, str) else metric
    full = scorer(predictions, cases, **options)
    if getattr(scorer, "decomposes", False):
        scores = [s for s in full.per_item if s is not None]
        return bootstrap_mean_ci(scores, n_resamples=n_resamples, confidence=confidence, seed=seed)

    if "labels" in full.details and "labels" in getattr(scorer, "options", ()):
        options = {"labels": full.details["labels"], **options}
    n = len(predictions)
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_resamples)
    for r in range(n_resamples):
        picks = rng.integers(0, n, size=n)
        replicates[r] = scorer([predictions[i] for i in picks], [cases[i] for i in picks], **options).value
    return _percentile_interval(replicates, confidence)


@dataclass
class Comparison:
    """Item-by-item comparison of system A against system B on the same items.

    Attributes:
        wins: Items where A scores higher than B (beyond the tolerance).
        losses: Items where A scores lower.
        ties: Items where they score the same within the tolerance.
        flipped: Indices of items whose outcome changed: one passes and the other fails when a pass
            threshold is given, otherwise the scores differ.
        mean_diff: Mean of A − B over the compared items.
        ci: Paired bootstrap confidence interval of ``mean_diff``.
        n: Number of items compared (those scored by both).
    """

    wins: int
    losses: int
    ties: int
    flipped: list[int]
    mean_diff: float
    ci: tuple[float, float]
    n: int


def paired_comparison(
    per_item_a: Sequence[float | None],
    per_item_b: Sequence[float | None],
    *,
    tolerance: float = 1e-9,
    pass_threshold: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare two systems' per-item scores on the same items; items either left unscored are skipped.

    Args:
        per_item_a: Scores of system A (e.g. the fine-tuned model).
        per_item_b: Scores of system B (e.g. the baseline), aligned with A.
        tolerance: Differences up to this size count as ties.
        pass_threshold: When given, an item passes at ``score >= pass_threshold`` and ``flipped``
            lists the items that pass under one system and fail under the other.
        n_resamples: Bootstrap replicates for ``ci``.
        confidence: Coverage of ``ci``.
        seed: Seed of the resampling.
    """
    if len(per_item_a) != len(per_item_b):
        raise ValueError(f"paired comparison needs aligned scores (got {len(per_item_a)} and {len(per_item_b)})")
    pairs = [
        (i, a, b)
        for i, (a, b) in enumerate(zip(per_item_a, per_item_b, strict=True))
        if a is not None and b is not None
    ]
    diffs = [a - b for _, a, b in pairs]
    wins = sum(d > tolerance for d in diffs)
    losses = sum(d < -tolerance for d in diffs)
    if pass_threshold is None:
        flipped = [i for i, a, b in pairs if abs(a - b) > tolerance]
    else:
        flipped = [i for i, a, b in pairs if (a >= pass_threshold) != (b >= pass_threshold)]
    return Comparison(
        wins=wins,
        losses=losses,
        ties=len(diffs) - wins - losses,
        flipped=flipped,
        mean_diff=math.fsum(diffs) / len(diffs) if diffs else math.nan,
        ci=bootstrap_mean_ci(diffs, n_resamples=n_resamples, confidence=confidence, seed=seed),
        n=len(diffs),
    )


def cohen_kappa(
    a_labels: Sequence[Hashable],
    b_labels: Sequence[Hashable],
    *,
    weights: Literal["linear", "quadratic"] | None = None,
) -> float:
    """Cohen's kappa between two raters (scikit-learn); ``weights`` for ordinal scores like 1–5.

    Returns NaN when kappa is undefined: both raters gave one and the same label to every item.
    """
    if len(a_labels) != len(b_labels):
        raise ValueError(f"cohen_kappa needs aligned labels (got {len(a_labels)} and {len(b_labels)})")
    if not a_labels:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the undefined case is reported as NaN, documented above
        return float(cohen_kappa_score(list(a_labels), list(b_labels), weights=weights))
