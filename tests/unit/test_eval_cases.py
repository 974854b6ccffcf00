"""Hand-written evaluation cases: YAML and JSONL read into cases; every bad case named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorlm.evaluate.cases import EvalError, cases_from_examples, load_cases_file
from tailorlm.formats.examples import Example

GOOD_YAML = """\
- input: How do I reset my password?
  expected: Use the link on the sign-in page.
  must_contain: sign-in
  tags: [account]
- id: invoice
  input:
    - {role: system, content: Extract fields.}
    - {role: user, content: "ACME, total RM 9.00"}
  expected: {company: ACME, total: "9.00"}
  json_schema: {type: object, required: [company]}
  rubric: All fields right.
"""


def test_yaml_cases_are_read(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(GOOD_YAML, encoding="utf-8")
    first, second = load_cases_file(path)
    assert first.messages == [{"role": "user", "content": "How do I reset my password?"}]
    assert first.must_contain == ["sign-in"] and first.tags == ["account"]
    assert first.origin == "cases.yaml:1" and first.id.startswith("case-")
    assert second.id == "invoice" and second.origin == "cases.yaml:5"
    assert json.loads(second.expected) == {"company": "ACME", "total": "9.00"}
    assert second.metric_case().json_schema == {"type": "object", "required": ["company"]}
    assert second.input_text == "ACME, total RM 9.00"


def test_case_ids_are_stable(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(GOOD_YAML, encoding="utf-8")
    assert [c.id for c in load_cases_file(path)] == [c.id for c in load_cases_file(path)]


def test_a_malformed_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"input": "fine", "expected": "yes"}\n{"input": "broken", \n\n{"inptu": "typo"}\n', encoding="utf-8"
    )
    with pytest.raises(EvalError) as error:
        load_cases_file(path)
    message = str(error.value)
    assert "cases.jsonl:2: not valid JSON" in message
    assert "cases.jsonl:4:" in message and "inptu" in message  # unknown key, reported too
    assert "2 invalid case(s)" in message


def test_invalid_yaml_cases_are_named_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(
        "- input: ok\n"
        "- input: [{role: user, content: hi}, {role: assistant, content: hello}]\n"
        "- input: ok\n  must_contain: {a: 1}\n"
        "- just a string\n",
        encoding="utf-8",
    )
    with pytest.raises(EvalError) as error:
        load_cases_file(path)
    message = str(error.value)
    assert "cases.yaml:2: input: Value error, the last message must be the user's" in message
    assert "cases.yaml:3: must_contain" in message
    assert "cases.yaml:5: a case must be a mapping" in message


def test_broken_yaml_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("- input: a\n  expected: [unclosed\n", encoding="utf-8")
    with pytest.raises(EvalError, match=r"cases.yaml:\d+: not valid YAML"):
        load_cases_file(path)
    path.write_text("- input: a\n  json_schema: {type: 12}\n", encoding="utf-8")
    with pytest.raises(EvalError, match=r"cases.yaml:1: json_schema is not a valid JSON Schema"):
        load_cases_file(path)


def test_duplicate_ids_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n  - {id: a, input: x}\n  - {id: a, input: y}\n", encoding="utf-8")
    with pytest.raises(EvalError, match=r"cases.yaml:3: case id 'a' is used twice \(first at cases.yaml:2\)"):
        load_cases_file(path)
    with pytest.raises(EvalError, match="not found"):
        load_cases_file(tmp_path / "missing.yaml")
    (tmp_path / "cases.txt").write_text("x", encoding="utf-8")
    with pytest.raises(EvalError, match=r"\.yaml/\.yml or \.jsonl"):
        load_cases_file(tmp_path / "cases.txt")


def test_test_examples_become_cases() -> None:
    example = Example.chat(system="S", user="Q?", assistant="A.", source="faq.csv#row 3", label=None)
    (case,) = cases_from_examples([example])
    assert case.messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}]
    assert case.expected == "A." and case.source == "faq.csv#row 3" and case.id == example.id
    with pytest.raises(EvalError, match="plain text"):
        cases_from_examples([Example(text="continued pretraining text")])
