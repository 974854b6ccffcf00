"""Forms generated from the documented settings models: each field's description is its help text (the
same words as `--help` and docs/project-file.md), its type picks the input, and what comes back is
validated by the model itself, so an error names the field as `tailorlm validate` would."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from types import UnionType
from typing import Any

from pydantic import BaseModel, ValidationError

from tailorlm.config import format_validation_error


@dataclass
class FormField:
    name: str  # dotted for nested settings: lora.r
    label: str
    help: str
    input: str  # text | number | select | checkbox
    value: str
    choices: tuple[str, ...] = ()
    optional: bool = False


def _choices(annotation: Any) -> tuple[tuple[str, ...], bool, list[Any]]:
    """(literal choices, whether None is allowed, the other types) of an annotation."""
    parts = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, UnionType) else (annotation,)
    choices: list[str] = []
    others: list[Any] = []
    optional = False
    for part in parts:
        if part is type(None):
            optional = True
        elif typing.get_origin(part) is typing.Literal:
            choices.extend(map(str, typing.get_args(part)))
        else:
            others.append(part)
    return tuple(choices), optional, others


def form_fields(model: type[BaseModel], values: dict[str, Any] | None = None, prefix: str = "") -> list[FormField]:
    """One field per setting of `model` (nested models flattened as `lora.r`), filled from `values`."""
    values = values or {}
    fields: list[FormField] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        value = values.get(name, None if info.is_required() else info.get_default(call_default_factory=True))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested = value.model_dump() if isinstance(value, BaseModel) else value or {}
            fields.extend(form_fields(annotation, nested, f"{prefix}{name}."))
            continue
        choices, optional, others = _choices(annotation)
        if bool in others and choices:
            choices, others = (*choices, "true", "false"), [o for o in others if o is not bool]
        if others == [bool] and not choices:
            kind = "checkbox"
        elif choices and not others:
            kind = "select"
        elif others and all(o in (int, float) for o in others) and not choices:
            kind = "number"
        else:
            kind = "text"
        if isinstance(value, list):
            shown = ", ".join(map(str, value))
        elif isinstance(value, bool) and kind != "checkbox":
            shown = str(value).lower()
        else:
            shown = "" if value is None else str(value)
        fields.append(
            FormField(f"{prefix}{name}", f"{prefix}{name}", info.description or "", kind, shown, choices, optional)
        )
    return fields


def parse_form(model: type[BaseModel], form: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """(the settings as a dict, None) when `form` is valid for `model`, else (None, the errors by field)."""
    data: dict[str, Any] = {}
    for field in form_fields(model):
        raw = form.get(field.name)
        if field.input == "checkbox":
            value: Any = raw is not None
        elif raw is None or raw.strip() == "":
            if not field.optional:
                continue  # the model's default
            value = None
        else:
            value = _value(raw.strip())
            if isinstance(value, str) and "," in value and field.name.endswith("targets"):
                value = [part.strip() for part in value.split(",") if part.strip()]
        target = data
        *parents, leaf = field.name.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    try:
        return model.model_validate(data).model_dump(mode="json", exclude_none=True), None
    except ValidationError as error:
        return None, format_validation_error(error, "train")


def _value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw
