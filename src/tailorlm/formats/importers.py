"""Import JSONL datasets in the formats people already have: OpenAI messages, alpaca, sharegpt,
prompt/completion and plain text. Every bad line is reported with its file and line number."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tailorlm.errors import UserError
from tailorlm.formats.examples import Example, Message


class DatasetError(UserError, ValueError):
    """A dataset file with invalid lines; the message lists them as `file:line: reason`."""


SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
    "bot": "assistant",
}


def _from_messages(record: dict[str, Any]) -> Example:
    return Example(messages=record["messages"], **_extras(record, "messages"))


def _from_sharegpt(record: dict[str, Any]) -> Example:
    messages = []
    for turn_number, turn in enumerate(record["conversations"], start=1):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise ValueError(f"conversations[{turn_number}] needs `from` and `value`")
        role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
        if role is None:
            raise ValueError(f"conversations[{turn_number}].from: unknown speaker {turn['from']!r}")
        messages.append(Message(role=role, content=str(turn["value"])))
    if record.get("system"):
        messages.insert(0, Message(role="system", content=str(record["system"])))
    return Example(messages=messages, **_extras(record, "conversations", "system"))


def _from_alpaca(record: dict[str, Any]) -> Example:
    instruction = str(record["instruction"])
    extra_input = str(record.get("input") or "")
    user = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    return Example.chat(
        system=record.get("system"),
        user=user,
        assistant=str(record["output"]),
        **_extras(record, "instruction", "input", "output", "system"),
    )


def _from_prompt_completion(record: dict[str, Any]) -> Example:
    prompt, completion = record["prompt"], record["completion"]
    extras = _extras(record, "prompt", "completion")
    if isinstance(prompt, list):  # conversational prompt/completion
        completion_messages = (
            completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        )
        return Example(messages=[*prompt, *completion_messages], **extras)
    return Example.chat(user=str(prompt), assistant=str(completion), **extras)


def _from_text(record: dict[str, Any]) -> Example:
    return Example(text=record["text"], **_extras(record, "text"))


def _extras(record: dict[str, Any], *used: str) -> dict[str, Any]:
    """Keep our own keys (id, label, source, meta) and put any other unknown key under meta."""
    kept: dict[str, Any] = {}
    meta = dict(record.get("meta") or {})
    for key, value in record.items():
        if key in used or key == "meta":
            continue
        if key in {"id", "label", "source"}:
            kept[key] = str(value) if value is not None else None
        else:
            meta[key] = value
    if kept.get("label") is None:
        kept.pop("label", None)
    return {**kept, "meta": meta}


# The first format whose keys are all present wins.
FORMATS: list[tuple[str, tuple[str, ...], Callable[[dict[str, Any]], Example]]] = [
    ("messages", ("messages",), _from_messages),
    ("sharegpt", ("conversations",), _from_sharegpt),
    ("alpaca", ("instruction", "output"), _from_alpaca),
    ("prompt_completion", ("prompt", "completion"), _from_prompt_completion),
    ("text", ("text",), _from_text),
]


def parse_record(record: Any) -> tuple[str, Example]:
    """Detect the format of one JSON record and convert it; raises ValueError with the reason."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    for name, keys, convert in FORMATS:
        if all(key in record for key in keys):
            try:
                return name, convert(record)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"{name} format: {where + ': ' if where else ''}{first['msg']}") from None
            except (KeyError, TypeError) as error:
                raise ValueError(f"{name} format: {error}") from None
    raise ValueError(
        "unrecognised record: expected `messages`, `conversations`, `instruction`+`output`, "
        f"`prompt`+`completion` or `text` (got keys {sorted(record)[:8]})"
    )


@dataclass
class ImportResult:
    examples: list[Example]
    formats: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # "file:line: reason"

    @property
    def skipped(self) -> int:
        return len(self.errors)


def read_examples(path: Path, *, skip_invalid: bool = False) -> ImportResult:
    """Read a JSONL dataset file in any supported format.

    Raises:
        DatasetError: when a line is invalid (all invalid lines listed) and `skip_invalid` is false,
            or when no valid example is left.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    result = ImportResult(examples=[])
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError as error:
            raise DatasetError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            name, example = parse_record(record)
        except json.JSONDecodeError as error:
            result.errors.append(f"{path}:{number}: invalid JSON ({error.msg} at column {error.colno})")
            continue
        except ValueError as error:
            result.errors.append(f"{path}:{number}: {error}")
            continue
        result.formats[name] = result.formats.get(name, 0) + 1
        result.examples.append(example)
    if result.errors and not skip_invalid:
        shown = "\n  ".join(result.errors[:20])
        more = f"\n  ... and {len(result.errors) - 20} more" if len(result.errors) > 20 else ""
        raise DatasetError(f"{len(result.errors)} invalid line(s); fix them or pass --skip-invalid:\n  {shown}{more}")
    if not result.examples:
        raise DatasetError(f"{path}: no examples found (the file is empty or every line is invalid)")
    return result
