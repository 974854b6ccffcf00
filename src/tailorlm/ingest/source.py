"""What every reader shares about the file it is reading.

* `SourceFile`: the file's absolute path and content hash; it builds Documents with that provenance
  filled in and records the parts of the file a reader had to skip (a ragged row, a malformed line,
  a page without text), which turn the file's ingest result into "partial".
* `decode_text`: bytes → text with the encoding detected (BOMs, UTF-8, then charset-normalizer,
  preferring cp1252 among equally plausible Western encodings); binary content is refused.
* `describe_start`: "file starts with b'...', which looks like a ZIP archive", for error messages.
* `header_names` / `fields_text`: the header check and "column: value" text of table readers.
* `docling_convert`: the one docling converter (DOCX, and PDF through the model-free
  `NativePdfPipeline`), built once because importing docling takes seconds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorlm.documents import Document, ReadError
from tailorlm.workspace import sha256_file

if TYPE_CHECKING:
    from docling.document_converter import DocumentConverter
    from docling_core.types.doc import DoclingDocument

log = logging.getLogger(__name__)


# --- the file being read -------------------------------------------------------------------------


@dataclass
class _Reading:
    path: Path
    sha256: str
    skipped: list[str] = field(default_factory=list)


_current: ContextVar[_Reading | None] = ContextVar("tailorlm_ingest_reading", default=None)


@contextmanager
def reading(path: Path, sha256: str) -> Iterator[list[str]]:
    """Let readers of `path` reuse a hash already computed and collect what they skip (yielded list)."""
    state = _Reading(Path(os.path.abspath(path)), sha256)
    token = _current.set(state)
    try:
        yield state.skipped
    finally:
        _current.reset(token)


@dataclass(frozen=True)
class SourceFile:
    """The file a reader is reading: absolute path, content hash and the reader's name."""

    path: Path
    sha256: str
    reader: str

    @classmethod
    def of(cls, path: Path, reader: str) -> SourceFile:
        absolute = Path(os.path.abspath(path))
        state = _current.get()
        sha = state.sha256 if state is not None and state.path == absolute else sha256_file(absolute)
        return cls(absolute, sha, reader)

    @property
    def name(self) -> str:
        return self.path.name

    def document(
        self,
        text: str,
        *,
        locator: str = "",
        title: str | None = None,
        fields: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Document:
        return Document(
            text=text,
            source_path=str(self.path),
            source_sha256=self.sha256,
            locator=locator,
            reader=self.reader,
            title=title,
            fields=fields or {},
            meta=meta or {},
        )

    def skip(self, message: str) -> None:
        """Record a part of the file that was not read; the message should say where and why."""
        note = f"{self.name} {message}"
        state = _current.get()
        if state is not None and state.path == self.path:
            state.skipped.append(note)
        else:
            log.warning("%s", note)


# --- bytes and text ------------------------------------------------------------------------------

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (.doc/.xls/.msg)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "gzip data"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"{\\rtf", "an RTF document"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ", "a Windows program"),
)


def describe_start(data: bytes) -> str:
    """'file starts with b"...", which looks like X' — for errors about a file that isn't what it claims."""
    shown = f"file starts with {data[:16]!r}"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return f"{shown}, which looks like {kind}"
    sample = data[:512]
    if sample and b"\x00" not in sample:
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(sample) - 4:  # a character cut at the end of the sample is fine
                return shown
        return f"{shown}, which looks like text"
    return shown


# Currency signs, typographic quotes, dashes and other symbols of cp1252 (escaped: some look like ASCII).
_WESTERN_PUNCTUATION = set(
    "\u20ac\xa3\xa5\xa2\xa9\xae\xb0\xb1\xb7\xa7\xb6\xab\xbb\u2018\u2019\u201a\u201c\u201d\u201e\u2013\u2014\u2026\u2022\u2020\u2021\u2030\u2122\xbf\xa1\xd7\xf7\xb5\xbc\xbd\xbe\xb9\xb2\xb3\xaa\xba\xa0"
)


