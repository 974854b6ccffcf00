"""Reads PDF files into one Document per page (`locator` "page N", 1-based), from the text layer.

Two engines, chosen with the `engine` option:
* "pypdf" (default): pypdf's text extraction, lines in content order. Measured on a 200-page
  text PDF (benchmarks/ingest_pdf.py, 2 cores) it gives the same words on every page as docling's
  native pipeline for a fifth to a seventh of the CPU time, so it is the default.
* "docling": docling-slim's model-free `NativePdfPipeline` (docling-parse; no layout, OCR or table
  model, nothing downloaded). It gives one line per text cell in the parser's order; it does not
  recover headings or tables either (that needs docling's layout/table models, which TailorLM does
  not download).

Every file is checked with pypdf first: "not a PDF (file starts with ...)" when the %PDF header is
missing, "encrypted PDF: ..." when it needs a password (an empty user password, common on
permission-only protection, is tried), "truncated or corrupt PDF: ..." when it can't be parsed. A
page with images but no text is reported as needing OCR and skipped ("partial"); when no page has
text the file fails with "needs OCR: no text layer on any page". Blank pages are passed over. It
can't: OCR scanned pages, keep layout (columns may interleave), or read attachments and forms.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, describe_start, docling_convert

if TYPE_CHECKING:
    from pypdf import PageObject, PdfReader

Engine = Literal["pypdf", "docling"]


def is_pdf(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf\x00\t\n\r\f ").startswith(b"%PDF-")


def _open(path: Path) -> PdfReader:
    """Open with pypdf, turning its many failure modes into one clear ReadError."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    with path.open("rb") as handle:
        head = handle.read(1024)
        handle.seek(max(0, path.stat().st_size - 1024))
        tail = handle.read()
    if not is_pdf(head):
        raise ReadError(f"not a PDF ({describe_start(head)})")
    cut_short = b"%%EOF" not in tail
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # its repair warnings ("EOF marker not found") repeat our error
    try:
        pdf = PdfReader(path)
        if pdf.is_encrypted and not pdf.decrypt(""):
            raise ReadError(
                "encrypted PDF: it needs a password to open; ingest an unprotected copy "
                "(for example `qpdf --decrypt --password=... in.pdf out.pdf`)"
            )
        len(pdf.pages)  # parses the page tree: a damaged file fails here, not halfway through
    except ReadError:
        raise
    except (DependencyError, FileNotDecryptedError) as error:
        raise ReadError(f"encrypted PDF: {error}") from error
    except Exception as error:  # pypdf raises many types for damaged files; the reason is what matters
        hint = " (no %%EOF marker at the end: the file looks cut short)" if cut_short else ""
        raise ReadError(f"truncated or corrupt PDF{hint}: {error}") from error
    finally:
        pypdf_log.setLevel(level)
    return pdf


def _has_images(page: PageObject) -> bool:
    try:
        xobjects = cast(Any, page["/Resources"].get_object()).get("/XObject")
        if not xobjects:
            return False
        return any(x.get_object().get("/Subtype") in ("/Image", "/Form") for x in xobjects.get_object().values())
    except (KeyError, AttributeError, TypeError):
        return False


def _pypdf_pages(pdf: PdfReader, source: SourceFile) -> dict[int, str]:
    texts = {}
    for number, page in enumerate(pdf.pages, start=1):
        try:
            texts[number] = page.extract_text() or ""
        except Exception as error:  # one damaged page shouldn't cost the others
            source.skip(f"page {number}: text could not be extracted ({error}) — page skipped")
    return texts


def _docling_pages(path: Path) -> dict[int, str]:
    from docling_core.types.doc import TextItem

    document = docling_convert(path, ".pdf")
    lines: dict[int, list[str]] = defaultdict(list)
    for item, _ in document.iterate_items():
        if isinstance(item, TextItem) and item.prov and item.text.strip():
            lines[item.prov[0].page_no].append(item.text)
    return {number: "\n".join(lines.get(number, [])) for number in range(1, document.num_pages() + 1)}


def _title(pdf: PdfReader) -> str | None:
    try:
        title = pdf.metadata.title if pdf.metadata else None
    except Exception:  # a damaged info dictionary is no reason to lose the text
        return None
    return (str(title).strip() or None) if title else None


@reader(".pdf", sniff=is_pdf)
def read_pdf(path: Path, *, engine: Engine = "pypdf") -> Iterator[Document]:
    source = SourceFile.of(path, "pdf")
    pdf = _open(path)
    pages = len(pdf.pages)
    texts = _pypdf_pages(pdf, source) if engine == "pypdf" else _docling_pages(path)
    if not any(text.strip() for text in texts.values()):
        raise ReadError("needs OCR: no text layer on any page")
    title = _title(pdf)
    meta: dict[str, Any] = {"pages": pages, "engine": engine}
    for number, text in sorted(texts.items()):
        if text.strip():
            yield source.document(text.strip(), locator=f"page {number}", title=title, meta={**meta, "page": number})
        elif _has_images(pdf.pages[number - 1]):
            source.skip(f"page {number}: no text layer, only images (needs OCR) — page skipped")
