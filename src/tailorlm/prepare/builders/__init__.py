"""The builder registry: how each kind of source (`sources[].kind`) becomes examples.

A builder is one file in this folder with one registration line that declares everything the rest
of TailorLM needs to know about its kind::

    @builder("faq", tasks=("chat", "generate"), reads=faq_columns)
    def faq(documents: Sequence[Document], source: Source, project: Project) -> Iterator[Example | Skipped]:
        ...

and one import line at the bottom of this file. The spec (`BuilderSpec`) is the only place a kind is
described: which tasks it feeds (what `tailorlm validate` and prepare check a project against), which
parts of a document it reads (only those are cleaned and redacted), whether it reads its files itself
instead of through the ingest readers, whether its documents are kept as chunks, and which documents
share one pseudonym table. The `prepare` stage asks the spec; it never tests a kind's name.

A builder turns already ingested, cleaned and redacted documents into examples and nothing else: it
never opens files or the registry (the stage around it does that). The one exception is a builder
registered with `files=` (`dataset`), whose input is already a JSONL of examples.

A builder yields `Skipped(reason)` for an item it can't use (an empty answer, an agent e-mail with
no customer message before it) so the stage can count every drop with its reason; `run_builder`
separates the two. Input that can't work at all (a missing column) raises `BuilderError` naming the
file and what it has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm.config import TASKS, Project, Source
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


@dataclass(frozen=True)
class Reads:
    """The parts of a source's documents its builder uses. Only those are cleaned and redacted:
    redaction is the slow step, and a table may have dozens of columns nobody uses.

    Attributes:
        fields: Whether a field (a table column, an e-mail header) is read, by name.
        text: Whether a document's text is read; an unread text is emptied, so nothing unredacted slips through.
    """

    fields: Callable[[str], bool]
    text: Callable[[Document], bool]

    @classmethod
    def columns(cls, names: Iterable[str | None], *, text: bool = False) -> Reads:
        """These columns of table rows, and the text of documents that are not rows (of every document
        with `text`)."""
        wanted = frozenset(name for name in names if name)
        return cls(wanted.__contains__, lambda document: text or not document.fields)


def all_but_label(source: Source) -> Reads:
    """Every field but the label (a category, not personal data) and every text: the default."""
    return Reads(lambda name: name != source.label, lambda document: True)


@dataclass(frozen=True)
class BuilderSpec:
    """A registered builder and what it declares about its kind.

    Attributes:
        kind: The `sources[].kind` it builds.
        build: The builder function.
        tasks: The tasks its examples can train (a subset of `config.TASKS`).
        summary: One line for the docs (the function's docstring's first line).
        reads: The source's settings → the parts of its documents the builder reads.
        files: When set, the builder reads its source itself: source, project → the files to hash for
            the dataset's key (nothing is ingested, and the examples are cleaned and redacted instead).
        chunks: The stage keeps the source's documents as chunks (`chunks.jsonl`: the RAG baseline and
            synthetic Q&A) for every task but `cpt`, where the chunks are the examples.
        units: Documents → document id → the unit sharing one pseudonym table (an e-mail thread);
            default: each document on its own.
    """

    kind: str
    build: BuilderFunction
    tasks: frozenset[str]
    summary: str = ""
    reads: Callable[[Source], Reads] = all_but_label
    files: Callable[[Source, Project], list[Path]] | None = None
    chunks: bool = False
    units: Callable[[Sequence[Document]], Mapping[str, str]] | None = None


BUILDERS: dict[str, BuilderSpec] = {}


def builder(
    kind: str,
    *,
    tasks: Iterable[str],
    reads: Callable[[Source], Reads] = all_but_label,
    files: Callable[[Source, Project], list[Path]] | None = None,
    chunks: bool = False,
    units: Callable[[Sequence[Document]], Mapping[str, str]] | None = None,
) -> Callable[[BuilderFunction], BuilderFunction]:
    """Register a builder for a source kind (`sources[].kind` in the project file); see `BuilderSpec`.

    Raises:
        ValueError: a task that is not one of `config.TASKS`, no task at all, or a kind registered twice.
    """
    wanted = frozenset(tasks)
    unknown = sorted(wanted - set(TASKS))
    if unknown or not wanted:
        raise ValueError(f"builder {kind!r}: tasks must be some of {list(TASKS)} (got {sorted(wanted)})")

    def register(function: BuilderFunction) -> BuilderFunction:
        if kind in BUILDERS:
            raise ValueError(f"builder {kind!r} is registered twice")
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        BUILDERS[kind] = BuilderSpec(kind, function, wanted, summary, reads, files, chunks, units)
        return function

    return register


def get_builder(kind: str) -> BuilderSpec:
    """The builder registered for a source kind; `BuilderError` naming the known kinds otherwise."""
    try:
        return BUILDERS[kind]
    except KeyError:
        raise BuilderError(f"no builder for source kind {kind!r} (known: {', '.join(sorted(BUILDERS))})") from None


def kinds_for(task: str) -> list[str]:
    """The source kinds that can feed `task`, sorted."""
    return sorted(kind for kind, spec in BUILDERS.items() if task in spec.tasks)


def run_builder(documents: Sequence[Document], source: Source, project: Project) -> tuple[list[Example], Counter[str]]:
    """Run the builder of `source.kind`; returns the examples and the skipped items counted by reason."""
    examples: list[Example] = []
    skipped: Counter[str] = Counter()
    for item in get_builder(source.kind).build(documents, source, project):
        if isinstance(item, Skipped):
            skipped[f"{source.kind}: {item.reason}"] += 1
        else:
            examples.append(item)
    return examples, skipped


def kinds_markdown() -> str:
    """The table of source kinds in docs/prepare.md, generated from the registrations."""
    lines = ["| kind | tasks | reads its files itself | chunks | what it makes |", "|---|---|---|---|---|"]
    for kind, spec in sorted(BUILDERS.items()):
        tasks = ", ".join(task for task in TASKS if task in spec.tasks)
        files, chunks = ("yes" if spec.files else "no"), ("yes" if spec.chunks else "no")
        lines.append(f"| `{kind}` | {tasks} | {files} | {chunks} | {spec.summary} |")
    return "\n".join(lines)


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
from tailorlm.prepare.builders import dataset, documents, email, extraction, faq, feedback, table  # noqa: E402

__all__ = [
    "BUILDERS",
    "BuilderError",
    "BuilderFunction",
    "BuilderOutput",
    "BuilderSpec",
    "Reads",
    "Skipped",
    "all_but_label",
    "builder",
    "dataset",
    "documents",
    "email",
    "extraction",
    "faq",
    "feedback",
    "file_label",
    "get_builder",
    "kinds_for",
    "kinds_markdown",
    "require_columns",
    "run_builder",
    "source_ref",
    "table",
    "text_of",
]
