"""The facts metrics on hand-written answers: what counts as a fact, what matches, what is invented,
and the we-voice heuristic."""

from __future__ import annotations

import math

import pytest

from tailorlm.evaluate.metrics import Case, evaluate_metrics, get_metric, metrics_for_task
from tailorlm.evaluate.metrics.facts import Fact, canonical_number, extract_facts, spelled_numbers_as_digits
from tailorlm.evaluate.scoring import higher_is_better

REFUND = "We issue your refund within 5 business days of your return arriving, and we'll e-mail you when we do."
RETURNS = "You have 30 days from delivery. Start the return at account.acme.example and we'll send a prepaid label."


def facts(text: str) -> set[tuple[str, str]]:
    return {(f.kind, f.value) for f in extract_facts(text)}


def test_extracts_each_kind_of_fact() -> None:
    text = (
        "Care+ is $4.99/month (4,99 € in France, 10% off yearly). Order ACM-123456, RMA-2024-001, error E07 "
        "on the Thermo T5. Call 1-800-222-1111 or +33 1 23 45 67 89, write to care@acme.example or see "
        "https://www.acme.example/support/. Firmware 4.2.1, v2.1. Open 9:00-17:30 until 2026-03-01."
    )
    assert facts(text) == {
        ("money", "4.99"),
        ("percent", "10"),
        ("code", "ACM123456"),
        ("code", "RMA2024001"),
        ("code", "E07"),
        ("code", "T5"),
        ("phone", "18002221111"),
        ("phone", "33123456789"),
        ("email", "care@acme.example"),
        ("url", "acme.example/support"),
        ("version", "4.2.1"),
        ("version", "2.1"),
        ("time", "9:00"),
        ("time", "17:30"),
        ("date", "2026-3-1"),
    }
    money = {f.unit for f in extract_facts(text) if f.kind == "money"}
    assert money == {("usd",), ("eur",)}


def test_numbers_carry_their_unit_and_list_markers_are_not_facts() -> None:
    found = extract_facts("1. Open the app\n2. Wait 30 days, then 5 business days.\n1,000 units")
    assert [(f.value, f.unit) for f in found] == [("30", ("day",)), ("5", ("busines", "day")), ("1000", ("unit",))]
    assert extract_facts("No digits here at all, only words.") == []


def test_phone_numbers_and_clock_times() -> None:
    assert facts("Call +1-555-0142 or (800) 222-1111.") == {("phone", "15550142"), ("phone", "8002221111")}
    assert facts("From 2024-2025 on") == {("number", "2024"), ("number", "2025")}  # a range, not a phone
    assert facts("Open 8 a.m.–8 p.m., 12 am, 9:30 PM") == {
        ("time", "8:00"),
        ("time", "20:00"),
        ("time", "0:00"),
        ("time", "21:30"),
    }
    assert extract_facts("8 p.m.")[0].matches(extract_facts("20:00")[0])


@pytest.mark.parametrize(
    ("written", "canonical"),
    [("1,200.50", "1200.5"), ("4,99", "4.99"), ("1.234,50", "1234.5"), ("09", "9"), ("5.00", "5"), ("x", None)],
)
def test_canonical_number(written: str, canonical: str | None) -> None:
    assert canonical_number(written) == canonical


def test_matching_rules() -> None:
    (thirty,) = extract_facts("30 days")
    assert all(thirty.matches(f) for f in extract_facts("a 30-day window"))
    assert thirty.matches(Fact("number", "30"))  # a bare number matches any unit
    assert not thirty.matches(extract_facts("30 minutes")[0])
    assert extract_facts("5 business days")[0].matches(extract_facts("5 days")[0])
    assert extract_facts("$149")[0].matches(extract_facts("149 USD")[0])
    assert not extract_facts("$149")[0].matches(extract_facts("149 €")[0])
    assert extract_facts("+1 800 222 1111")[0].matches(extract_facts("800-222-1111")[0])
    host = extract_facts("account.acme.example")[0]
    assert host.matches(extract_facts("https://account.acme.example/orders")[0])
    assert not host.matches(extract_facts("support.acme.example")[0])
    orders = extract_facts("acme.example/orders")[0]
    assert not orders.matches(extract_facts("acme.example/ord")[0])
    assert orders.matches(extract_facts("https://acme.example/orders/42")[0])
    assert extract_facts("E-07")[0].matches(extract_facts("E07")[0])
    assert extract_facts("30 Tage")[0].matches(extract_facts("30 Tagen")[0])  # the same first four letters
    # Function words end a unit: "3 and 5 business days" invents nothing against "3 to 5 business days".
    assert [(f.text, f.unit) for f in extract_facts("within 14 days of delivery, 3 and 5")] == [
        ("14 days", ("day",)),
        ("3", ()),
        ("5", ()),
    ]
    case = Case(expected="Refunds show within 3 to 5 business days.")
    assert get_metric("invented_facts")(["It takes between 3 and 5 business days."], [case]).per_item == [0.0]


