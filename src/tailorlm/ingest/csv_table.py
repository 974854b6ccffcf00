"""Reads CSV and TSV tables into one Document per data row.

The first row is the header and is required (every column named, names unique, not all numbers).
Parsing is quote-aware (Python's csv module, strict quoting), so quoted fields may hold the
delimiter, quotes ("") and newlines. The delimiter is sniffed from the header line: the most
frequent of `,` `;` tab `|` outside quotes (or given with the `delimiter` option); the encoding is
detected (UTF-8, UTF-8/16 with BOM, cp1252/latin-1 and others via charset-normalizer).

Each Document has `fields` = {column: value} (all strings), text = "column: value" lines for the
non-empty values, `locator` = "row N" where N counts data records from 1 (the header is not a row,
blank lines are not rows, skipped rows keep their number), and `meta["line"]` = the file line the
record starts on. A row with the wrong number of fields, or a badly quoted one, is skipped and
reported with its line ("partial"); the other rows are kept. An unclosed quote swallows the rest of
the file, which is reported the same way. It can't: read Excel files (see xlsx.py), infer types
(values stay strings), or read a table without a header row.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, decode_text, fields_text, header_names

DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(text: str) -> str:
    """The candidate delimiter that appears most often in the first record, outside quotes."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for character in text[:65536]:
        if character == '"':
            quoted = not quoted
        elif not quoted:
            if character == "\n":
                break
            if character in counts:
                counts[character] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


@reader(".csv", ".tsv")
def read_csv(path: Path, *, delimiter: str | None = None) -> Iterator[Document]:
    source = SourceFile.of(path, "csv")
    text, encoding = decode_text(path.read_bytes())
    delimiter = delimiter or sniff_delimiter(text)
    # The module's default field limit (128 KB) would reject a long cell; the whole file is the bound.
    csv.field_size_limit(max(csv.field_size_limit(), min(len(text) + 1, sys.maxsize)))
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = header_names(next(records))
    except StopIteration:
        raise ReadError("no rows: the file is empty") from None
    except csv.Error as error:
        raise ReadError(f"line 1 (header): {error}") from None
    meta = {"encoding": encoding, "delimiter": delimiter}
    line = records.line_num + 1
    number = kept = 0
    while True:
        try:
            values = next(records)
        except StopIteration:
            break
        except csv.Error as error:
            number += 1
            if "unexpected end of data" in str(error):  # strict mode, at the end: a quote never closed
                source.skip(
                    f"line {line} (row {number}): unclosed quote; lines {line}-{records.line_num} could not be read"
                )
                break
            source.skip(f"line {line} (row {number}): {error} — row skipped")
            line = records.line_num + 1
            continue
        start, line = line, records.line_num + 1
        if not any(value.strip() for value in values):
            continue  # a blank line between records is not a row
        number += 1
        if len(values) != len(header):
            source.skip(
                f"line {start} (row {number}): {len(values)} fields, the header has {len(header)} — row skipped"
            )
            continue
        fields = dict(zip(header, values, strict=True))
        kept += 1
        yield source.document(fields_text(fields), locator=f"row {number}", fields=fields, meta={**meta, "line": start})
    if number == 0:
        raise ReadError(f"no rows: the file has a header ({', '.join(header[:5])}) but no data rows")
    if kept == 0:
        raise ReadError(f"no readable rows: all {number} rows were skipped (see the warnings)")
