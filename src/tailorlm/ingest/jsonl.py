"""Reads JSON Lines (.jsonl) into one Document per line holding a JSON object.

`fields` is the object as parsed; `locator` is "line N" (the file's line, from 1; blank lines are
passed over). The text is the `text_field` option's value when given (a line without it is
skipped), else "key: value" lines with nested values as JSON. A line that is not valid JSON, or
not an object, is skipped and reported with its number ("partial"); the other lines are kept. A
pretty-printed JSON array is recognised and refused with a hint. It can't: read plain .json
documents, or JSON whose lines hold arrays or scalars.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, decode_text, fields_text


@reader(".jsonl", ".ndjson")
def read_jsonl(path: Path, *, text_field: str | None = None) -> Iterator[Document]:
    source = SourceFile.of(path, "jsonl")
    text, encoding = decode_text(path.read_bytes())
    if text.lstrip().startswith("[") and "\n" in text.strip():
        try:
            json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            raise ReadError("a JSON array, not JSON Lines: write one object per line")
    kept = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            source.skip(f"line {number}, column {error.colno}: malformed JSON ({error.msg}) — line skipped")
            continue
        if not isinstance(record, dict):
            source.skip(f"line {number}: expected a JSON object, got {type(record).__name__} — line skipped")
            continue
        if text_field is None:
            body = fields_text(record)
        elif isinstance(record.get(text_field), str) and record[text_field].strip():
            body = record[text_field]
        else:
            source.skip(f"line {number}: no text in field {text_field!r} — line skipped")
            continue
        if not body.strip():
            source.skip(f"line {number}: the object has no non-empty values — line skipped")
            continue
        kept += 1
        yield source.document(body, locator=f"line {number}", fields=record, meta={"encoding": encoding})
    if kept == 0:
        raise ReadError("no records: no line holds a readable JSON object (see the warnings)")
