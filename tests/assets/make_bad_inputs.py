"""Builds the files of tests/assets/bad_inputs/ (see its README.md), and the real files tests need.

Run it from the repository root to regenerate the committed corpus:

    .venv/bin/python tests/assets/make_bad_inputs.py

It writes every file but README.md (which lists them with the expected outcome). The zip bomb
takes about a minute (1 GiB of zeros through bzip2, to 1 KB). The builder functions (`text_pdf`,
`encrypted_pdf`, `docx_file`...) are also used by the ingest tests to write fresh files in a temp
folder.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

FIXED_TIME = datetime(2024, 1, 1, tzinfo=UTC)
CORPUS = Path(__file__).resolve().parent / "bad_inputs"


def text_pdf(path: Path, pages: Sequence[str | None], *, title: str | None = None, table_every: int = 0) -> Path:
    """A PDF with one page per entry: a heading and the entry's paragraph; None → an image-only page."""
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.set_creation_date(FIXED_TIME)
    if title:
        pdf.set_title(title)
    for number, body in enumerate(pages, start=1):
        pdf.add_page()
        if body is None:
            image = io.BytesIO()
            Image.new("L", (40, 40), color=128).save(image, format="PNG")
            pdf.image(image, x=20, y=20, w=80)
            continue
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 10, f"Section {number}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, body)
        if table_every and number % table_every == 1:
            with pdf.table() as table:
                for row in (("Product", "Price", "Stock"), ("Thermo T5", "129.00", "12"), ("Hub", "59.00", "40")):
                    cells = table.row()
                    for value in row:
                        cells.cell(value)
    pdf.output(str(path))
    return path


