"""The reader registry: one module per format registers its function with `@reader(...)`.

A reader takes a path (and keyword-only options with defaults) and yields Documents, raising
`ReadError` with a plain reason for a file it can't read. `reader_for(path)` picks one by sniffing
the file's first bytes and then by extension.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tailorlm.documents import Document, ReadError

ReaderFunction = Callable[..., Iterator[Document]]  # (path, *, option=default, ...)


@dataclass(frozen=True)
class Reader:
    name: str
    extensions: tuple[str, ...]
    function: ReaderFunction
    sniff: Callable[[bytes], bool] | None = None


READERS: dict[str, Reader] = {}


def reader(*extensions: str, name: str | None = None, sniff: Callable[[bytes], bool] | None = None):
    """Register a reader for file extensions (with the dot), optionally with a content sniffer."""

    def register(function: ReaderFunction) -> ReaderFunction:
        key = name or function.__name__.removeprefix("read_")
        READERS[key] = Reader(key, tuple(e.lower() for e in extensions), function, sniff)
        return function

    return register


def reader_for(path: Path, head: bytes = b"") -> Reader:
    """The reader for a file: a content sniffer that claims the bytes wins, else the extension."""
    for candidate in READERS.values():
        if candidate.sniff is not None and head and candidate.sniff(head):
            return candidate
    suffix = path.suffix.lower()
    for candidate in READERS.values():
        if suffix in candidate.extensions:
            return candidate
    known = ", ".join(sorted({e for r in READERS.values() for e in r.extensions}))
    raise ReadError(f"no reader for '{suffix or path.name}' files (readable: {known})")
