"""Extraction metrics: lenient JSON parsing, value normalisation and field F1 computed by hand on
receipt-like records."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tailorlm.evaluate.metrics import Case, evaluate_metrics, get_metric
from tailorlm.evaluate.metrics.extraction import (
    flatten,
    normalize_value,
    parse_amount,
    parse_date,
    parse_json_output,
)


@pytest.mark.parametrize(
    ("text", "value", "how"),
    [
        ('{"total": "9.00"}', {"total": "9.00"}, "plain"),
        ("  [1, 2]\n", [1, 2], "plain"),
        ('```json\n{"total": "9.00"}\n```', {"total": "9.00"}, "fenced"),
        ('Here it is:\n```\n{"total": "9.00"}\n```\nAnything else?', {"total": "9.00"}, "fenced"),
        ('Sure! {"a": {"b": "}"}} Hope this helps.', {"a": {"b": "}"}}, "embedded"),
        ('Fields {company} and then {"company": "ACME"}', {"company": "ACME"}, "embedded"),
    ],
)
def test_parse_json_output(text: str, value: object, how: str):
    assert parse_json_output(text) == (value, how)


@pytest.mark.parametrize("text", ["", "no json here", "{'single': 'quotes'}", '{"open": ', "42", '"text"', "null"])
def test_parse_json_output_gives_none_without_json(text: str):
    assert parse_json_output(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "2018-12-25",
        "2018/12/25",
        "25/12/2018",
        "25.12.2018",
        "25-12-2018",
        "25/12/18",
        "12/25/2018",  # month first only because day first is impossible
        "25 Dec 2018",
        "25-DEC-2018",
        "25th December 2018",
        "Dec 25, 2018",
        "December 25 2018",
    ],
)
def test_parse_date_to_iso(text: str):
    assert parse_date(text) == "2018-12-25"


def test_parse_date_reads_ambiguous_numeric_dates_day_first():
    assert parse_date("03/04/2018") == "2018-04-03"


@pytest.mark.parametrize("text", ["32/12/2018", "25 Foo 2018", "hello", "2018", "9.00"])
def test_parse_date_rejects_non_dates(text: str):
    assert parse_date(text) is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("RM 9.00", "9.00"),
        ("RM9.00", "9.00"),
        ("9", "9"),
        ("9.0", "9.0"),
        ("1,234.50", "1234.50"),
        ("$1,234.50", "1234.50"),
        ("1.234,50 EUR", "1234.50"),
        ("9,50", "9.50"),
        ("-RM 3.20", "-3.20"),
        ("MYR 1,000", "1000"),
    ],
)
def test_parse_amount(text: str, number: str):
    assert parse_amount(text) == Decimal(number)


@pytest.mark.parametrize("text", ["No. 12", "abc", "1.2.3", "RM", "9 apples"])
def test_parse_amount_rejects_non_amounts(text: str):
    assert parse_amount(text) is None


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("RM 9.00", "9"),
        ("9.0", 9),
        ("1,234.50", 1234.5),
        ("25/12/2018", "2018-12-25"),
        ("  ACME   Trading\nSdn Bhd ", "acme trading sdn bhd"),
    ],
)
def test_normalize_value_equates_formats(left: object, right: object):
    assert normalize_value(left) == normalize_value(right)


def test_flatten_paths_and_absent_values():
    record = {"Total": "RM 9.00", "items": [{"name": " Tea "}], "note": None, "tax": "", "meta": {}}
    assert flatten(record) == {"total": "9", "items[0].name": "tea"}


# A receipt (the shape of SROIE) and three answers:
#   exact    all four fields right in other formats               TP 4 FP 0 FN 0 -> F1 1
#   partial  company wrong, date/total right, address missing,
#            an extra phone field                                 TP 2 FP 2 FN 2 -> F1 1/2
#   refusal  no JSON                                               TP 0 FP 0 FN 4 -> F1 0
# value (mean per item) = (1 + 1/2 + 0) / 3 = 1/2
# micro: TP 6 FP 2 FN 6 -> P 6/8, R 6/12, F1 12/20
# per field: company  TP 1 FP 1 FN 2 -> P 1/2, R 1/3, F1 2/5
#            date     TP 2 FP 0 FN 1 -> P 1,   R 2/3, F1 4/5   (total the same)
#            address  TP 1 FP 0 FN 2 -> P 1,   R 1/3, F1 1/2
#            phone    TP 0 FP 1 FN 0 -> F1 0, support 0
GOLD = {
    "company": "ACME TRADING SDN BHD",
    "date": "25/12/2018",
    "address": "12 Jalan Besar, 50000 Kuala Lumpur",
    "total": "RM 1,234.50",
}
EXACT = json.dumps(
    {
        "company": "Acme Trading Sdn Bhd",
        "date": "2018-12-25",
        "address": "12 Jalan  Besar,\n50000 Kuala Lumpur",
        "total": 1234.5,
    }
)
PARTIAL = (
    "Here is the extracted data:\n```json\n"
    + json.dumps({"company": "ACME TRADING", "date": "25 Dec 2018", "total": "1,234.50", "phone": "03-1234567"})
    + "\n```"
)
REFUSAL = "Sorry, I cannot read this receipt."
OUTPUTS = [EXACT, PARTIAL, REFUSAL]
CASES = [Case(expected=json.dumps(GOLD)) for _ in OUTPUTS]


def test_field_f1_on_receipts_by_hand():
    result = get_metric("field_f1")(OUTPUTS, CASES)
    assert result.per_item == pytest.approx([1.0, 0.5, 0.0])
    assert result.value == pytest.approx(0.5)
    details = result.details
    assert (details["tp"], details["fp"], details["fn"]) == (6, 2, 6)
    assert details["micro"] == pytest.approx({"precision": 0.75, "recall": 0.5, "f1": 0.6})
    assert details["unparseable"] == 1
    per_field = details["per_field"]
    assert per_field["company"] == pytest.approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "support": 3})
    assert per_field["date"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert per_field["total"] == per_field["date"]
    assert per_field["address"] == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5, "support": 3})
    assert per_field["phone"]["f1"] == 0.0
    assert per_field["phone"]["support"] == 0


def test_exact_record_and_json_valid_on_receipts():
    results = evaluate_metrics(["exact_record", "json_valid"], OUTPUTS, CASES)
    assert results["exact_record"].per_item == [1.0, 0.0, 0.0]
    assert results["json_valid"].per_item == [1.0, 1.0, 0.0]
    assert results["json_valid"].details == {"plain": 1, "fenced": 1, "embedded": 0, "unparseable": 1}


def test_field_f1_groups_list_positions_per_field():
    gold = {"items": [{"name": "Tea", "price": "RM 3.00"}, {"name": "Bun", "price": "2.50"}]}
    output = json.dumps({"items": [{"name": "tea", "price": 3}, {"name": "Bun", "price": "2.6"}]})
    result = get_metric("field_f1")([output], [Case(expected=json.dumps(gold))])
    assert result.value == pytest.approx(0.75)  # 3 of 4 fields right: TP 3 FP 1 FN 1
    assert result.details["per_field"]["items[].price"]["f1"] == pytest.approx(0.5)
    assert result.details["per_field"]["items[].name"]["f1"] == 1.0


def test_field_f1_skips_cases_without_reference_and_rejects_bad_reference():
    result = get_metric("field_f1")(["{}"], [Case()])
    assert result.per_item == [None]
    with pytest.raises(ValueError, match="case 0: expected is not JSON"):
        get_metric("field_f1")(["{}"], [Case(expected="not json")])


SCHEMA = {
    "type": "object",
    "required": ["company", "total"],
    "properties": {"company": {"type": "string"}, "total": {"type": "string"}},
}


def test_schema_valid():
    outputs = [
        '{"company": "ACME", "total": "9.00"}',
        '```json\n{"company": "ACME", "total": 9}\n```',
        '{"company": "ACME"}',
        "no json",
        '{"anything": 1}',
    ]
    cases = [Case(json_schema=SCHEMA)] * 4 + [Case()]
    result = get_metric("schema_valid")(outputs, cases)
    assert result.per_item == [1.0, 0.0, 0.0, 0.0, None]
    assert result.value == 0.25
    errors = result.details["errors"]
    assert set(errors) == {1, 2, 3}
    assert errors[1].startswith("total:")
    assert "company" in errors[2] or "total" in errors[2]
    assert errors[3] == "output is not JSON"


def test_schema_valid_rejects_an_invalid_schema_naming_the_case():
    with pytest.raises(ValueError, match="case 0: json_schema is not a valid JSON Schema"):
        get_metric("schema_valid")(["{}"], [Case(json_schema={"type": "nonsense"})])
