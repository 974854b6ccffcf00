"""Reads Excel workbooks (.xlsx, .xlsm) into one Document per data row of every worksheet.

openpyxl in read-only mode with `data_only=True`: a formula cell gives the value Excel cached when
the file was last saved (a workbook written by a tool that caches no values gives empty cells). In
each sheet the first non-empty row is the header (required, as for CSV); each later row becomes a
Document with `fields` = {column: value} (numbers and booleans kept, dates as ISO 8601 text),
text = "column: value" lines, and `locator` = "sheet NAME row N" where N is the row number Excel
shows. Empty rows and sheets are passed over; a sheet without a valid header, or a row with values
beyond the header's columns, is skipped and reported ("partial"). The package is checked for zip
bombs before openpyxl opens it. It can't: read legacy .xls files, charts, images or comments, or
evaluate formulas.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.ooxml import check_package, package_kind
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, describe_start, fields_text, header_names


def _cell_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@reader(".xlsx", ".xlsm", sniff=lambda head: package_kind(head) == "xlsx")
def read_xlsx(path: Path) -> Iterator[Document]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    source = SourceFile.of(path, "xlsx")
    with path.open("rb") as handle:
        head = handle.read(64)
    if not head.startswith(b"PK\x03\x04"):
        raise ReadError(f"not an XLSX workbook ({describe_start(head)})")
    check_package(path, "xlsx")
    try:
        # A file object, not the path: openpyxl refuses names that don't end in .xlsx.
        with path.open("rb") as handle:
            workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
            try:
                yield from _read_sheets(source, workbook)
            finally:
                workbook.close()
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as error:
        raise ReadError(f"not a readable XLSX workbook: {error}") from error


def _read_sheets(source: SourceFile, workbook: Any) -> Iterator[Document]:
    kept = 0
    for sheet in workbook.worksheets:
        sheet.reset_dimensions()  # some writers record wrong sheet sizes; read what is really there
        header: list[str] | None = None
        for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1):
            if all(_is_empty(value) for value in values):
                continue
            where = f"sheet {sheet.title} row {number}"
            if header is None:
                try:
                    header = header_names(values)
                except ReadError as error:
                    source.skip(f"{where}: {error} — sheet skipped")
                    break
                continue
            extra = [value for value in values[len(header) :] if not _is_empty(value)]
            if extra:
                source.skip(f"{where}: values beyond the header's {len(header)} columns — row skipped")
                continue
            padded = list(values[: len(header)]) + [None] * (len(header) - len(values))
            fields = {name: _cell_value(value) for name, value in zip(header, padded, strict=True)}
            kept += 1
            yield source.document(
                fields_text(fields), locator=where, fields=fields, meta={"sheet": sheet.title, "row": number}
            )
    if kept == 0:
        raise ReadError("no rows: no sheet has a header row followed by data")
