"""Extraction metrics: is the output JSON (``json_valid``), does it satisfy the case's schema
(``schema_valid``), how many fields are right (``field_f1``) and is the whole record right
(``exact_record``).

Outputs are parsed leniently (``parse_json_output``): plain JSON, JSON inside ```json fences, or the
first JSON object embedded in surrounding text. Records are compared field by field over flattened
key paths (``items[0].price``) after normalising values (``normalize_value``): whitespace collapsed,
casefolded, dates in common formats to ISO, amounts to a plain decimal. A field whose value is null
or empty counts as absent, on either side.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonschema

from tailorlm.evaluate.metrics import Case, MetricResult, mean_or_nan, metric

_FENCE = re.compile(r"```[ \t]*(?:json[c5]?)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_DECODER = json.JSONDecoder()


def parse_json_output(text: str) -> tuple[Any, str] | None:
    """Parse a model's JSON output, leniently.

    Only an object or an array counts: a bare ``42`` or ``"text"`` is not a record.

    Returns:
        ``(value, how)`` with ``how`` one of ``"plain"`` (the whole output is JSON), ``"fenced"``
        (inside a Markdown code fence) or ``"embedded"`` (the first JSON object found in the text,
        scanning from each ``{``); None when no JSON is found.
    """
    for how, candidate in [("plain", text), *(("fenced", f.group(1)) for f in _FENCE.finditer(text))]:
        try:
            value = json.loads(candidate.strip())
        except ValueError:
            continue
        if isinstance(value, dict | list):
            return value, how
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value, "embedded"
        start = text.find("{", start + 1)
    return None


# --- value normalisation -------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_SEP = r"[\s\-/.,]+"
_ORDINAL = r"(?:st|nd|rd|th)?"
_YEAR_FIRST = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_NUMERIC = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})")
_DAY_MONTH_NAME = re.compile(rf"(\d{{1,2}}){_ORDINAL}{_SEP}([a-z]+)\.?{_SEP}(\d{{4}}|\d{{2}})")
_MONTH_NAME_DAY = re.compile(rf"([a-z]+)\.?{_SEP}(\d{{1,2}}){_ORDINAL}{_SEP}(\d{{4}})")

_CURRENCY = r"(?:rm|myr|usd|us\$|eur|gbp|sgd|s\$|aud|cad|chf|jpy|cny|rmb|inr|idr|rp|\$|€|£|¥|₹)"
_AMOUNT = re.compile(rf"(-?)\s*(?:{_CURRENCY}\s*)?(-?)\s*([\d.,]+)\s*(?:{_CURRENCY})?")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_THOUSANDS_COMMA = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_THOUSANDS_DOT = re.compile(r"\d{1,3}(?:\.\d{3})+,\d+")
_DECIMAL_COMMA = re.compile(r"\d+,\d{1,2}")


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 70 else 1900
    return year


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def parse_date(text: str) -> str | None:
    """ISO date (``2018-12-25``) for a date in a common format, or None.

    Accepts 2018-12-25, 2018/12/25, 25/12/2018, 25.12.2018, 25-12-18, 25 Dec 2018, 25th December
    2018, Dec 25, 2018. Numeric dates are read day first; month first only when that is the sole
    valid reading (12/25/2018).
    """
    text = text.strip().casefold()
    if match := _YEAR_FIRST.fullmatch(text):
        year, month, day = (int(g) for g in match.groups())
        return _iso(year, month, day)
    if match := _NUMERIC.fullmatch(text):
        first, second, year = int(match[1]), int(match[2]), _year(match[3])
        return _iso(year, second, first) or _iso(year, first, second)
    if (match := _DAY_MONTH_NAME.fullmatch(text)) and match[2] in _MONTHS:
        return _iso(_year(match[3]), _MONTHS[match[2]], int(match[1]))
    if (match := _MONTH_NAME_DAY.fullmatch(text)) and match[1] in _MONTHS:
        return _iso(int(match[3]), _MONTHS[match[1]], int(match[2]))
    return None


def parse_amount(text: str) -> Decimal | None:
    """The number in an amount like ``RM 9.00``, ``$1,234.50``, ``9``, ``1.234,50 EUR``, or None."""
    match = _AMOUNT.fullmatch(text.strip().casefold())
    if not match:
        return None
    sign = "-" if (match[1] or match[2]) else ""
    number = match[3]
    if _THOUSANDS_COMMA.fullmatch(number):
        number = number.replace(",", "")
    elif _THOUSANDS_DOT.fullmatch(number):
        number = number.replace(".", "").replace(",", ".")
    elif _DECIMAL_COMMA.fullmatch(number):
        number = number.replace(",", ".")
    elif not _PLAIN_NUMBER.fullmatch(number):
        return None
    try:
        return Decimal(sign + number)
    except InvalidOperation:
        return None


def _decimal_text(number: Decimal) -> str:
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def normalize_value(value: Any) -> str:
    """Canonical text of a field value: "" for null, a plain decimal for numbers and amounts, an
    ISO date for dates, otherwise the text with whitespace collapsed and casefolded."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _decimal_text(Decimal(str(value)))
    text = " ".join(str(value).split()).casefold()
    date = parse_date(text)
    if date is not None:
        return date
    amount = parse_amount(text)
    if amount is not None:
        return _decimal_text(amount)
    return text


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Flattened key paths to normalised values; keys casefolded, null/empty values dropped.

    ``{"Total": "RM 9.00", "items": [{"name": "Tea"}]}`` → ``{"total": "9", "items[0].name": "tea"}``.
    """
    fields: dict[str, str] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            name = " ".join(str(key).split()).casefold()
            fields.update(flatten(inner, f"{prefix}.{name}" if prefix else name))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            fields.update(flatten(inner, f"{prefix}[{index}]"))
    else:
        normalized = normalize_value(value)
        if normalized:
            fields[prefix] = normalized
    return fields


def _field_name(path: str) -> str:
    """Per-field reporting groups list positions: ``items[3].price`` → ``items[].price``."""
    return re.sub(r"\[\d+\]", "[]", path)


def _gold_record(case: Case, index: int) -> Any:
    assert case.expected is not None
    parsed = parse_json_output(case.expected)
    if parsed is None:
        raise ValueError(f"case {index}: expected is not JSON: {case.expected[:80]!r}")
    return parsed[0]


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    if tp + fp + fn == 0:
        precision = recall = 1.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --- metrics ---------------------------------------------------------------------------------------


@metric("json_valid", tasks=("extract",))
def json_valid(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """1 when the output holds JSON (plain, fenced or embedded), else 0; details count each way."""
    how = [parsed[1] if (parsed := parse_json_output(p)) else "unparseable" for p in predictions]
    per_item: list[float | None] = [0.0 if h == "unparseable" else 1.0 for h in how]
    counts = Counter(how)
    details = {k: counts.get(k, 0) for k in ("plain", "fenced", "embedded", "unparseable")}
    return MetricResult("json_valid", mean_or_nan(per_item), per_item, details)


@metric("schema_valid", tasks=("extract",))
def schema_valid(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """1 when the output's JSON satisfies ``case.json_schema`` (None when the case has none).

    Formats (``date``, ``email``, ...) are checked too. ``details["errors"]`` maps item index to the
    most relevant validation error.
    """
    per_item: list[float | None] = []
    errors: dict[int, str] = {}
    for index, (prediction, case) in enumerate(zip(predictions, cases, strict=True)):
        if case.json_schema is None:
            per_item.append(None)
            continue
        validator_class = jsonschema.validators.validator_for(case.json_schema)
        try:
            validator_class.check_schema(case.json_schema)
        except jsonschema.SchemaError as schema_error:
            raise ValueError(f"case {index}: json_schema is not a valid JSON Schema: {schema_error.message}") from None
        parsed = parse_json_output(prediction)
        if parsed is None:
            per_item.append(0.0)
            errors[index] = "output is not JSON"
            continue
        validator = validator_class(case.json_schema, format_checker=validator_class.FORMAT_CHECKER)
        worst = jsonschema.exceptions.best_match(validator.iter_errors(parsed[0]))
        per_item.append(0.0 if worst else 1.0)
        if worst:
            where = "/".join(str(p) for p in worst.absolute_path) or "(root)"
            errors[index] = f"{where}: {worst.message}"
    return MetricResult("schema_valid", mean_or_nan(per_item), per_item, {"errors": errors})


@metric("field_f1", tasks=("extract",))
def field_f1(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """Field-level F1 between the output's record and the gold record (``case.expected``).

    A field is right when its key path is in both records with equal normalised values. A wrong
    value counts as both a false positive and a false negative; an unparseable output scores 0.

    The value is the mean of the per-item F1 (each record weighs the same). ``details`` holds the
    micro-averaged ``precision``/``recall``/``f1`` over all fields of all records, the counts
    ``tp``/``fp``/``fn``, ``per_field`` precision/recall/F1/support (list positions grouped as
    ``items[].price``) and the ``unparseable`` count.
    """
    per_item: list[float | None] = []
    totals = Counter[str]()
    by_field: dict[str, Counter[str]] = {}
    unparseable = 0
    for index, (prediction, case) in enumerate(zip(predictions, cases, strict=True)):
        if case.expected is None:
            per_item.append(None)
            continue
        gold = flatten(_gold_record(case, index))
        parsed = parse_json_output(prediction)
        if parsed is None:
            unparseable += 1
        guess = flatten(parsed[0]) if parsed is not None else {}
        counts = Counter[str]()
        for path in gold.keys() | guess.keys():
            right = path in gold and path in guess and gold[path] == guess[path]
            outcome = Counter(
                tp=int(right),
                fp=int(not right and path in guess),
                fn=int(not right and path in gold),
            )
            counts.update(outcome)
            by_field.setdefault(_field_name(path), Counter()).update(outcome, support=int(path in gold))
        totals.update(counts)
        per_item.append(0.0 if parsed is None else _prf(counts["tp"], counts["fp"], counts["fn"])["f1"])

    per_field = {
        name: {**_prf(c["tp"], c["fp"], c["fn"]), "support": c["support"]} for name, c in sorted(by_field.items())
    }
    details = {
        "micro": _prf(totals["tp"], totals["fp"], totals["fn"]),
        "tp": totals["tp"],
        "fp": totals["fp"],
        "fn": totals["fn"],
        "per_field": per_field,
        "unparseable": unparseable,
    }
    return MetricResult("field_f1", mean_or_nan(per_item), per_item, details)


@metric("exact_record", tasks=("extract",))
def exact_record(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """1 when every field of the output's record equals the gold record after normalisation."""
    per_item: list[float | None] = []
    for index, (prediction, case) in enumerate(zip(predictions, cases, strict=True)):
        if case.expected is None:
            per_item.append(None)
            continue
        parsed = parse_json_output(prediction)
        same = parsed is not None and flatten(parsed[0]) == flatten(_gold_record(case, index))
        per_item.append(1.0 if same else 0.0)
    return MetricResult("exact_record", mean_or_nan(per_item), per_item, {})