def _looks_western(data: bytes) -> bool:
    """Whether the bytes read as cp1252 give Western-European text: accented letters among ASCII ones."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    special = [c for c in text if ord(c) > 127]
    letters = sum(c.isalpha() for c in text)
    if not all((c.isalpha() and ord(c) < 0x250) or c in _WESTERN_PUNCTUATION for c in special):
        return False
    # Cyrillic or Greek bytes also decode to Latin letters, but then nearly every letter is accented.
    return sum(c.isalpha() for c in special) <= 0.3 * max(letters, 1)


def _detect_encoding(data: bytes) -> str | None:
    """Encoding by charset-normalizer, preferring cp1252 where it is as plausible as the best guess."""
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    # Short Western-European files are equally plausible in many code pages (cp1250, cp775,
    # mac_iceland, even johab); the one such files are actually written in is almost always cp1252.
    if best is not None and any(m.chaos <= best.chaos + 0.1 and "cp1252" in m.could_be_from_charset for m in matches):
        return "cp1252"
    if (best is None or best.coherence < 0.1) and _looks_western(data):  # too little text to tell
        return "cp1252"
    return best.encoding if best is not None else None


def decode_text(data: bytes) -> tuple[str, str]:
    r"""Decode a text file's bytes: (text with "\\n" newlines and no BOM, encoding name).

    Raises:
        ReadError: the bytes are binary, not text.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif b"\x00" in data[:8192]:
        raise ReadError(f"binary content, not text ({describe_start(data)})")
    else:
        try:
            data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            detected = _detect_encoding(data)
            if detected is None:
                raise ReadError(f"binary content, not text ({describe_start(data)})") from None
            encoding = detected
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise ReadError(f"can't decode the text as {encoding}: {error}") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"), encoding


# --- tables --------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def header_names(values: Sequence[Any]) -> list[str]:
    """Column names from a header row (trailing empty cells dropped).

    Raises:
        ReadError: no header (empty, or all numbers: the first row is data), a column without a name,
            or a name used twice.
    """
    names = ["" if value is None else str(value).strip() for value in values]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ReadError("a header row is required, but the first row is empty")
    if all(_is_number(name) for name in names):
        raise ReadError(f"a header row is required, but the first row looks like data (all numbers: {names[:5]})")
    for number, name in enumerate(names, start=1):
        if not name:
            raise ReadError(f"header column {number} has no name (a header row naming every column is required)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ReadError(f"header column name {name!r} appears twice; column names must be unique")
        seen.add(name)
    return names


def fields_text(fields: Mapping[str, Any]) -> str:
    """A row or record as text: one "name: value" line per non-empty value (nested values as JSON)."""
    lines = []
    for name, value in fields.items():
        if value is None or value == "":
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


# --- docling -------------------------------------------------------------------------------------


@cache
def docling_converter() -> DocumentConverter:
    """The shared docling converter: DOCX, and PDF via the model-free native pipeline (no downloads)."""
    from tailorlm import offline

    offline.enforce()  # docling must never reach a model hub; any attempt fails loudly instead
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import NativePdfPipelineOptions
    from docling.document_converter import DocumentConverter, NativePdfFormatOption

    pdf_options = NativePdfPipelineOptions(
        generate_page_images=False,
        generate_picture_images=False,
        parser_threads=max(1, min(4, (os.cpu_count() or 2) - 1)),
    )
    return DocumentConverter(
        allowed_formats=[InputFormat.DOCX, InputFormat.PDF],
        format_options={InputFormat.PDF: NativePdfFormatOption(pipeline_options=pdf_options)},
    )


def docling_convert(path: Path, suffix: str) -> DoclingDocument:
    """Convert a file with docling, naming it with `suffix` so docling picks the format we sniffed.

    Raises:
        ReadError: docling could not convert the file; the message carries docling's reason.
    """
    from docling.datamodel.base_models import ConversionStatus, DocumentStream

    stream = DocumentStream(name=f"{path.stem or 'file'}{suffix}", stream=BytesIO(path.read_bytes()))
    try:
        result = docling_converter().convert(stream, raises_on_error=False)
    except Exception as error:  # docling raises many types; the user needs the reason, not the type
        raise ReadError(f"can't convert {suffix[1:].upper()}: {error}") from error
    if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
        reasons = "; ".join(e.error_message for e in result.errors) or str(result.status)
        raise ReadError(f"can't convert {suffix[1:].upper()}: {reasons}")
    return result.document
