"""Classification metrics: accuracy and macro-F1 over a fixed label set, with per-label
precision/recall/F1 and a confusion matrix in the details.

A model answers in free text, so its output is first mapped to a label (``normalize_label``):
"Billing", "billing.", "'billing'", "Category: billing" and "This is a billing question" all map to
``billing``. An output that maps to no label, or to more than one, is *unparseable*: it counts as
wrong and is reported in ``details["unparseable"]``.

The gold label of a case is ``case.label``, or ``case.expected`` when ``label`` is not set. The label
set is the set of gold labels unless the caller passes ``labels=[...]``.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix

from tailorlm.evaluate.metrics import Case, MetricResult, mean_or_nan, metric

UNPARSEABLE = "<unparseable>"


def gold_label(case: Case) -> str | None:
    """The gold label of a case: ``label``, else ``expected``."""
    return case.label if case.label is not None else case.expected


def _strip_marks(text: str) -> str:
    """Drop punctuation, quotes and symbols (``**``, backticks) from both ends."""
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start])[0] in "PSZ":
        start += 1
    while end > start and unicodedata.category(text[end - 1])[0] in "PSZ":
        end -= 1
    return text[start:end]


def _key(text: str) -> str:
    """Comparison key: casefolded, ``_``/``-`` read as spaces, whitespace collapsed, ends stripped."""
    text = re.sub(r"[\s_\-]+", " ", text.casefold())
    return _strip_marks(text.strip())


def normalize_label(output: str, labels: Sequence[str]) -> str | None:
    """Map a model's output to one of ``labels``, or None when it names none or several.

    Tried in order: the whole output; its first non-empty line; the text after the first colon of
    that line ("Category: billing"); finally a label occurring as a whole word, accepted only when
    exactly one label does (a label found only inside a longer matching label, like "urgent" inside
    "non-urgent", does not count).
    """
    return _normalize(output, tuple(labels))


@functools.lru_cache(maxsize=65536)
def _normalize(output: str, labels: tuple[str, ...]) -> str | None:
    by_key = _label_keys(labels)
    lines = [line for line in output.splitlines() if line.strip()]
    candidates = [output]
    if lines:
        candidates.append(lines[0])
        if ":" in lines[0]:
            candidates.append(lines[0].split(":", 1)[1])
    for candidate in candidates:
        label = by_key.get(_key(candidate))
        if label is not None:
            return label

    text = _key(output)
    spans: dict[str, list[tuple[int, int]]] = {}
    for key, label in by_key.items():
        found = [m.span() for m in re.finditer(rf"(?<!\w){re.escape(key)}(?!\w)", text)]
        if found:
            spans[label] = found
    every = [(label, span) for label, found in spans.items() for span in found]
    standalone = {
        label
        for label, (start, end) in every
        if not any(other != label and s <= start and end <= e and (e - s) > (end - start) for other, (s, e) in every)
    }
    return standalone.pop() if len(standalone) == 1 else None


@functools.lru_cache(maxsize=256)
def _label_keys(labels: tuple[str, ...]) -> dict[str, str]:
    by_key: dict[str, str] = {}
    for label in labels:
        key = _key(label)
        if not key:
            raise ValueError(f"label {label!r} is empty after normalisation")
        if key in by_key and by_key[key] != label:
            raise ValueError(f"labels {by_key[key]!r} and {label!r} are the same after normalisation")
        by_key[key] = label
    return by_key


def _label_set(cases: Sequence[Case], labels: Sequence[str] | None) -> list[str]:
    golds = [gold_label(c) for c in cases]
    if labels is None:
        return sorted({g for g in golds if g is not None})
    known = set(labels)
    for index, gold in enumerate(golds):
        if gold is not None and gold not in known:
            raise ValueError(f"case {index}: gold label {gold!r} is not in the label set {list(labels)}")
    return list(dict.fromkeys(labels))


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else 0.0


def classify_outputs(
    predictions: Sequence[str], cases: Sequence[Case], labels: Sequence[str] | None = None
) -> tuple[list[float | None], dict]:
    """Per-item correctness and the shared details of the classification metrics.

    Returns:
        ``(per_item, details)``: per_item is 1.0/0.0 (None for a case without a gold label);
        details hold ``labels``, ``predicted`` (the normalised label per item, None when
        unparseable), ``unparseable`` (count), ``unparseable_items``, ``per_label``
        (precision/recall/f1/support and the count predicted) and ``confusion_matrix`` (rows:
        gold labels; columns: the labels then ``<unparseable>``).
    """
    label_set = _label_set(cases, labels)
    predicted = [_normalize(p, tuple(label_set)) if label_set else None for p in predictions]
    per_item: list[float | None] = []
    y_true: list[str] = []
    y_pred: list[str] = []
    for guess, case in zip(predicted, cases, strict=True):
        gold = gold_label(case)
        if gold is None:
            per_item.append(None)
            continue
        per_item.append(1.0 if guess == gold else 0.0)
        y_true.append(gold)
        y_pred.append(UNPARSEABLE if guess is None else guess)

    unparseable = [
        i for i, (g, c) in enumerate(zip(predicted, cases, strict=True)) if g is None and gold_label(c) is not None
    ]
    details: dict = {
        "labels": label_set,
        "predicted": predicted,
        "unparseable": len(unparseable),
        "unparseable_items": unparseable,
    }
    if y_true:
        # One sklearn call; the per-label scores follow from the matrix exactly as sklearn's
        # precision_recall_fscore_support(zero_division=0) computes them, at a fraction of the cost
        # (which matters when a bootstrap recomputes them a thousand times).
        matrix = confusion_matrix(y_true, y_pred, labels=[*label_set, UNPARSEABLE])[:-1]
        right = np.diag(matrix)
        support = matrix.sum(axis=1)
        predicted_counts = matrix.sum(axis=0)[:-1]
        details["per_label"] = {
            label: {
                "precision": _ratio(tp, n),
                "recall": _ratio(tp, s),
                "f1": _ratio(2 * tp, n + s),
                "support": int(s),
                "predicted": int(n),
            }
            for label, tp, s, n in zip(label_set, right, support, predicted_counts, strict=True)
        }
        details["confusion_matrix"] = {
            "rows": label_set,
            "columns": [*label_set, UNPARSEABLE],
            "matrix": matrix.tolist(),
        }
    return per_item, details


@metric("accuracy", tasks=("classify",))
def accuracy(predictions: Sequence[str], cases: Sequence[Case], *, labels: Sequence[str] | None = None) -> MetricResult:
    """Fraction of items whose output maps to the gold label."""
    per_item, details = classify_outputs(predictions, cases, labels)
    return MetricResult("accuracy", mean_or_nan(per_item), per_item, details)


@metric("macro_f1", tasks=("classify",), decomposes=False)
def macro_f1(predictions: Sequence[str], cases: Sequence[Case], *, labels: Sequence[str] | None = None) -> MetricResult:
    """Unweighted mean of the per-label F1; per_item holds correctness (1/0) for paired comparisons."""
    per_item, details = classify_outputs(predictions, cases, labels)
    # As sklearn's average="macro" without explicit labels: the plain mean of the per-label F1
    # over the labels that occur as gold or as prediction. A label of the set that occurs in
    # neither has no defined F1 and is left out, so a bootstrap resample that happens to miss a
    # rare label is not penalised for it.
    scores = [e["f1"] for e in details.get("per_label", {}).values() if e["support"] or e["predicted"]]
    value = math.fsum(scores) / len(scores) if scores else math.nan
    return MetricResult("macro_f1", value, per_item, details)
