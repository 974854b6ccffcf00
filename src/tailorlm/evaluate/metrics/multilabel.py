"""Multi-label classification metrics, for heads trained with `train.multi_label`: a gold cell and an
answer each hold a set of labels joined by a separator (`billing;returns`).

* ``subset_accuracy``: the answer's set is exactly the gold set (per item 1/0; the primary metric).
* ``micro_f1``: F1 over every (item, label) decision pooled — frequent labels weigh more.
* ``label_macro_f1``: the mean of the per-label F1, over the labels that occur as gold or as answer.

Each part of an answer is mapped to a label as in the single-label metrics (``normalize_label``); a
part that maps to none is counted in ``details["unparseable"]`` and adds no label. They are not in a
task's defaults: the evaluation picks them when the project trains a multi-label head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tailorlm.evaluate.metrics import Case, MetricResult, mean_or_nan, metric
from tailorlm.evaluate.metrics.classification import gold_label, normalize_label

MULTI_LABEL_METRICS = ("subset_accuracy", "micro_f1", "label_macro_f1")


def split_labels(cell: str, separator: str) -> list[str]:
    return [part.strip() for part in cell.split(separator) if part.strip()]


def label_sets(
    predictions: Sequence[str], cases: Sequence[Case], labels: Sequence[str] | None, separator: str
) -> tuple[list[tuple[set[str], set[str]] | None], dict]:
    """Per item the (gold, answered) label sets (None without a gold cell), and the shared details."""
    golds = [gold_label(c) for c in cases]
    label_set = (
        list(dict.fromkeys(labels))
        if labels is not None
        else sorted({part for g in golds if g is not None for part in split_labels(g, separator)})
    )
    pairs: list[tuple[set[str], set[str]] | None] = []
    unparseable = 0
    for output, gold in zip(predictions, golds, strict=True):
        if gold is None:
            pairs.append(None)
            continue
        answered = set()
        for part in split_labels(output, separator):
            label = normalize_label(part, label_set) if label_set else None
            if label is None:
                unparseable += 1
            else:
                answered.add(label)
        pairs.append((set(split_labels(gold, separator)), answered))
    per_label = {}
    for label in label_set:
        tp = sum(1 for p in pairs if p and label in p[0] and label in p[1])
        gold_n = sum(1 for p in pairs if p and label in p[0])
        answered_n = sum(1 for p in pairs if p and label in p[1])
        per_label[label] = {
            "f1": 2 * tp / (gold_n + answered_n) if gold_n + answered_n else 0.0,
            "tp": tp,
            "support": gold_n,
            "predicted": answered_n,
        }
    return pairs, {"labels": label_set, "separator": separator, "unparseable": unparseable, "per_label": per_label}


@metric("subset_accuracy", tasks=("classify",), default=False)
def subset_accuracy(
    predictions: Sequence[str], cases: Sequence[Case], *, labels: Sequence[str] | None = None, separator: str = ";"
) -> MetricResult:
    """Fraction of items whose answered label set is exactly the gold set."""
    pairs, details = label_sets(predictions, cases, labels, separator)
    per_item: list[float | None] = [None if p is None else float(p[0] == p[1]) for p in pairs]
    return MetricResult("subset_accuracy", mean_or_nan(per_item), per_item, details)


@metric("micro_f1", tasks=("classify",), decomposes=False, default=False)
def micro_f1(
    predictions: Sequence[str], cases: Sequence[Case], *, labels: Sequence[str] | None = None, separator: str = ";"
) -> MetricResult:
    """F1 over every (item, label) decision pooled; per_item holds exact-set correctness."""
    pairs, details = label_sets(predictions, cases, labels, separator)
    scored = [p for p in pairs if p is not None]
    tp = sum(len(gold & answered) for gold, answered in scored)
    total = sum(len(gold) + len(answered) for gold, answered in scored)
    value = 2 * tp / total if total else (math.nan if not scored else 0.0)
    per_item: list[float | None] = [None if p is None else float(p[0] == p[1]) for p in pairs]
    return MetricResult("micro_f1", value, per_item, details)


@metric("label_macro_f1", tasks=("classify",), decomposes=False, default=False)
def label_macro_f1(
    predictions: Sequence[str], cases: Sequence[Case], *, labels: Sequence[str] | None = None, separator: str = ";"
) -> MetricResult:
    """Mean of the per-label F1 (labels that occur as gold or answer); per_item holds exact-set correctness."""
    pairs, details = label_sets(predictions, cases, labels, separator)
    scores = [e["f1"] for e in details["per_label"].values() if e["support"] or e["predicted"]]
    value = math.fsum(scores) / len(scores) if scores else math.nan
    per_item: list[float | None] = [None if p is None else float(p[0] == p[1]) for p in pairs]
    return MetricResult("label_macro_f1", value, per_item, details)
