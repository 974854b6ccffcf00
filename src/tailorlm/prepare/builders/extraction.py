"""The `extraction` builder: a document's text + its gold fields → a chat example that answers with JSON.

The user turn is the instruction — with the JSON schema of the fields, computed from the data — then
the text; the assistant turn is the gold JSON (keys sorted, every field of the schema present, null
where a record lacks it, so the model always answers in one shape). `meta.fields` lists the fields.

Where the pieces come from, per record (a JSONL line or a table row, as `fields`):

* the text: the column `source.input`, else the document's text;
* the gold: with `source.fields` = [one column holding an object] (e.g. `entities` in
  `{"ocr_text": ..., "entities": {"company": ..., "total": ...}}`), that object; with several columns,
  those columns; without `source.fields`, the one column whose value is an object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tailorlm.config import Project, Source
from tailorlm.documents import Document
from tailorlm.formats.examples import Example
from tailorlm.prepare.builders import (
    BuilderError,
    BuilderOutput,
    Reads,
    Skipped,
    all_but_label,
    builder,
    file_label,
    require_columns,
    source_ref,
)

DEFAULT_INSTRUCTION = "Extract the fields below from the text. Answer with JSON only, matching this schema:\n{schema}"
JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (dict, "object"),
    (list, "array"),
)


def _reads(source: Source) -> Reads:
    """With `fields:`, those columns and the input (the text when there is no input column); without,
    every field could hold the gold object."""
    if not source.fields:
        return all_but_label(source)
    return Reads.columns([source.input, *source.fields], text=not source.input)


@builder("extraction", tasks=("chat", "generate", "extract"), reads=_reads)
def extraction(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    """Records of text and gold fields → text → JSON examples (one schema for the source)."""
    if source.input:
        require_columns(documents, {"input": source.input}, project)
    records: list[tuple[Document, str, dict[str, Any]]] = []
    for document in documents:
        text = str(document.fields.get(source.input) or "") if source.input else document.text
        gold = gold_fields(document, source, project)
        if not text.strip():
            yield Skipped("empty text", source_ref(document, project))
        elif not gold:
            yield Skipped("no gold fields", source_ref(document, project))
        else:
            records.append((document, text.strip(), gold))
    yield from json_examples(records, source, project)


def gold_fields(document: Document, source: Source, project: Project) -> dict[str, Any]:
    """The gold object of one record (see the module docstring); `BuilderError` when it can't be found."""
    fields = document.fields
    if source.fields:
        require_columns([document], {f"fields[{i}]": name for i, name in enumerate(source.fields)}, project)
        if len(source.fields) == 1:
            nested = _as_object(fields[source.fields[0]])
            if nested is not None:
                return nested
        return {name: _empty_to_none(fields[name]) for name in source.fields}
    objects = {name: value for name, value in fields.items() if _as_object(value) is not None}
    if len(objects) == 1:
        return _as_object(next(iter(objects.values()))) or {}
    has = ", ".join(repr(c) for c in fields) or "none"
    raise BuilderError(
        f"{file_label(document, project)}: say which columns are the gold answer with source.fields "
        f"(e.g. fields: [entities] for a column holding an object, or a list of columns). The file has: {has}"
    )


def json_examples(
    records: Sequence[tuple[Document, str, dict[str, Any]]], source: Source, project: Project
) -> BuilderOutput:
    """Chat examples text → JSON for records of (document, text, gold), sharing one schema."""
    if not records:
        return
    schema = json_schema([gold for _, _, gold in records])
    names = sorted(schema["properties"])
    instruction = (
        (source.instruction or DEFAULT_INSTRUCTION)
        .replace("{schema}", json.dumps(schema, sort_keys=True, ensure_ascii=False))
        .replace("{fields}", ", ".join(names))
    )
    for document, text, gold in records:
        answer = json.dumps({name: gold.get(name) for name in names}, sort_keys=True, ensure_ascii=False)
        yield Example.chat(
            system=project.system_prompt,
            user=f"{instruction}\n\n{text}",
            assistant=answer,
            source=source_ref(document, project),
            meta={"file": file_label(document, project), "fields": names},
        )


def json_schema(golds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema (object of the union of keys, each with the types seen) describing the gold objects."""
    types: dict[str, set[str]] = {}
    for gold in golds:
        for key, value in gold.items():
            types.setdefault(key, set()).add(_json_type(value))
    properties = {}
    for key, seen in sorted(types.items()):
        seen.discard("null")
        kinds = (sorted(seen) or ["string"]) + (["null"] if _nullable(key, golds) else [])
        properties[key] = {"type": kinds if len(kinds) > 1 else kinds[0]}
    return {"type": "object", "properties": properties, "required": sorted(properties)}


def _nullable(key: str, golds: Sequence[dict[str, Any]]) -> bool:
    return any(gold.get(key) is None for gold in golds)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return "string"


def _as_object(value: Any) -> dict[str, Any] | None:
    """A dict, or a string holding a JSON object; None otherwise."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _empty_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value
