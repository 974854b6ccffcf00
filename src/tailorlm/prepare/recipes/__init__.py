"""The recipe registry: how each kind of source (`sources[].kind`) becomes examples.

A recipe is one file in this folder with one registration line::

    @recipe("faq")
    def faq(documents: Sequence[Document], source: Source, project: Project) -> Iterator[Example | Skipped]:
        ...

It turns already ingested, cleaned and redacted documents into examples and nothing else: it never
opens files or the registry (the `prepare` stage around it does that). The one exception is the
`dataset` recipe, whose input is already a JSONL of examples (see `recipes/dataset.py`).

A recipe yields `Skipped(reason)` for an item it can't use (an empty answer, an agent e-mail with
no customer message before it) so the stage can count every drop with its reason; `run_recipe`
separates the two. Input that can't work at all (a missing column) raises `RecipeError` naming the
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


class RecipeError(UserError, ValueError):
    """A source that can't be turned into examples; the message names the file and the fix."""


@dataclass(frozen=True)
class Skipped:
    """An item a recipe could not use, with the reason counted in the dataset card."""

    reason: str
    where: str = ""


RecipeOutput = Iterator[Example | Skipped]
RecipeFunction = Callable[[Sequence[Document], Source, Project], RecipeOutput]

RECIPES: dict[str, RecipeFunction] = {}


def recipe(kind: str) -> Callable[[RecipeFunction], RecipeFunction]:
    """Register a recipe for a source kind (`sources[].kind` in the project file)."""

    def register(function: RecipeFunction) -> RecipeFunction:
        RECIPES[kind] = function
        return function

    return register


def get_recipe(kind: str) -> RecipeFunction:
    """The recipe registered for a source kind; `RecipeError` naming the known kinds otherwise."""
    try:
        return RECIPES[kind]
    except KeyError:
        raise RecipeError(f"no recipe for source kind {kind!r} (known: {', '.join(sorted(RECIPES))})") from None


def run_recipe(documents: Sequence[Document], source: Source, project: Project) -> tuple[list[Example], Counter[str]]:
    """Run the recipe of `source.kind`; returns the examples and the skipped items counted by reason."""
    examples: list[Example] = []
    skipped: Counter[str] = Counter()
    for item in get_recipe(source.kind)(documents, source, project):
        if isinstance(item, Skipped):
            skipped[f"{source.kind}: {item.reason}"] += 1
        else:
            examples.append(item)
    return examples, skipped


# --- helpers shared by recipes -------------------------------------------------------------------


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
    """Raise `RecipeError` naming the file, the missing settings and the columns the file has.

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
            raise RecipeError(
                f"{file_label(document, project)}: column(s) not found: {'; '.join(missing)}. "
                f"The file has the columns: {has}"
            )


def text_of(value: Any) -> str:
    """A cell as text: None → '', numbers as written."""
    return "" if value is None else str(value).strip()


# Registration: importing the recipe modules fills RECIPES (one line per recipe).
from tailorlm.prepare.recipes import dataset, documents, email, extraction, faq, table  # noqa: E402

__all__ = [
    "RECIPES",
    "RecipeError",
    "RecipeFunction",
    "Skipped",
    "dataset",
    "documents",
    "email",
    "extraction",
    "faq",
    "file_label",
    "get_recipe",
    "recipe",
    "require_columns",
    "run_recipe",
    "source_ref",
    "table",
    "text_of",
]
