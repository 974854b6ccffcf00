"""The Document: what every reader produces, with the provenance that lets a model be traced to its files."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


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


class ReadError(Exception):
    """A file a reader can't turn into documents; the message says why in the user's words."""
