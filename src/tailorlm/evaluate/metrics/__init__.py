"""The metric interface and registry: every metric is a function over (predictions, cases) that
returns a MetricResult, registered by name with one ``@metric(...)`` line in the file of its family
(classification.py, extraction.py, text.py, checks.py, facts.py).

    from tailorlm.evaluate.metrics import Case, evaluate_metrics
    results = evaluate_metrics(["exact_match", "rouge_l"], ["Paris"], [Case(expected="Paris")])
    results["rouge_l"].value  # 1.0

A new metric is one decorated function in the file of its family (or a new file imported at the
bottom of this one); nothing else changes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tailorlm.config import TASKS


@dataclass
class Case:
    """One evaluation item's reference side.

    Attributes:
        expected: Reference text, gold label or gold JSON string, depending on the task.
        label: Gold label for classification (takes precedence over ``expected`` there).
        must_contain: Strings the output must contain (case-insensitive).
        must_not_contain: Strings the output must not contain (case-insensitive).
        json_schema: JSON Schema the output must satisfy (extraction).
        tags: Free-form tags for slicing results.
        context: What the candidate was shown besides the case itself: its whole prompt (system
            prompt, question, few-shot examples, retrieved passages). Facts found there are not
            invented (``invented_facts``); None when unknown.
    """

    expected: str | None = None
    label: str | None = None
    must_contain: list[str] = field(default_factory=list)
    must_not_contain: list[str] = field(default_factory=list)
    json_schema: dict | None = None
    tags: list[str] = field(default_factory=list)
    context: str | None = None


@dataclass
class MetricResult:
    """A metric's score on a set of items.

    Attributes:
        name: The metric's registered name.
        value: The aggregate score; NaN when no item was applicable.
        per_item: Per-item score where the metric decomposes; None where it does not apply.
        details: Metric-specific breakdown (confusion matrix, per-field F1, unparseable count, ...).
    """

    name: str
    value: float
    per_item: list[float | None]
    details: dict = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """What the runner, the report and the gate rely on."""

    @property
    def name(self) -> str: ...
    @property
    def tasks(self) -> tuple[str, ...]: ...
    @property
    def higher_is_better(self) -> bool: ...

    def __call__(self, predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult: ...


MetricFunction = Callable[..., MetricResult]


@dataclass(frozen=True)
class FunctionMetric:
    """A registered metric function with its metadata.

    Attributes:
        name: Registry name, as written in ``evaluate.metrics`` of the project file.
        tasks: Tasks the metric applies to.
        higher_is_better: Direction of improvement.
        decomposes: True when ``value`` is the mean of the non-None ``per_item`` scores, so
            confidence intervals and paired comparisons can work on the per-item scores alone.
        default: Whether ``metrics_for_task`` lists it for its tasks.
        function: ``function(predictions, cases, **options) -> MetricResult``.
    """

    name: str
    tasks: tuple[str, ...]
    higher_is_better: bool
    decomposes: bool
    default: bool
    function: MetricFunction

    @property
    def options(self) -> tuple[str, ...]:
        """Keyword-only options the function accepts (for example ``labels`` for classification)."""
        parameters = inspect.signature(self.function).parameters.values()
        return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def __call__(self, predictions: Sequence[str], cases: Sequence[Case], **options: Any) -> MetricResult:
        if len(predictions) != len(cases):
            raise ValueError(f"metric {self.name!r}: got {len(predictions)} predictions for {len(cases)} cases")
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"metric {self.name!r} does not take option(s) {unknown}; it takes {list(self.options)}")
        return self.function(list(predictions), list(cases), **options)


_REGISTRY: dict[str, FunctionMetric] = {}


def metric(
    name: str,
    *,
    tasks: tuple[str, ...],
    higher_is_better: bool = True,
    decomposes: bool = True,
    default: bool = True,
) -> Callable[[MetricFunction], MetricFunction]:
    """Register a metric function under ``name``; the function itself is returned unchanged.

    Args:
        name: Registry name; must be unique.
        tasks: Tasks it applies to (a subset of chat, classify, extract, generate, cpt).
        higher_is_better: Direction of improvement.
        decomposes: Whether the aggregate is the mean of the non-None per-item scores.
        default: Whether ``metrics_for_task`` includes it.
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"metric {name!r}: unknown task(s) {unknown}; known tasks are {list(TASKS)}")

    def register(function: MetricFunction) -> MetricFunction:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        _REGISTRY[name] = FunctionMetric(name, tuple(tasks), higher_is_better, decomposes, default, function)
        return function

    return register


def known_metrics() -> list[str]:
    """Names of every registered metric, sorted."""
    return sorted(_REGISTRY)


def get_metric(name: str) -> FunctionMetric:
    """The registered metric called ``name``.

    Raises:
        ValueError: If no metric has that name; the message lists the known names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known metrics are: {', '.join(known_metrics())}") from None


def metrics_for_task(task: str) -> list[str]:
    """The default metric names for ``task``, in registration order."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks are {list(TASKS)}")
    return [m.name for m in _REGISTRY.values() if m.default and task in m.tasks]


def evaluate_metrics(
    names: Sequence[str], predictions: Sequence[str], cases: Sequence[Case], **options: Any
) -> dict[str, MetricResult]:
    """Score ``predictions`` against ``cases`` with each named metric.

    Args:
        names: Metric names; all are resolved before any is computed, so a typo fails fast.
        predictions: Model outputs, one per case.
        cases: Reference sides, one per prediction.
        **options: Passed to each metric that takes them (e.g. ``labels=[...]`` for classification
            metrics); an option no named metric takes is an error.

    Returns:
        Results by metric name, in the order of ``names``.
    """
    metrics = [get_metric(name) for name in names]
    unused = sorted(set(options) - {o for m in metrics for o in m.options})
    if unused:
        raise ValueError(f"no metric among {list(names)} takes option(s) {unused}")
    return {m.name: m(predictions, cases, **{k: v for k, v in options.items() if k in m.options}) for m in metrics}


def mean_or_nan(scores: Sequence[float | None]) -> float:
    """Mean of the non-None scores; NaN when there are none (the metric applied to no item)."""
    applicable = [s for s in scores if s is not None]
    return math.fsum(applicable) / len(applicable) if applicable else math.nan


# The families register themselves on import; they import the names above, so this comes last.
from tailorlm.evaluate.metrics import checks, classification, extraction, facts, multilabel, text  # noqa: E402

__all__ = [
    "TASKS",
    "Case",
    "FunctionMetric",
    "Metric",
    "MetricResult",
    "checks",
    "classification",
    "evaluate_metrics",
    "extraction",
    "facts",
    "get_metric",
    "known_metrics",
    "mean_or_nan",
    "metric",
    "metrics_for_task",
    "multilabel",
    "text",
]
