"""Office Open XML packages (DOCX, XLSX): telling them apart by content, and refusing zip bombs.

`package_kind(head)` reads the first bytes of a file: a ZIP whose first member is
`[Content_Types].xml` declares its main part (Word document, Excel workbook...), so a DOCX named
.xlsx, or a workbook named .bin, still reaches the right reader. `check_package(path, kind)` opens
the ZIP's central directory only, and refuses it before anything is extracted when its declared
uncompressed size, compression ratio or member count is out of bounds, or when an XML part declares a
document type (DTD): Office never writes one, and it is how an external entity (XXE) or an entity
bomb would get in, so no parser ever sees it.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

from tailorlm.documents import ReadError
from tailorlm.ingest.source import describe_start

MAX_UNCOMPRESSED_MB = 500  # more than any real document; docling and openpyxl hold the XML in memory
MAX_RATIO = 200  # real Office XML compresses 5-50x; a bomb of zeros, 1000x and more
MAX_MEMBERS = 20_000

_MAIN_PARTS: dict[bytes, str] = {
    b"wordprocessingml.document.main": "docx",
    b"wordprocessingml.template.main": "docx",
    b"ms-word.document.macroEnabled.main": "docx",
    b"spreadsheetml.sheet.main": "xlsx",
    b"spreadsheetml.template.main": "xlsx",
    b"ms-excel.sheet.macroEnabled.main": "xlsx",
    b"presentationml.presentation.main": "pptx",
}
_PART_NAMES: dict[bytes, str] = {
    b"word/document.xml": "docx",
    b"word/_rels/": "docx",
    b"xl/workbook.xml": "xlsx",
    b"xl/_rels/": "xlsx",
    b"xl/worksheets/": "xlsx",
    b"ppt/presentation.xml": "pptx",
}
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def _kind_from_content_types(xml: bytes) -> str | None:
    for marker, kind in _MAIN_PARTS.items():
        if marker in xml:
            return kind
    return None


def package_kind(head: bytes) -> str | None:
    """'docx', 'xlsx' or 'pptx' for an Office package judged by its first bytes; None otherwise."""
    if not head.startswith(b"PK\x03\x04") or len(head) < _LOCAL_HEADER.size:
        return None
    _, _, flags, method, _, _, _, size, _, name_length, extra_length = _LOCAL_HEADER.unpack_from(head)
    start = _LOCAL_HEADER.size
    name = head[start : start + name_length]
    data = head[start + name_length + extra_length :][:size]
    if name == b"[Content_Types].xml" and not flags & 0x08 and len(data) == size:
        try:  # bounded: a member that inflates past 1 MB is not a real content-types part
            xml = zlib.decompressobj(-15).decompress(data, 1 << 20) if method == 8 else data
        except zlib.error:
            xml = b""
        if kind := _kind_from_content_types(xml):
            return kind
    # Writers that stream (sizes after the data) or put another member first: look at the names.
    for part_name, kind in _PART_NAMES.items():
        if part_name in head:
            return kind
    return None


def _declares_doctype(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    """True when the XML part has a `<!DOCTYPE` (in the prolog, before the root element)."""
    with archive.open(member) as part:
        head = part.read(64 * 1024)
    for encoding in ("utf-8", "utf-16"):
        text = head.decode(encoding, errors="ignore")
        if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
            return True
    return False


def check_package(path: Path, kind: str) -> None:
    """Refuse a file that is not a sane `kind` package, before anything is extracted.

    Raises:
        ReadError: not a ZIP, a declared size or ratio of a zip bomb, too many members, an XML part
            declaring a DOCTYPE (XXE), or a package of another kind (an XLSX named .docx).
    """
    label = kind.upper()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        with path.open("rb") as handle:
            head = handle.read(64)
        if head.startswith(b"PK"):
            raise ReadError(f"damaged or truncated {label} file: {error}") from error
        raise ReadError(f"not a {label} file: not a ZIP package ({describe_start(head)})") from error
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise ReadError(f"refused: the {label} has {len(members)} parts (limit {MAX_MEMBERS}); possible zip bomb")
        declared = sum(member.file_size for member in members)
        if declared > MAX_UNCOMPRESSED_MB * 1024 * 1024:
            raise ReadError(
                f"refused: the {label} declares {declared / 2**20:,.0f} MB uncompressed, over the "
                f"{MAX_UNCOMPRESSED_MB} MB limit; possible zip bomb"
            )
        for member in members:
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > 1 << 20 and ratio > MAX_RATIO:
                raise ReadError(
                    f"refused: part {member.filename!r} of the {label} expands {ratio:,.0f}x "
                    f"(limit {MAX_RATIO}x); possible zip bomb"
                )
        names = {member.filename for member in members}
        if "[Content_Types].xml" not in names:
            raise ReadError(f"not a {label} file: a ZIP archive without [Content_Types].xml")
        with archive.open("[Content_Types].xml") as part:
            actual = _kind_from_content_types(part.read(1 << 20))
        for member in members:
            if member.filename.endswith((".xml", ".rels")) and _declares_doctype(archive, member):
                raise ReadError(
                    f"refused: part {member.filename!r} of the {label} declares a DOCTYPE (external or "
                    "internal entities); Office files never do, and it is not resolved"
                )
    if actual is not None and actual != kind:
        raise ReadError(f"not a {label} file: the package is a {actual.upper()} (rename it to .{actual})")
