"""Rule checks written by the user per case: required strings (``must_contain``), forbidden strings
(``must_not_contain``) and the answer's length relative to the reference (``length_ok``).

Each check scores None for a case that does not use it, so the value is the mean over the cases
that do. Matching ignores case and runs of whitespace. Output format (is it JSON, does it fit a
schema) is checked by ``json_valid`` and ``schema_valid`` in extraction.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from tailorlm.evaluate.metrics import Case, MetricResult, mean_or_nan, metric
from tailorlm.evaluate.metrics.text import normalize_text


@metric("must_contain", tasks=("chat", "generate", "extract"))
def must_contain(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """Fraction of the case's required strings found in the output; ``details["missing"]`` maps
    item index to the strings not found."""
    per_item: list[float | None] = []
    missing: dict[int, list[str]] = {}
    for index, (prediction, case) in enumerate(zip(predictions, cases, strict=True)):
        if not case.must_contain:
            per_item.append(None)
            continue
        output = normalize_text(prediction)
        absent = [s for s in case.must_contain if normalize_text(s) not in output]
        per_item.append(1 - len(absent) / len(case.must_contain))
        if absent:
            missing[index] = absent
    return MetricResult("must_contain", mean_or_nan(per_item), per_item, {"missing": missing})


@metric("must_not_contain", tasks=("chat", "generate", "extract"))
def must_not_contain(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """1 when none of the case's forbidden strings appear in the output, else 0;
    ``details["found"]`` maps item index to the forbidden strings found."""
    per_item: list[float | None] = []
    found: dict[int, list[str]] = {}
    for index, (prediction, case) in enumerate(zip(predictions, cases, strict=True)):
        if not case.must_not_contain:
            per_item.append(None)
            continue
        output = normalize_text(prediction)
        present = [s for s in case.must_not_contain if normalize_text(s) in output]
        per_item.append(0.0 if present else 1.0)
        if present:
            found[index] = present
    return MetricResult("must_not_contain", mean_or_nan(per_item), per_item, {"found": found})


@metric("length_ok", tasks=("chat", "generate"), default=False)
def length_ok(
    predictions: Sequence[str],
    cases: Sequence[Case],
    *,
    min_ratio: float = 0.5,
    max_ratio: float = 2.0,
) -> MetricResult:
    """1 when the output's length is within ``[min_ratio, max_ratio]`` times the reference's.

    Length is counted in non-whitespace characters, which works for every script. Cases without a
    reference (or with an empty one) score None.
    """
    if not 0 <= min_ratio <= max_ratio:
        raise ValueError(f"length_ok needs 0 <= min_ratio <= max_ratio (got {min_ratio}, {max_ratio})")
    per_item: list[float | None] = []
    for prediction, case in zip(predictions, cases, strict=True):
        reference = len("".join((case.expected or "").split()))
        if reference == 0:
            per_item.append(None)
            continue
        ratio = len("".join(prediction.split())) / reference
        per_item.append(1.0 if min_ratio <= ratio <= max_ratio else 0.0)
    details = {"min_ratio": min_ratio, "max_ratio": max_ratio}
    return MetricResult("length_ok", mean_or_nan(per_item), per_item, details)
