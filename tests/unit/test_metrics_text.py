"""Text metrics (ROUGE-L, chrF, exact match), the rule checks, and the metric registry."""

from __future__ import annotations

import math

import pytest

from tailorlm.evaluate.metrics import (
    Case,
    Metric,
    MetricResult,
    evaluate_metrics,
    get_metric,
    known_metrics,
    metric,
    metrics_for_task,
)
from tailorlm.evaluate.metrics.text import UnicodeTokenizer

# --- ROUGE-L ---------------------------------------------------------------------------------------


def test_rouge_l_by_hand():
    # reference:  the cat sat on the mat      (6 tokens)
    # prediction: the cat lay on the red mat  (7 tokens)
    # LCS: the cat · on the · mat = 5  ->  P 5/7, R 5/6, F = 2PR/(P+R) = 10/13
    result = get_metric("rouge_l")(["The cat lay on the red mat."], [Case(expected="the cat sat on the mat")])
    assert result.value == pytest.approx(10 / 13)


def test_rouge_l_keeps_non_ascii_words():
    # rouge-score's default tokenizer would drop "ü" and split "müller" apart.
    # reference: müller zahlt morgen / prediction: müller zahlt heute -> LCS 2 of 3 each: F 2/3
    result = get_metric("rouge_l")(["Müller zahlt heute"], [Case(expected="Müller zahlt morgen")])
    assert result.value == pytest.approx(2 / 3)
    # Han characters are tokens of their own: 5 of the reference's 7 characters, in order.
    result = get_metric("rouge_l")(["北京是首都"], [Case(expected="北京是中国首都")])
    assert result.value == pytest.approx(2 * (5 / 5) * (5 / 7) / (5 / 5 + 5 / 7))


def test_unicode_tokenizer():
    tokenizer = UnicodeTokenizer()
    assert tokenizer.tokenize("Müller zahlt 9 €, São Paulo!") == ["müller", "zahlt", "9", "são", "paulo"]
    assert tokenizer.tokenize("東京へ行く") == ["東", "京", "へ", "行", "く"]


# --- chrF and exact match -----------------------------------------------------------------------------


def test_chrf_identical_is_one_and_disjoint_is_zero():
    result = get_metric("chrf")(
        ["The refund takes five days.", "abc", "The refund takes 5 days"],
        [
            Case(expected="The refund takes five days."),
            Case(expected="xyz"),
            Case(expected="The refund takes five days."),
        ],
    )
    identical, disjoint, close = result.per_item
    assert identical == pytest.approx(1.0)
    assert disjoint == 0.0
    assert 0.5 < close < 1.0
    assert result.value == pytest.approx((identical + disjoint + close) / 3)


def test_exact_match_normalises_whitespace_and_case():
    result = get_metric("exact_match")(
        ["  Paris \n", "Paris.", "anything"], [Case(expected="paris"), Case(expected="Paris"), Case()]
    )
    assert result.per_item == [1.0, 0.0, None]
    assert result.value == 0.5


def test_text_metric_without_any_reference_is_nan():
    result = get_metric("rouge_l")(["hello"], [Case()])
    assert result.per_item == [None]
    assert math.isnan(result.value)


# --- checks --------------------------------------------------------------------------------------


def test_must_contain_fraction_case_insensitive():
    cases = [
        Case(must_contain=["refund", "5 working  days", "receipt"]),
        Case(must_contain=["Order number"]),
        Case(),
    ]
    outputs = ["Your REFUND arrives within 5 working days.", "Please send the order number.", "hi"]
    result = get_metric("must_contain")(outputs, cases)
    assert result.per_item == pytest.approx([2 / 3, 1.0, None])
    assert result.value == pytest.approx(5 / 6)
    assert result.details["missing"] == {0: ["receipt"]}


def test_must_not_contain():
    cases = [Case(must_not_contain=["guarantee", "lawyer"]), Case(must_not_contain=["sorry"]), Case()]
    outputs = ["We GUARANTEE delivery.", "Thanks for writing.", "anything"]
    result = get_metric("must_not_contain")(outputs, cases)
    assert result.per_item == [0.0, 1.0, None]
    assert result.details["found"] == {0: ["guarantee"]}


