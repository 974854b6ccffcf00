"""Feedback files in and out: OpenAI preference JSONL, TRL preference and KTO, and TailorLM's own records.

Formats, recognised per line by their keys:

* `openai`: `{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", ...}],
  "non_preferred_output": [...]}` (OpenAI preference fine-tuning) → two records sharing a `pair` id;
* `trl`: `{"prompt": ..., "chosen": ..., "rejected": ...}`, text or conversational, or the implicit-prompt
  form where `chosen` and `rejected` are whole conversations → two records sharing a `pair` id;
* `kto`: `{"prompt": ..., "completion": ..., "label": true|false}` → one record rated up or down;
* `records`: TailorLM's own (`messages`, `answer`, `rating`, `corrected`, ...), as `feedback export` writes.

`read_feedback` reads every line and names each bad one as `file:line: why`; a file with any bad line
is refused whole (nothing half-imported). `write_feedback` exports records in any of the formats.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationError

from tailorlm.errors import UserError
from tailorlm.feedback.derive import derive
from tailorlm.feedback.records import FeedbackRecord
from tailorlm.workspace import atomic_write_text

ExportFormat = Literal["records", "openai", "trl", "kto"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
SHOWN_ERRORS = 20


class FeedbackFileError(UserError, ValueError):
    """A feedback file with bad lines; the message names each as file:line."""


def read_feedback(path: Path, *, reviewer: str | None = None, source: str = "file") -> list[FeedbackRecord]:
    """Every record in a JSONL feedback file, or `FeedbackFileError` naming every bad line."""
    path = Path(path)
    if not path.is_file():
        raise FeedbackFileError(f"{path}: file not found")
    records: list[FeedbackRecord] = []
    errors: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError(f"expected a JSON object, got {type(data).__name__}")
                records.extend(_records(data, reviewer=reviewer, source=source))
            except json.JSONDecodeError as error:
                errors.append(f"{path}:{number}: not valid JSON ({error.msg})")
            except ValidationError as error:
                errors.append(f"{path}:{number}: {_describe(error)}")
            except (ValueError, TypeError, KeyError) as error:
                errors.append(f"{path}:{number}: {error}")
    if errors:
        shown = "\n".join(f"  {e}" for e in errors[:SHOWN_ERRORS])
        more = f"\n  ... and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        raise FeedbackFileError(f"{path}: {len(errors)} bad line(s); nothing was imported:\n{shown}{more}")
    if not records:
        raise FeedbackFileError(f"{path}: no feedback in this file")
    return records


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'record'}: {item['msg']}"
        for item in error.errors(include_url=False)
    )


def _records(data: dict[str, Any], *, reviewer: str | None, source: str) -> list[FeedbackRecord]:
    keys = set(data)
    common: dict[str, Any] = {"source": source}
    if reviewer:
        common["reviewer"] = reviewer
    if {"messages", "answer"} <= keys:
        return [FeedbackRecord.model_validate({**common, **data})]
    if {"preferred_output", "non_preferred_output"} <= keys:
        messages = _messages(
            _field(data, "input").get("messages") if isinstance(data["input"], dict) else None, "input.messages"
        )
        chosen = _answer(data["preferred_output"], "preferred_output")
        rejected = _answer(data["non_preferred_output"], "non_preferred_output")
        return _pair(messages, chosen, rejected, common)
    if {"chosen", "rejected"} <= keys:
        if "prompt" in keys:
            messages = _messages(data["prompt"], "prompt")
            return _pair(messages, _answer(data["chosen"], "chosen"), _answer(data["rejected"], "rejected"), common)
        chosen_turns = _messages(data["chosen"], "chosen", last="assistant")
        rejected_turns = _messages(data["rejected"], "rejected", last="assistant")
        if chosen_turns[:-1] != rejected_turns[:-1]:
            raise ValueError("chosen and rejected must share the conversation before their last answer")
        return _pair(chosen_turns[:-1], chosen_turns[-1]["content"], rejected_turns[-1]["content"], common)
    if {"prompt", "completion", "label"} <= keys:
        if not isinstance(data["label"], bool):
            raise ValueError(f"label must be true or false (got {data['label']!r})")
        return [
            FeedbackRecord.model_validate(
                {
                    **common,
                    "messages": _messages(data["prompt"], "prompt"),
                    "answer": _answer(data["completion"], "completion"),
                    "rating": "up" if data["label"] else "down",
                }
            )
        ]
    raise ValueError(
        f"unknown format (keys: {', '.join(sorted(keys)) or 'none'}); expected OpenAI preference "
        "(input, preferred_output, non_preferred_output), TRL preference (prompt, chosen, rejected), "
        "TRL KTO (prompt, completion, label) or TailorLM records (messages, answer, rating)"
    )


def _field(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None:
        raise ValueError(f"{name} is missing")
    return value


def _messages(value: Any, name: str, *, last: str = "user") -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{name} is empty")
        return [{"role": "user", "content": value}] if last == "user" else [{"role": "assistant", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be a text or a non-empty list of messages")
    turns = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) or "role" not in message:
            raise ValueError(f"{name}[{index}] must be a message with a role and a text content")
        turns.append({"role": str(message["role"]), "content": message["content"]})
    if turns[-1]["role"] != last:
        raise ValueError(f"{name} must end with a {last} message (got {turns[-1]['role']!r})")
    return turns


def _answer(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    turns = _messages(value, name, last="assistant")
    return turns[-1]["content"]


def _pair(messages: list[dict[str, str]], chosen: str, rejected: str, common: dict[str, Any]) -> list[FeedbackRecord]:
    pair = "pair-" + hashlib.sha256(json.dumps([messages, chosen, rejected]).encode()).hexdigest()[:12]
    return [
        FeedbackRecord.model_validate(
            {**common, "messages": messages, "answer": answer, "rating": rating, "pair": pair}
        )
        for answer, rating in ((chosen, "up"), (rejected, "down"))
    ]


def export_rows(records: Iterable[FeedbackRecord], format: ExportFormat) -> list[dict[str, Any]]:
    """Records as rows of `format`: records as they are; openai/trl the preference pairs; kto every
    desirable or undesirable answer (pairs unpaired, corrections desirable)."""
    records = list(records)
    if format == "records":
        return [item.model_dump(mode="json", exclude_defaults=True) | {"id": item.id} for item in records]
    derived = derive(records)
    if format == "openai":
        return [
            {
                "input": {"messages": pair.prompt},
                "preferred_output": [{"role": "assistant", "content": pair.chosen}],
                "non_preferred_output": [{"role": "assistant", "content": pair.rejected}],
            }
            for pair in derived.pairs
        ]
    if format == "trl":
        return [
            {
                "prompt": pair.prompt,
                "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}],
            }
            for pair in derived.pairs
        ]
    rows = []
    for pair in derived.pairs:
        for completion, label in ((pair.chosen, True), (pair.rejected, False)):
            rows.append(
                {"prompt": pair.prompt, "completion": [{"role": "assistant", "content": completion}], "label": label}
            )
    for single in derived.singles:
        rows.append(
            {
                "prompt": single.prompt,
                "completion": [{"role": "assistant", "content": single.completion}],
                "label": single.desirable,
            }
        )
    return rows


def write_feedback(path: Path, records: Iterable[FeedbackRecord], format: ExportFormat = "records") -> int:
    """Write records as JSONL in `format` (atomically); returns the number of lines."""
    rows = export_rows(records, format)
    atomic_write_text(Path(path), "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)
