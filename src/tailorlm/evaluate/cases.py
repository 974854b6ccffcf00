"""The evaluation suite: the cases every candidate answers, from a dataset's test split and from a
hand-written file (`cases.yaml` or `cases.jsonl`).

A hand-written case, in YAML (a list, or a mapping with a `cases:` list) or one JSON object a line:

```yaml
- input: How do I reset my password?          # a string, or messages [{role, content}, ...]
  expected: Use the link on the sign-in page.  # reference answer, label, or JSON (a mapping is fine)
  must_contain: [sign-in page]
  must_not_contain: [call us]
  tags: [account]
  rubric: Polite, and points to the self-service link.
```

Every problem in the file is reported with the file and line (`cases.yaml:12: ...`) and nothing is
evaluated; an unknown key is an error, so a typo (`must_contian`) is never silently ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tailorlm.errors import UserError
from tailorlm.evaluate.metrics import Case
from tailorlm.formats.examples import Example, Message
from tailorlm.formats.preference import is_target


class EvalError(UserError, ValueError):
    """An evaluation that can't run or can't go on; the message says what to change."""


@dataclass
class EvalCase:
    """One item of the suite, as every candidate is asked it.

    Attributes:
        id: Stable identifier (the example's id, the file's `id`, or a hash of the case's content).
        messages: The conversation before the answer (system turn optional; it is added per candidate).
        expected: Reference answer, gold label or gold JSON text; None when there is none.
        label: Gold label (classification).
        origin: Where the case comes from: `test` (the dataset's test split) or `cases.yaml:12`.
        source: The document the case came from (test split), for failure grouping.
        text: The bare input (a table row's input cell) that classification heads and ladder baselines read.
    """

    id: str
    messages: list[dict[str, str]]
    expected: str | None = None
    label: str | None = None
    must_contain: list[str] = field(default_factory=list)
    must_not_contain: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None
    rubric: str | None = None
    tags: list[str] = field(default_factory=list)
    origin: str = "test"
    source: str = ""
    text: str | None = None

    @property
    def input_text(self) -> str:
        """The last user turn: the question, the text to classify or to extract from."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""

    @property
    def classify_text(self) -> str:
        """The bare text to classify (the table builder's input cell), else the last user turn."""
        return self.text or self.input_text

    def metric_case(self, context: str | None = None) -> Case:
        """The reference side the metrics score against; ``context`` is what the candidate was shown."""
        return Case(
            expected=self.expected,
            label=self.label,
            must_contain=list(self.must_contain),
            must_not_contain=list(self.must_not_contain),
            json_schema=self.json_schema,
            tags=list(self.tags),
            context=context,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages,
            "expected": self.expected,
            "label": self.label,
            "must_contain": self.must_contain,
            "must_not_contain": self.must_not_contain,
            "json_schema": self.json_schema,
            "rubric": self.rubric,
            "tags": self.tags,
            "origin": self.origin,
            "source": self.source,
        }


def cases_from_examples(examples: Sequence[Example]) -> list[EvalCase]:
    """Test-split examples as cases: the prompt is everything before the final answer (an answer a reviewer
    marked undesirable is no reference, so its example is not a case)."""
    cases = []
    for example in examples:
        if not is_target(example):
            continue
        if not example.is_chat:
            raise EvalError(
                f"test example {example.id} is plain text (continued pretraining): evaluate compares "
                "answers to prompts; use a dataset of chat examples"
            )
        cases.append(
            EvalCase(
                id=example.id,
                messages=example.prompt,
                expected=example.target,
                label=example.label,
                tags=[str(t) for t in example.meta.get("tags", [])],
                origin="test",
                source=example.source,
                text=example.meta.get("input"),
            )
        )
    return cases


# --- hand-written cases --------------------------------------------------------------------------


class CaseSpec(BaseModel):
    """The schema of one hand-written case (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="Stable name of the case (default: a hash of its content).")
    input: str | list[Message] = Field(description="The question: a string, or messages ending with the user's.")
    expected: str | dict[str, Any] | list[Any] | None = Field(
        None, description="Reference answer, gold label, or the gold JSON (a mapping is written as JSON)."
    )
    label: str | None = Field(None, description="Gold label (classification).")
    must_contain: list[str] = Field(default_factory=list, description="Strings the answer must contain.")
    must_not_contain: list[str] = Field(default_factory=list, description="Strings the answer must not contain.")
    json_schema: dict[str, Any] | None = Field(None, description="JSON Schema the answer must satisfy.")
    rubric: str | None = Field(None, description="What a good answer does (for the judge).")
    tags: list[str] = Field(default_factory=list, description="Tags for slicing results.")

    @field_validator("input")
    @classmethod
    def _input(cls, value: str | list[Message]) -> str | list[Message]:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("is empty")
        elif not value:
            raise ValueError("has no messages")
        elif value[-1].role != "user":
            raise ValueError("the last message must be the user's (the answer is what is evaluated)")
        return value

    @field_validator("must_contain", "must_not_contain", "tags", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def to_case(self, origin: str) -> EvalCase:
        messages = (
            [{"role": "user", "content": self.input}]
            if isinstance(self.input, str)
            else [m.model_dump() for m in self.input]
        )
        expected = self.expected
        if expected is not None and not isinstance(expected, str):
            expected = json.dumps(expected, ensure_ascii=False, sort_keys=True)
        if self.json_schema is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(self.json_schema).check_schema(self.json_schema)
            except jsonschema.SchemaError as error:
                raise ValueError(f"json_schema is not a valid JSON Schema: {error.message}") from None
        content = json.dumps([messages, expected, self.label], sort_keys=True, ensure_ascii=False)
        case_id = self.id or "case-" + hashlib.sha256(content.encode()).hexdigest()[:12]
        return EvalCase(
            id=case_id,
            messages=messages,
            expected=expected,
            label=self.label,
            must_contain=self.must_contain,
            must_not_contain=self.must_not_contain,
            json_schema=self.json_schema,
            rubric=self.rubric,
            tags=self.tags,
            origin=origin,
            source=origin,
        )


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(case)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _records_jsonl(path: Path, text: str) -> tuple[list[tuple[int, Any]], list[str]]:
    records, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            errors.append(f"{path.name}:{number}: not valid JSON: {error.msg} (column {error.colno})")
    return records, errors


def _records_yaml(path: Path, text: str) -> tuple[list[tuple[int, Any]], list[str]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        return [], [f"{path.name}{line}: not valid YAML: {problem}"]
    if root is None:
        return [], []
    if isinstance(data, dict) and set(data) == {"cases"}:
        root = next(value for key, value in root.value if key.value == "cases")
        data = data["cases"]
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        return [], [f"{path.name}:{root.start_mark.line + 1}: expected a list of cases (or `cases:` with a list)"]
    return [(node.start_mark.line + 1, item) for node, item in zip(root.value, data, strict=True)], []


def load_cases_file(path: Path) -> list[EvalCase]:
    """Read hand-written cases; every problem is reported with file and line, all at once.

    Raises:
        EvalError: The file is missing or has a malformed or invalid case.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"cases file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        records, errors = _records_jsonl(path, text)
    elif path.suffix.lower() in {".yaml", ".yml"}:
        records, errors = _records_yaml(path, text)
    else:
        raise EvalError(f"{path}: cases must be a .yaml/.yml or .jsonl file")
    cases: list[EvalCase] = []
    for line, record in records:
        where = f"{path.name}:{line}"
        if not isinstance(record, dict):
            errors.append(f"{where}: a case must be a mapping with at least `input` (got {type(record).__name__})")
            continue
        try:
            cases.append(CaseSpec.model_validate(record).to_case(origin=where))
        except ValidationError as error:
            errors.append(f"{where}: {_describe(error)}")
        except ValueError as error:
            errors.append(f"{where}: {error}")
    seen: dict[str, str] = {}
    for case in cases:
        if case.id in seen:
            errors.append(f"{case.origin}: case id {case.id!r} is used twice (first at {seen[case.id]})")
        seen.setdefault(case.id, case.origin)
    if errors:
        raise EvalError(f"{path}: {len(errors)} invalid case(s):\n  " + "\n  ".join(errors))
    if not cases:
        raise EvalError(f"{path}: no cases found")
    return cases
