"""The `table` builder: table rows → classification or extraction chat examples.

* With `source.label`: classification. The user turn is the instruction, listing the label set
  (computed from the data, sorted), then the `source.input` cell; the assistant answers with the
  label, which is also kept as `Example.label` for metrics and stratified splits; the bare input
  cell is kept as `meta.input` (what a classification head and the retrieval baselines read).
* With `source.fields` instead: extraction of those columns as JSON, as in the `extraction` builder
  (assistant = JSON with sorted keys, `meta.fields`).

`source.instruction` replaces the default instruction; `{labels}` (or `{schema}`, `{fields}`) in it is
filled in. Each row is its own `source` (`tickets.csv#row 12`).
"""

from __future__ import annotations

from collections.abc import Sequence

from tailorlm.config import Project, Source
from tailorlm.documents import Document
from tailorlm.formats.examples import Example
from tailorlm.prepare.builders import (
    BuilderError,
    BuilderOutput,
    Reads,
    Skipped,
    builder,
    file_label,
    require_columns,
    source_ref,
    text_of,
)
from tailorlm.prepare.builders.extraction import json_examples

DEFAULT_INSTRUCTION = "Classify the following text into one of: {labels}. Answer with the label only."


def _reads(source: Source) -> Reads:
    """The input column and the extracted fields (the label is a category, not personal data)."""
    return Reads.columns([source.input, *(source.fields or [])])


@builder("table", tasks=("chat", "generate", "classify", "extract"), reads=_reads)
def table(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    """Table rows → a label (`label:`, classification) or JSON of columns (`fields:`, extraction).

    One example per row: input → label, or input → JSON of `source.fields`.
    """
    if not source.input:
        raise BuilderError(f"{source.path}: a table source needs `input:` (the column holding the text)")
    if source.label:
        yield from _classification(documents, source, project)
    elif source.fields:
        yield from _extraction(documents, source, project)
    else:
        raise BuilderError(
            f"{source.path}: a table source needs `label:` (the column to classify into) or `fields:` "
            "(the columns to extract as JSON)"
        )


def _classification(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    assert source.input and source.label
    require_columns(documents, {"input": source.input, "label": source.label}, project)
    rows: list[tuple[Document, str, str]] = []
    for document in documents:
        text, label = text_of(document.fields.get(source.input)), text_of(document.fields.get(source.label))
        if not text:
            yield Skipped("empty input", source_ref(document, project))
        elif not label:
            yield Skipped("missing label", source_ref(document, project))
        else:
            rows.append((document, text, label))
    labels = sorted({label for _, _, label in rows})
    instruction = (source.instruction or DEFAULT_INSTRUCTION).replace("{labels}", ", ".join(labels))
    for document, text, label in rows:
        yield Example.chat(
            system=project.system_prompt,
            user=f"{instruction}\n\n{text}",
            assistant=label,
            label=label,
            source=source_ref(document, project),
            meta={"file": file_label(document, project), "input": text},
        )


def _extraction(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    assert source.input and source.fields
    require_columns(
        documents,
        {"input": source.input, **{f"fields[{i}]": f for i, f in enumerate(source.fields)}},
        project,
    )
    records = []
    for document in documents:
        text = text_of(document.fields.get(source.input))
        if not text:
            yield Skipped("empty input", source_ref(document, project))
            continue
        gold = {
            name: document.fields.get(name) if text_of(document.fields.get(name)) else None for name in source.fields
        }
        records.append((document, text, gold))
    yield from json_examples(records, source, project)
