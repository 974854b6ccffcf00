"""The hand-off between ingest and prepare: the `Document` every reader produces (with the provenance
that lets a model be traced to its files), the report of an ingest call, and the workspace's
document store read back by content hash (`load_documents`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tailorlm.errors import UserError
from tailorlm.progress import Progress
from tailorlm.workspace import NotFound, Workspace, read_jsonl

Status = Literal["ingested", "unchanged", "failed", "partial"]
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Document:
    """One unit of company text: a file, a section, a table row or an e-mail.

    Attributes:
        text: Normalised text (Markdown where the source has structure: headings, tables).
        source_path: The file it came from (as given to `ingest`, made absolute).
        source_sha256: Hash of the source file's bytes.
        locator: Where in the file: "" for the whole file, "page 3", "row 12", "message 4", "sheet Orders row 5".
        reader: Name of the reader that produced it (markdown, csv, pdf, email...).
        title: A title where the source has one (first heading, e-mail subject).
        fields: Structured values: a table row's columns, an e-mail's from/to/subject/role/message_id/in_reply_to.
        meta: Anything else worth keeping (page count, encoding detected, language).
    """

    text: str
    source_path: str
    source_sha256: str
    locator: str = ""
    reader: str = ""
    title: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = hashlib.sha256(f"{self.source_sha256}\0{self.locator}".encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Document:
        return cls(**data)


class ReadError(UserError):
    """A file a reader can't turn into documents; the message says why in the user's words."""


@dataclass
class FileResult:
    """What happened to one file. `warnings` lists the parts skipped (rows, lines, pages, messages)."""

    path: str
    status: Status
    sha256: str | None
    documents: int
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    """The outcome of one `ingest` call: one `FileResult` per file, in the order read."""

    files: list[FileResult]

    @property
    def ok(self) -> bool:
        """True when no file failed (partial files count as read)."""
        return not any(result.status == "failed" for result in self.files)

    @property
    def documents(self) -> int:
        """Documents of every file in the call, including unchanged ones."""
        return sum(result.documents for result in self.files)


class Ingest(Protocol):
    """Reads files and folders into the workspace's documents (`tailorlm.ingest.ingest`)."""

    def __call__(
        self, workspace: Workspace, paths: Sequence[Path | str], *, progress: Progress = ...
    ) -> IngestReport: ...


def load_documents(workspace: Workspace, sha256s: Iterable[str]) -> list[Document]:
    """The stored documents of the given source files (by content hash), in the order given.

    Raises:
        ValueError: a value is not a sha256 hex digest.
        NotFound: no documents were ingested for a hash.
    """
    documents: list[Document] = []
    for sha in sha256s:
        if not _SHA256.fullmatch(sha):
            raise ValueError(f"not a sha256 content hash: {sha!r}")
        path = workspace.documents_file(sha)
        if not path.is_file():
            raise NotFound(f"no documents ingested for {sha} (ingest the file first)")
        documents.extend(Document.from_json(row) for row in read_jsonl(path))
    return documents