def encrypted_pdf(path: Path, source: Path, *, user_password: str = "secret") -> Path:
    """`source` encrypted with pypdf; an empty user password makes a permissions-only PDF."""
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=source)
    writer.encrypt(user_password, owner_password="owner")
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def docx_file(path: Path) -> Path:
    """A Word document with a title, headings, a list, a table and paragraphs."""
    import docx

    document = docx.Document()
    document.core_properties.created = FIXED_TIME.replace(tzinfo=None)
    document.add_heading("Returns policy", 0)
    document.add_heading("Scope", level=1)
    document.add_paragraph("Customers may return any item within thirty days.")
    document.add_paragraph("Keep the receipt", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for r, row in enumerate((("Product", "Price"), ("Thermo T5", "129"), ("Hub", "59"))):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Exceptions", level=2)
    document.add_paragraph("Opened software is final sale.")
    document.save(str(path))
    return path


def xxe_docx(path: Path, docx: bytes) -> Path:
    """A Word document whose document.xml declares an external entity (XXE) reading /etc/passwd."""
    with zipfile.ZipFile(io.BytesIO(docx)) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "word/document.xml":
                prolog, _, rest = data.partition(b"?>")
                data = prolog + b'?>\n<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + rest
                data = data.replace(b"Opened software is final sale.", b"&xxe;")
            target.writestr(member, data)
    return path


def xlsx_file(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """A workbook with the given sheets (rows of values)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    workbook.properties.created = workbook.properties.modified = FIXED_TIME.replace(tzinfo=None)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(str(path))
    return path


def zip_bomb(path: Path, gigabytes: int = 1) -> Path:
    """A DOCX-looking ZIP whose document part inflates from ~1 KB to `gigabytes` GiB of zeros."""
    content_types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'wordprocessingml.document.main+xml"/></Types>'
    )
    chunk = bytes(1 << 24)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("[Content_Types].xml", (1980, 1, 1, 0, 0, 0)), content_types)
        member = zipfile.ZipInfo("word/document.xml", (1980, 1, 1, 0, 0, 0))
        member.compress_type = zipfile.ZIP_BZIP2
        with archive.open(member, "w", force_zip64=True) as handle:
            for _ in range(gigabytes * 64):
                handle.write(chunk)
    return path


def message(
    sender: str, to: str, subject: str, body: str | None, message_id: str, reply_to: str | None = None
) -> bytes:
    """One e-mail as bytes (no body part at all when `body` is None)."""
    from email.message import EmailMessage
    from email.utils import format_datetime

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, subject
    mail["Date"] = format_datetime(FIXED_TIME)
    mail["Message-ID"] = message_id
    if reply_to:
        mail["In-Reply-To"] = mail["References"] = reply_to
    if body is not None:
        mail.set_content(body)
    return bytes(mail)


def mbox(messages: Sequence[bytes]) -> bytes:
    """An mbox file: each message after a "From " separator line, ">From " escaped."""
    parts = []
    for raw in messages:
        body = b"\n".join(b">" + line if line.startswith(b"From ") else line for line in raw.split(b"\n"))
        parts.append(b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n" + body.rstrip(b"\n") + b"\n\n")
    return b"".join(parts)


def build_corpus(folder: Path = CORPUS) -> None:
    """Write every file of the bad-input corpus except README.md."""
    folder.mkdir(parents=True, exist_ok=True)
    w = folder.joinpath

    def text(name: str, content: str, encoding: str = "utf-8") -> None:
        w(name).write_bytes(content.encode(encoding))

    # Good files: must be ingested.
    text("good-cp1252.csv", "name;city;note\nJosé;Málaga;café 10 €\nRenée;Zürich;“quoted” \u2013 naïve\n", "cp1252")
    text("good-utf8-bom.csv", '\ufeffquestion,answer\nWhat is Care+?,"Our warranty plan.\nIt lasts 2 years."\n')
    text_pdf(w("pdf-named.txt"), ["This PDF was saved with a .txt name; its content decides the reader."])
    xlsx_file(w("workbook-named.docx"), {"Orders": [["order", "total"], ["A-1", 9.5]]})
    text("name-..%2f..%2fescape.txt", "A file whose name tries to climb out of the workspace.\n")
    text(
        "escape-..\u2215..\u2215etc\u2215passwd.md",
        "# Division slashes\n\nThey look like path separators but are not.\n",
    )
    text(".hidden-is-skipped.md", "# Hidden\n\nHidden files inside a folder are not ingested.\n")

    # Bad files.
    w("empty.txt").write_bytes(b"")
    text("whitespace-only.md", "\n   \n\t\n")
    w("notes.xyz").write_bytes(b"a format no reader knows\n")
    good = text_pdf(w("half-scanned.pdf"), ["Page one has a text layer.", None])
    text_pdf(w("image-only.pdf"), [None, None])
    encrypted_pdf(w("encrypted.pdf"), good)
    data = good.read_bytes()
    w("truncated.pdf").write_bytes(data[: len(data) // 2])
    w("junk.pdf").write_bytes(b"JUNK\x00\x01\x02 this is not a PDF at all" * 8)
    w("junk.docx").write_bytes(b"\x00\x01junk bytes, not a ZIP package\xff" * 8)
    w("legacy-word.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    docx = docx_file(folder / "_tmp.docx").read_bytes()
    (folder / "_tmp.docx").unlink()
    w("truncated.docx").write_bytes(docx[: len(docx) // 2])
    xxe_docx(w("xxe.docx"), docx)
    zip_bomb(w("zip-bomb.docx"))
    text("csv-named.xlsx", "name,amount\nA,1\nB,2\n")
    xlsx_file(w("empty-workbook.xlsx"), {"Sheet1": []})
    text("ragged.csv", "question,answer\nOpen on Sunday?,No\nRefunds?,Yes,within 30 days\nShip abroad?,Yes\n")
    text("unclosed-quote.csv", 'question,answer\nOpen on Sunday?,No\nRefunds?,"Yes, within\nShip abroad?,Yes\n')
    text("no-header.csv", "1,2,3\n4,5,6\n")
    text("duplicate-header.csv", "name,name\nA,B\n")
    text("header-only.csv", "question,answer\n")
    text("malformed.jsonl", '{"id": 1, "text": "fine"}\n{"id": 2, "text": "broken\n{"id": 3, "text": "fine too"}\n')
    text("json-array.jsonl", '[\n  {"id": 1},\n  {"id": 2}\n]\n')
    w("no-body.eml").write_bytes(message("jane@example.com", "support@acme.example", "Help", None, "<nb@example.com>"))
    text("not-an-email.eml", "hello there\nthis is a note, not an e-mail\n")
    w("malformed.mbox").write_bytes(
        mbox(
            [
                message("jane@example.com", "support@acme.example", "Broken hub", "My hub is broken.", "<1@ex>"),
                b"this line is not a header\nnor is this one\n",
                message("care@acme.example", "jane@example.com", "Re: Broken hub", "Reset it.", "<2@ex>", "<1@ex>"),
            ]
        )
    )
    text(
        "only-scripts.html",
        "<html><head><script>var a = 1;</script><style>p{}</style></head>"
        "<body><nav>Home | About</nav><script>document.write('hi')</script></body></html>",
    )


if __name__ == "__main__":
    build_corpus()
    for file in sorted(CORPUS.iterdir()):
        print(f"{file.stat().st_size:>8}  {file.name}")
