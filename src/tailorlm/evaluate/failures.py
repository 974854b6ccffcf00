"""Failure analysis: why items failed, grouped so the next iteration knows which data to add.

Each answer gets error types (`diagnose`): `empty`, `too_long` (ran out of tokens, or far longer
than the reference), `wrong_label` / `unparseable_label` (classify), `invalid_json` /
`missing_field` / `wrong_value` / `schema_invalid` (extract), `hallucinated_number` (a number in the
answer that is neither in the prompt — including retrieved context — nor in the reference),
`invented_fact` (the answer's `invented_facts` score is above 0),
`missing_required` / `forbidden_content` (the case's rule checks) and `low_overlap` (a chat answer
that failed for no more specific reason). Failures are then grouped by error type, gold label,
source document and tag, with a suggestion of what to add.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tailorlm.evaluate.cases import EvalCase
from tailorlm.evaluate.metrics.extraction import flatten, parse_json_output
from tailorlm.evaluate.metrics.facts import canonical_number

_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
SHOWN = 8  # case ids kept per group


def numbers(text: str) -> set[str]:
    """Numbers in a text in canonical form ("1,200.50" → "1200.5", "09" → "9"); integers below 10
    are left out (list markers and the like)."""
    found = set()
    for raw in _NUMBER.findall(text):
        canonical = canonical_number(raw)
        if canonical is None:
            continue
        value = Decimal(canonical)
        if value == value.to_integral_value() and value < 10:
            continue
        found.add(canonical)
    return found


def _field(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def diagnose(
    task: str,
    case: EvalCase,
    output: str,
    *,
    finished: bool,
    prompt_text: str,
    scores: dict[str, float | None],
    predicted_label: str | None = None,
) -> list[str]:
    """Error types of one answer (empty when nothing is wrong that can be named)."""
    errors: list[str] = []
    text = output.strip()
    if not text:
        return ["empty"]
    if not finished or (case.expected and len(text) > 3 * len(case.expected) + 50):
        errors.append("too_long")
    if task == "classify":
        gold = case.label if case.label is not None else case.expected
        if gold is not None and scores.get("accuracy") == 0.0:
            errors.append("unparseable_label" if predicted_label is None else "wrong_label")
    elif task == "extract":
        parsed = parse_json_output(text)
        if parsed is None:
            errors.append("invalid_json")
        elif case.expected:
            gold_json = parse_json_output(case.expected)
            gold_fields = flatten(gold_json[0]) if gold_json else {}
            guess = flatten(parsed[0])
            if any(path not in guess for path in gold_fields):
                errors.append("missing_field")
            if any(path in guess and guess[path] != value for path, value in gold_fields.items()):
                errors.append("wrong_value")
        if scores.get("schema_valid") == 0.0 and parsed is not None:
            errors.append("schema_invalid")
    if task != "classify" and numbers(text) - numbers(prompt_text) - numbers(case.expected or ""):
        errors.append("hallucinated_number")
    if (value := scores.get("invented_facts")) is not None and value > 0:
        errors.append("invented_fact")
    if (value := scores.get("must_contain")) is not None and value < 1:
        errors.append("missing_required")
    if scores.get("must_not_contain") == 0.0:
        errors.append("forbidden_content")
    return errors


def field_errors(case: EvalCase, output: str) -> tuple[list[str], list[str]]:
    """(missing, wrong) field names of an extraction answer against the gold record."""
    parsed, gold_json = parse_json_output(output), parse_json_output(case.expected or "")
    if parsed is None or gold_json is None:
        return [], []
    gold, guess = flatten(gold_json[0]), flatten(parsed[0])
    missing = [_field(p) for p in gold if p not in guess]
    wrong = [_field(p) for p, v in gold.items() if p in guess and guess[p] != v]
    return missing, wrong


def _groups(keys_per_item: Sequence[Sequence[str]], ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    members: dict[str, list[str]] = defaultdict(list)
    for keys, case_id in zip(keys_per_item, ids, strict=True):
        for key in dict.fromkeys(keys):
            members[key].append(case_id)
    ranked = sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))
    return {key: {"count": len(found), "cases": found[:SHOWN]} for key, found in ranked}


def analyse(
    task: str,
    cases: Sequence[EvalCase],
    outputs: Sequence[str],
    errors: Sequence[list[str]],
    passed: Sequence[bool | None],
    predicted_labels: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Failure clusters of one candidate and suggestions of data to add.

    An item fails when its verdict is a fail, or when it has no verdict (no reference, no checks)
    but an error was found (an empty answer, say).
    """
    failed = [i for i, (p, e) in enumerate(zip(passed, errors, strict=True)) if p is False or (p is None and e)]
    ids = [cases[i].id for i in failed]
    by_error = _groups([errors[i] or ["low_overlap" if task in ("chat", "generate") else "other"] for i in failed], ids)
    gold = [
        cases[i].label if cases[i].label is not None else (cases[i].expected if task == "classify" else None)
        for i in failed
    ]
    by_label = _groups([[g] if g is not None else [] for g in gold], ids)
    by_source = _groups([[cases[i].source] if cases[i].source else [] for i in failed], ids)
    by_tag = _groups([cases[i].tags for i in failed], ids)
    confusions: Counter[tuple[str, str]] = Counter()
    if task == "classify" and predicted_labels is not None:
        for i, label in zip(failed, gold, strict=True):
            if label is not None and predicted_labels[i] is not None:
                confusions[(label, str(predicted_labels[i]))] += 1
    missing: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    if task == "extract":
        for i in failed:
            absent, differing = field_errors(cases[i], outputs[i])
            missing.update(dict.fromkeys(absent, 1))
            wrong.update(dict.fromkeys(differing, 1))
    totals_by_label = (
        Counter(c.label if c.label is not None else c.expected for c in cases) if task == "classify" else Counter()
    )
    result = {
        "failed": len(failed),
        "total": len(cases),
        "by_error": by_error,
        "by_label": by_label,
        "by_source": by_source,
        "by_tag": by_tag,
        "confusions": [{"gold": g, "predicted": p, "count": n} for (g, p), n in confusions.most_common(10)],
        "fields": {"missing": dict(missing.most_common()), "wrong": dict(wrong.most_common())},
    }
    result["suggestions"] = suggestions(result, totals_by_label)
    return result