def test_length_ok_with_options():
    cases = [Case(expected="abcdefghij"), Case(expected="abcdefghij"), Case()]
    outputs = ["abcde", "a" * 21, "x"]
    assert get_metric("length_ok")(outputs, cases).per_item == [1.0, 0.0, None]
    assert get_metric("length_ok")(outputs, cases, max_ratio=3).per_item == [1.0, 1.0, None]


# --- registry ------------------------------------------------------------------------------------


def test_unknown_metric_error_lists_known_names():
    with pytest.raises(ValueError, match="unknown metric 'rouge'") as error:
        get_metric("rouge")
    for name in ("rouge_l", "chrf", "exact_match", "accuracy", "macro_f1", "field_f1", "must_contain"):
        assert name in str(error.value)


def test_registered_metrics_follow_the_protocol():
    for name in known_metrics():
        registered = get_metric(name)
        assert isinstance(registered, Metric)
        assert registered.name == name


# One small sample per task: (predictions, cases), with an item no metric applies to at the end.
SAMPLES = {
    "chat": (
        ["We refund within 5 business days.", "Call 1-800-222-1111.", ""],
        [Case(expected="Refunds take 5 business days.", must_contain=["refund"]), Case(expected="Hi!"), Case()],
    ),
    "classify": (["billing", "shipping", "x"], [Case(label="billing"), Case(label="billing"), Case()]),
    "extract": (
        ['{"a": 1}', "not json", ""],
        [Case(expected='{"a": 1}', json_schema={"type": "object"})] * 2 + [Case()],
    ),
}
SAMPLES["generate"] = SAMPLES["chat"]


def test_every_metric_keeps_the_contract():
    """Every registered metric, on each task it serves: one score per item, None where it does not
    apply, the value the mean of the per-item scores when it decomposes, NaN on no items."""
    for name in known_metrics():
        registered = get_metric(name)
        for task in registered.tasks:
            if task not in SAMPLES:
                continue
            predictions, cases = SAMPLES[task]
            result = registered(predictions, cases)
            assert result.name == name and len(result.per_item) == len(cases), (name, task)
            assert all(s is None or 0 <= s <= 1 for s in result.per_item), (name, task, result.per_item)
            if registered.decomposes:
                applicable = [s for s in result.per_item if s is not None]
                expected = sum(applicable) / len(applicable) if applicable else math.nan
                assert result.value == pytest.approx(expected, nan_ok=True), (name, task)
            assert math.isnan(registered([], []).value), name


def test_metrics_for_task():
    assert {"exact_match", "rouge_l", "chrf", "must_contain", "must_not_contain"} <= set(metrics_for_task("chat"))
    assert "length_ok" not in metrics_for_task("chat")  # registered with default=False
    assert set(metrics_for_task("classify")) == {"accuracy", "macro_f1"}
    assert {"json_valid", "schema_valid", "field_f1", "exact_record"} <= set(metrics_for_task("extract"))
    with pytest.raises(ValueError, match="unknown task 'qa'"):
        metrics_for_task("qa")


def test_evaluate_metrics_checks_lengths_and_options():
    with pytest.raises(ValueError, match="got 2 predictions for 1 cases"):
        evaluate_metrics(["exact_match"], ["a", "b"], [Case(expected="a")])
    with pytest.raises(ValueError, match=r"takes option\(s\) \['labels'\]"):
        evaluate_metrics(["exact_match"], ["a"], [Case(expected="a")], labels=["a"])
    results = evaluate_metrics(["exact_match", "accuracy"], ["a"], [Case(expected="a")], labels=["a", "b"])
    assert results["accuracy"].details["labels"] == ["a", "b"]


def test_registering_a_metric_is_one_decorator():
    @metric("test_always_one", tasks=("generate",), default=False)
    def always_one(predictions, cases):
        return MetricResult("test_always_one", 1.0, [1.0] * len(predictions), {})

    try:
        assert get_metric("test_always_one")(["x"], [Case()]).value == 1.0
        with pytest.raises(ValueError, match="registered twice"):
            metric("test_always_one", tasks=("generate",))(always_one)
    finally:
        from tailorlm.evaluate import metrics

        metrics._REGISTRY.pop("test_always_one")