def test_spelled_numbers() -> None:
    assert spelled_numbers_as_digits("Thirty days and twenty-four hours") == "30 days and 24 hours"


def test_fact_recall_by_hand() -> None:
    cases = [Case(expected=REFUND), Case(expected=RETURNS), Case(expected="Thanks, happy to help!")]
    answers = [
        "Refunds reach you within five business days.",  # spelled out: credited
        "You can return it within 30 days at account.acme.example.",
        "Anything else?",
    ]
    result = get_metric("fact_recall")(answers, cases)
    assert result.per_item == [1.0, 1.0, None]  # the third reference states no fact
    assert result.value == 1.0
    wrong = get_metric("fact_recall")(["Within 10 business days.", "We take returns for 14 days."], cases[:2])
    assert wrong.per_item == [0.0, 0.0]
    assert wrong.details["missed"] == {0: ["5 business days"], 1: ["account.acme.example", "30 days"]}


def test_fact_recall_counts_must_contain() -> None:
    case = Case(expected=REFUND, must_contain=["Returns Center"])
    result = get_metric("fact_recall")(["Within 5 days of it reaching us."], [case])
    assert result.per_item == [0.5]
    assert result.details["missed"] == {0: ["Returns Center"]}
    only_required = get_metric("fact_recall")(["Our Returns Center has it."], [Case(must_contain=["returns center"])])
    assert only_required.per_item == [1.0]


def test_invented_phone_number_and_installation_time() -> None:
    case = Case(
        expected="Our installation guide walks you through it; E01 means the sensor lost power.",
        context="You are Acme Care.\nWhat does E01 mean on my Thermo T3?",
    )
    answer = "Call us at 1-800-222-1111. Installation takes 2–3 business days. E01 is a temperature setting on the T3."
    result = get_metric("invented_facts")([answer], [case])
    assert result.details["invented"] == {0: ["1-800-222-1111", "2", "3 business days"]}
    assert result.per_item == [pytest.approx(3 / 5)]  # E01 and T3 were in the question


def test_failure_analysis_names_invented_facts() -> None:
    from tailorlm.evaluate.cases import EvalCase
    from tailorlm.evaluate.failures import analyse, diagnose

    case = EvalCase(id="c1", messages=[{"role": "user", "content": "Phone?"}], expected="Use the app.")
    answer = "Call 1-800-222-1111."
    scores = {"invented_facts": get_metric("invented_facts")([answer], [case.metric_case("Phone?")]).per_item[0]}
    errors = diagnose("chat", case, answer, finished=True, prompt_text="Phone?", scores=scores)
    assert "invented_fact" in errors
    analysis = analyse("chat", [case], [answer], [errors], [False])
    assert any("invented_facts" in line and "RAFT" in line for line in analysis["suggestions"])


def test_invented_facts_uses_what_the_candidate_was_shown() -> None:
    answer = "Refunds take 5 business days; Care+ is $4.99 a month."
    bare = Case(expected="We refund within 5 business days.")
    shown = Case(expected=bare.expected, context="[1] Acme Care+ costs $4.99/month.\nHow fast are refunds?")
    assert get_metric("invented_facts")([answer], [bare]).per_item == [0.5]
    assert get_metric("invented_facts")([answer], [shown]).per_item == [0.0]
    # No facts in the answer: nothing to judge.
    result = get_metric("invented_facts")(["We're on it!"], [bare])
    assert result.per_item == [None] and math.isnan(result.value)


def test_we_voice() -> None:
    answers = [
        "We're sorry about that. We'll send a new label today.",
        "The label will be sent today.",
        "We can help, but you should have read the manual.",
        "Nous vous envoyons une étiquette.",
        "Shipping to the US takes a week.",
        "",
    ]
    result = get_metric("we_voice")(answers, [Case()] * len(answers))
    assert result.per_item == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert result.details["blaming"] == {2: ["you should have"]}
    assert result.details["not_we"] == [1, 4, 5]


def test_registration() -> None:
    assert {"fact_recall", "invented_facts"} <= set(metrics_for_task("chat"))
    assert "we_voice" not in metrics_for_task("chat")  # opt-in: not every company speaks as "we"
    assert higher_is_better("fact_recall") and not higher_is_better("invented_facts")
    results = evaluate_metrics(
        ["fact_recall", "invented_facts", "we_voice"], ["We refund within 5 business days."], [Case(expected=REFUND)]
    )
    assert [r.value for r in results.values()] == [1.0, 0.0, 1.0]