def suggestions(analysis: dict[str, Any], totals_by_label: Counter[Any]) -> list[str]:
    """Plain-language advice on which data to add, most frequent problem first."""
    advice: list[str] = []
    errors = analysis["by_error"]
    count = {name: group["count"] for name, group in errors.items()}
    for confusion in analysis["confusions"][:3]:
        total = totals_by_label.get(confusion["gold"], 0)
        advice.append(
            f"{confusion['count']} of {total} '{confusion['gold']}' cases were answered '{confusion['predicted']}': "
            f"add '{confusion['gold']}' examples that are easily mistaken for '{confusion['predicted']}'."
        )
    messages = {
        "unparseable_label": "answers named no single label: add examples whose answer is exactly the label, "
        "and list the labels in the system prompt.",
        "invalid_json": "answers were not JSON: add examples whose answer is only the JSON record, and say so "
        "in the instruction.",
        "hallucinated_number": "answers contain numbers found neither in the question nor in the reference: add "
        "examples that quote figures from their source, or compare with finetuned+rag.",
        "invented_fact": "answers state facts (numbers with units, codes, phone numbers, addresses) found neither "
        "in their prompt nor in the reference (metric invented_facts): train with retrieved passages in the "
        "prompt (RAFT-style), or compare with finetuned+rag.",
        "too_long": "answers ran out of tokens or ran far past the reference: shorten long training answers, "
        "check they end with the end-of-turn token, or raise evaluate.max_new_tokens.",
        "empty": "answers were empty: check the chat template and that training answers end with the end-of-turn "
        "token.",
        "missing_required": "answers missed required content (must_contain): add examples that state it.",
        "forbidden_content": "answers said what they must not (must_not_contain): add examples that avoid it.",
        "schema_invalid": "records did not fit the case's JSON schema: add examples with every required field "
        "in the right type.",
        "low_overlap": "answers differ from the reference: add examples on these questions (see the per-item "
        "table for which).",
    }
    for name, text in messages.items():
        if count.get(name):
            advice.append(f"{count[name]} {text}")
    for kind in ("missing", "wrong"):
        fields = analysis["fields"][kind]
        if fields:
            top = ", ".join(f"{f} ({n})" for f, n in list(fields.items())[:3])
            verb = "was missing" if kind == "missing" else "had a wrong value"
            advice.append(
                f"fields that {verb} most often: {top}: add examples where these are present and hard to find."
            )
    for group, noun in (("by_source", "source"), ("by_tag", "tag")):
        largest = next(iter(analysis[group].items()), None)
        if largest and largest[1]["count"] >= max(2, analysis["failed"] // 3):
            advice.append(
                f"{largest[1]['count']} of {analysis['failed']} failures share the {noun} '{largest[0]}': add "
                f"more examples like it."
            )
    return advice
