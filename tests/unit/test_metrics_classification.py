"""Classification metrics against values computed by hand, and label normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from tailorlm.evaluate.metrics import Case, evaluate_metrics, get_metric
from tailorlm.evaluate.metrics.classification import UNPARSEABLE, normalize_label

LABELS = ["billing", "refund", "shipping"]

# gold       output                 normalised   correct
# billing    "billing"              billing      1
# billing    "Category: Shipping"   shipping     0
# shipping   "shipping."            shipping     1
# shipping   "'Shipping'"           shipping     1
# refund     "refund"               refund       1
# refund     "I have no idea"       unparseable  0
#
# accuracy = 4/6
# billing:  TP 1 FP 0 FN 1 -> P 1,   R 1/2, F1 2/3
# shipping: TP 2 FP 1 FN 0 -> P 2/3, R 1,   F1 4/5
# refund:   TP 1 FP 0 FN 1 -> P 1,   R 1/2, F1 2/3
# macro-F1 = (2/3 + 4/5 + 2/3) / 3 = 32/45
GOLD = ["billing", "billing", "shipping", "shipping", "refund", "refund"]
OUTPUTS = ["billing", "Category: Shipping", "shipping.", "'Shipping'", "refund", "I have no idea"]


def _cases(golds: list[str | None]) -> list[Case]:
    return [Case(label=g) for g in golds]


def test_accuracy_and_macro_f1_by_hand():
    results = evaluate_metrics(["accuracy", "macro_f1"], OUTPUTS, _cases(GOLD))

    accuracy = results["accuracy"]
    assert accuracy.value == pytest.approx(4 / 6)
    assert accuracy.per_item == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]

    macro = results["macro_f1"]
    assert macro.value == pytest.approx(32 / 45)
    per_label = macro.details["per_label"]
    assert per_label["billing"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "predicted": 1}
    )
    assert per_label["shipping"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2, "predicted": 3}
    )
    assert per_label["refund"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "predicted": 1}
    )


def test_details_report_unparseable_and_confusion_matrix():
    details = get_metric("accuracy")(OUTPUTS, _cases(GOLD)).details
    assert details["labels"] == LABELS
    assert details["unparseable"] == 1
    assert details["unparseable_items"] == [5]
    assert details["predicted"] == ["billing", "shipping", "shipping", "shipping", "refund", None]
    matrix = details["confusion_matrix"]
    assert matrix["rows"] == LABELS
    assert matrix["columns"] == [*LABELS, UNPARSEABLE]
    assert matrix["matrix"] == [
        [1, 0, 1, 0],  # billing: one right, one called shipping
        [0, 1, 0, 1],  # refund: one right, one unparseable
        [0, 0, 2, 0],  # shipping: both right
    ]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("billing", "billing"),
        ("  Billing  ", "billing"),
        ("BILLING.", "billing"),
        ('"billing"', "billing"),
        ("**Billing**", "billing"),
        ("`billing`", "billing"),
        ("Category: billing", "billing"),
        ("Label: Billing.", "billing"),
        ("billing\nThe customer asks about an invoice.", "billing"),
        ("This is a billing question.", "billing"),
        ("Technical support", "technical_support"),
        ("technical-support", "technical_support"),
        ("The ticket is non-urgent.", "non-urgent"),  # "urgent" only inside "non-urgent"
        ("urgent!", "urgent"),
        ("billing or shipping", None),  # two labels: ambiguous
        ("billings", None),  # not a whole word
        ("I don't know", None),
        ("", None),
    ],
)
def test_normalize_label(output: str, expected: str | None):
    labels = ["billing", "shipping", "technical_support", "urgent", "non-urgent"]
    assert normalize_label(output, labels) == expected


def test_labels_that_collide_after_normalisation_are_an_error():
    with pytest.raises(ValueError, match="same after normalisation"):
        normalize_label("x", ["Billing", "billing"])


def test_given_label_set_is_used_and_must_hold_every_gold_label():
    cases = _cases(["billing", "refund"])
    result = get_metric("accuracy")(["other", "refund"], cases, labels=["billing", "refund", "other"])
    assert result.per_item == [0.0, 1.0]
    assert result.details["unparseable"] == 0  # "other" is a label, just the wrong one

    with pytest.raises(ValueError, match=r"case 1: gold label 'refund' is not in the label set"):
        get_metric("accuracy")(["billing", "refund"], cases, labels=["billing"])


def test_macro_f1_leaves_out_labels_that_occur_nowhere():
    # "other" is in the label set but neither gold nor predicted: F1 is undefined, not 0.
    cases = _cases(["billing", "refund"])
    result = get_metric("macro_f1")(["billing", "refund"], cases, labels=["billing", "refund", "other"])
    assert result.value == 1.0


def test_gold_label_falls_back_to_expected_and_missing_gold_is_not_scored():
    cases = [Case(expected="billing"), Case(), Case(label="refund", expected="ignored")]
    result = get_metric("accuracy")(["billing", "billing", "billing"], cases)
    assert result.per_item == [1.0, None, 0.0]
    assert result.value == 0.5
    assert result.details["labels"] == ["billing", "refund"]


def test_no_gold_labels_gives_nan():
    result = get_metric("macro_f1")(["billing"], [Case()])
    assert math.isnan(result.value)
    assert result.per_item == [None]


def test_per_label_scores_agree_with_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d"]
    golds = list(rng.choice(labels, size=300))
    outputs = [str(x) for x in rng.choice([*labels, "???"], size=300)]  # "???" is unparseable
    result = get_metric("macro_f1")(outputs, _cases(golds))
    y_pred = [o if o in labels else UNPARSEABLE for o in outputs]
    precision, recall, f1, support = precision_recall_fscore_support(golds, y_pred, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        entry = result.details["per_label"][label]
        assert (entry["precision"], entry["recall"], entry["f1"]) == pytest.approx((precision[i], recall[i], f1[i]))
        assert entry["support"] == support[i]
    assert result.value == pytest.approx(f1_score(golds, y_pred, labels=labels, average="macro"))


# --- multi-label ---------------------------------------------------------------------------------


def test_multi_label_metrics_by_hand_and_against_sklearn():
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    from tailorlm.evaluate.metrics.multilabel import label_macro_f1, micro_f1, subset_accuracy

    cases = [Case(label="billing;returns"), Case(label="shipping"), Case(label="billing"), Case(label="x"), Case()]
    outputs = ["Returns; billing", "shipping;billing", "", "nonsense", "billing"]
    labels = ["billing", "returns", "shipping", "x"]
    subset = subset_accuracy(outputs, cases, labels=labels)
    assert subset.per_item == [1.0, 0.0, 0.0, 0.0, None]  # order and case of the parts don't matter
    assert subset.value == 0.25 and subset.details["unparseable"] == 1
    # pooled by hand: tp 3 (billing, returns, shipping), gold labels 5, answered 4
    assert micro_f1(outputs, cases, labels=labels).value == pytest.approx(2 * 3 / (5 + 4))
    binarizer = MultiLabelBinarizer(classes=labels)
    gold = binarizer.fit_transform([{"billing", "returns"}, {"shipping"}, {"billing"}, {"x"}])
    answered = binarizer.transform([{"billing", "returns"}, {"shipping", "billing"}, set(), set()])
    assert micro_f1(outputs, cases, labels=labels).value == pytest.approx(f1_score(gold, answered, average="micro"))
    macro = label_macro_f1(outputs, cases, labels=labels)
    assert macro.value == pytest.approx(f1_score(gold, answered, average="macro", zero_division=0))
    assert macro.details["per_label"]["billing"] == {"f1": 0.5, "tp": 1, "support": 2, "predicted": 2}
    assert subset_accuracy(["a|b"], [Case(label="b|a")], separator="|").value == 1.0
