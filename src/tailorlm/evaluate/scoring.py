"""Scores of each candidate: every metric with its 95% bootstrap interval, a per-item pass/fail
verdict, and paired comparisons against the reference baseline (wins, losses, ties, flipped items).

An item *passes* when its task's primary metric reaches the pass threshold (classify: right label;
extract: every field right; chat/generate: ROUGE-L ≥ 0.5, else chrF ≥ 0.5, else an exact match)
and every rule check the case asks for holds (must_contain, must_not_contain, json_schema).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tailorlm.evaluate.metrics import (
    Case,
    MetricResult,
    evaluate_metrics,
    get_metric,
    known_metrics,
    metrics_for_task,
)
from tailorlm.evaluate.stats import bootstrap_ci, bootstrap_mean_ci, paired_comparison

# Primary metric per task, in order of preference, with the per-item score that counts as a pass.
PRIMARY = {
    "classify": (("accuracy", 1.0), ("subset_accuracy", 1.0)),  # single-label, then multi-label heads
    "extract": (("field_f1", 1.0), ("exact_record", 1.0), ("json_valid", 1.0)),
    "chat": (("rouge_l", 0.5), ("chrf", 0.5), ("exact_match", 1.0)),
    "generate": (("rouge_l", 0.5), ("chrf", 0.5), ("exact_match", 1.0)),
}
CHECKS = ("must_contain", "must_not_contain", "schema_valid")
EXTRA = ("pass_rate", "loss", "perplexity", "judge")  # scores that are not registered metrics
LOWER_IS_BETTER = {"loss", "perplexity"}
JUDGE_WIN = "judge_win_rate_vs_"


def select_metrics(task: str, requested: Sequence[str] | None, objectives: Sequence[str]) -> list[str]:
    """Registered metrics to compute: the requested ones (default by task) plus those objectives name.

    Raises:
        ValueError: An unknown metric (the message lists the known ones).
    """
    names = list(requested) if requested else metrics_for_task(task)
    names += [o for o in objectives if o in known_metrics() and o not in names]
    chosen = []
    for name in names:
        if name in EXTRA or name.startswith(JUDGE_WIN):
            continue
        get_metric(name)  # raises with the known names
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def higher_is_better(name: str) -> bool:
    if name in LOWER_IS_BETTER:
        return False
    try:
        return get_metric(name).higher_is_better
    except ValueError:
        return True


def primary_metric(task: str, metrics: Sequence[str]) -> tuple[str, float] | None:
    for name, threshold in PRIMARY.get(task, ()):
        if name in metrics:
            return name, threshold
    return None


@dataclass
class Score:
    """One metric's value on a candidate, with its interval and per-item scores."""

    value: float
    ci: tuple[float, float]
    per_item: list[float | None]
    details: dict[str, Any] = field(default_factory=dict)
    n: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"value": finite(self.value), "ci": [finite(self.ci[0]), finite(self.ci[1])], "n": self.n}


def finite(value: Any) -> Any:
    """NaN and infinities as None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def score_candidate(
    task: str, metrics: Sequence[str], outputs: Sequence[str], cases: Sequence[Case], options: dict[str, Any]
) -> tuple[dict[str, Score], list[bool | None]]:
    """Every metric with its 95% interval, plus `pass_rate`; and the per-item pass verdicts."""
    results: dict[str, MetricResult] = evaluate_metrics(metrics, outputs, cases, **options)
    scores: dict[str, Score] = {}
    for name, result in results.items():
        metric = get_metric(name)
        taken = {k: v for k, v in options.items() if k in metric.options}
        ci = bootstrap_ci(outputs, cases, metric, **taken)
        scores[name] = Score(
            result.value, ci, list(result.per_item), result.details, n=sum(s is not None for s in result.per_item)
        )
    passed = pass_verdicts(task, results, len(cases))
    flags = [float(p) for p in passed if p is not None]
    scores["pass_rate"] = Score(
        sum(flags) / len(flags) if flags else math.nan,
        bootstrap_mean_ci(flags),
        [None if p is None else float(p) for p in passed],
        n=len(flags),
    )
    return scores, passed


def pass_verdicts(task: str, results: dict[str, MetricResult], n: int) -> list[bool | None]:
    primary = primary_metric(task, list(results))
    verdicts: list[bool | None] = []
    for index in range(n):
        verdict: bool | None = None
        if primary:
            value = results[primary[0]].per_item[index]
            if value is not None:
                verdict = value >= primary[1] - 1e-9
        for check in CHECKS:
            if check in results and (value := results[check].per_item[index]) is not None:
                verdict = (verdict is not False) and value >= 1 - 1e-9
        verdicts.append(verdict)
    return verdicts


def compact_details(details: dict[str, Any], n: int) -> dict[str, Any]:
    """Metric details without the per-item lists (those live in results.jsonl)."""
    return {k: v for k, v in details.items() if not (isinstance(v, list) and len(v) == n and n > 1)}


def compare_to_reference(
    scores: dict[str, Score], reference: dict[str, Score], case_ids: Sequence[str], task: str
) -> dict[str, dict[str, Any]]:
    """Paired comparison, metric by metric, of a candidate's per-item scores with the reference's."""
    primary = primary_metric(task, list(scores))
    comparisons: dict[str, dict[str, Any]] = {}
    for name, score in scores.items():
        if name not in reference or not score.per_item:  # loss and perplexity have no per-item scores here
            continue
        threshold = 0.5 if name == "pass_rate" else (primary[1] if primary and primary[0] == name else None)
        sign = 1.0 if higher_is_better(name) else -1.0
        a = [None if s is None else sign * s for s in score.per_item]
        b = [None if s is None else sign * s for s in reference[name].per_item]
        comparison = paired_comparison(a, b, pass_threshold=None if threshold is None else sign * threshold)
        if not comparison.n:  # the metric applies to no item (e.g. must_contain without such cases)
            continue
        low, high = sorted((sign * comparison.ci[0], sign * comparison.ci[1]))
        comparisons[name] = {
            "wins": comparison.wins,
            "losses": comparison.losses,
            "ties": comparison.ties,
            "n": comparison.n,
            "mean_diff": finite(sign * comparison.mean_diff),
            "ci": [finite(low), finite(high)],
            "flipped": [case_ids[i] for i in comparison.flipped],
        }
    return comparisons
