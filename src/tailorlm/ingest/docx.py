"""Reads Word documents (.docx) into one Markdown Document per file, through docling-slim.

Headings become `#` lines, lists `-` items and tables Markdown tables; the title is the document's
title or first heading. Before docling sees the file, the ZIP package is checked without extracting
anything: junk bytes ("not a DOCX file: not a ZIP package (file starts with ...)"), a zip bomb
(declared uncompressed size or ratio over the limits in ooxml.py) and a workbook named .docx are
refused. It can't: read legacy .doc files, text inside images, tracked changes as such (the
current text is read), comments, headers and footers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.ooxml import check_package, package_kind
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, docling_convert


@reader(".docx", sniff=lambda head: package_kind(head) == "docx")
def read_docx(path: Path) -> Iterator[Document]:
    from docling_core.types.doc import DocItemLabel, TextItem

    source = SourceFile.of(path, "docx")
    check_package(path, "docx")
    document = docling_convert(path, ".docx")
    text = document.export_to_markdown(image_placeholder="").strip()
    if not text:
        raise ReadError("no text found in the document")
    title = None
    for item, _ in document.iterate_items():
        heading = isinstance(item, TextItem) and item.label in (DocItemLabel.TITLE, DocItemLabel.SECTION_HEADER)
        if heading and (title := cast(TextItem, item).text.strip() or None):
            break
    yield source.document(text, title=title)
