"""The builder registry: how each kind of source (`sources[].kind`) becomes examples.

A builder is one file in this folder with one registration line::

    @builder("faq")
    def faq(documents: Sequence[Document], source: Source, project: Project) -> Iterator[Example | Skipped]:
        ...

It turns already ingested, cleaned and redacted documents into examples and nothing else: it never
opens files or the registry (the `prepare` stage around it does that). The one exception is the
`dataset` builder, whose input is already a JSONL of examples (see `builders/dataset.py`).

A builder yields `Skipped(reason)` for an item it can't use (an empty answer, an agent e-mail with
no customer message before it) so the stage can count every drop with its reason; `run_builder`
separates the two. Input that can't work at all (a missing column) raises `BuilderError` naming the
file and what it has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm.config import Project, Source
from tailorlm.documents import Document
from tailorlm.errors import UserError
from tailorlm.formats.examples import Example


class BuilderError(UserError, ValueError):
    """A source that can't be turned into examples; the message names the file and the fix."""


@dataclass(frozen=True)
class Skipped:
    """An item a builder could not use, with the reason counted in the dataset card."""

    reason: str
    where: str = ""


BuilderOutput = Iterator[Example | Skipped]
BuilderFunction = Callable[[Sequence[Document], Source, Project], BuilderOutput]

BUILDERS: dict[str, BuilderFunction] = {}


def builder(kind: str) -> Callable[[BuilderFunction], BuilderFunction]:
    """Register a builder for a source kind (`sources[].kind` in the project file)."""

    def register(function: BuilderFunction) -> BuilderFunction:
        BUILDERS[kind] = function
        return function

    return register


def get_builder(kind: str) -> BuilderFunction:
    """The builder registered for a source kind; `BuilderError` naming the known kinds otherwise."""
    try:
        return BUILDERS[kind]
    except KeyError:
        raise BuilderError(f"no builder for source kind {kind!r} (known: {', '.join(sorted(BUILDERS))})") from None


def run_builder(documents: Sequence[Document], source: Source, project: Project) -> tuple[list[Example], Counter[str]]:
    """Run the builder of `source.kind`; returns the examples and the skipped items counted by reason."""
    examples: list[Example] = []
    skipped: Counter[str] = Counter()
    for item in get_builder(source.kind)(documents, source, project):
        if isinstance(item, Skipped):
            skipped[f"{source.kind}: {item.reason}"] += 1
        else:
            examples.append(item)
    return examples, skipped


# --- helpers shared by builders -------------------------------------------------------------------


def file_label(document: Document, project: Project) -> str:
    """The document's file as the user wrote it: relative to the project folder where possible."""
    path = Path(document.source_path)
    try:
        return path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def source_ref(document: Document, project: Project, suffix: str = "") -> str:
    """A readable, stable `source` for an example: `faq.csv#row 12`, `docs/a.md`, `faq.md#q3`."""
    ref = file_label(document, project)
    if document.locator:
        ref = f"{ref}#{document.locator}"
    if suffix:
        ref = f"{ref}#{suffix}" if "#" not in ref else f"{ref}/{suffix}"
    return ref


def require_columns(documents: Sequence[Document], columns: dict[str, str | None], project: Project) -> None:
    """Raise `BuilderError` naming the file, the missing settings and the columns the file has.

    Args:
        columns: setting name (e.g. `question`) → the column it names (None: not required).
    """
    wanted = {setting: column for setting, column in columns.items() if column}
    checked: set[str] = set()
    for document in documents:
        if document.source_path in checked:
            continue
        checked.add(document.source_path)
        missing = [
            f"source.{setting} = {column!r}" for setting, column in wanted.items() if column not in document.fields
        ]
        if missing:
            has = ", ".join(repr(c) for c in document.fields) or "none (not a table: no columns)"
            raise BuilderError(
                f"{file_label(document, project)}: column(s) not found: {'; '.join(missing)}. "
                f"The file has the columns: {has}"
            )


def text_of(value: Any) -> str:
    """A cell as text: None → '', numbers as written."""
    return "" if value is None else str(value).strip()


# Registration: importing the builder modules fills BUILDERS (one line per builder).
from tailorlm.prepare.builders import dataset, documents, email, extraction, faq, table  # noqa: E402

__all__ = [
    "BUILDERS",
    "BuilderError",
    "BuilderFunction",
    "Skipped",
    "builder",
    "dataset",
    "documents",
    "email",
    "extraction",
    "faq",
    "file_label",
    "get_builder",
    "require_columns",
    "run_builder",
    "source_ref",
    "table",
    "text_of",
]
