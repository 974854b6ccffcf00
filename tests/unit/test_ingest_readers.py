"""Each reader on real files written here (fpdf2 PDFs, python-docx, openpyxl, stdlib e-mail and CSV):
text, fields, locators, provenance, and the parts a reader skips."""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

import pytest

from tailorlm.documents import ReadError
from tailorlm.ingest import read_file
from tailorlm.ingest.email_reader import strip_reply
from tailorlm.ingest.readers import reader_for
from tailorlm.workspace import sha256_file

_spec = importlib.util.spec_from_file_location(
    "make_bad_inputs", Path(__file__).resolve().parents[1] / "assets" / "make_bad_inputs.py"
)
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)  # the file builders shared with the bad-input corpus


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --- Markdown and text ---------------------------------------------------------------------------


def test_markdown_front_matter_becomes_meta_and_title(tmp_path):
    path = write(
        tmp_path / "terms.md", "---\ntitle: Terms of Service\nversions:\n  fpt: '*'\n---\n\n# Summary\n\nBe nice.\n"
    )
    [document], skipped = read_file(path)
    assert skipped == []
    assert document.title == "Terms of Service"
    assert document.text == "# Summary\n\nBe nice."
    assert document.meta == {
        "encoding": "utf-8",
        "front_matter": {"title": "Terms of Service", "versions": {"fpt": "*"}},
    }
    assert (document.reader, document.locator) == ("markdown", "")
    assert document.source_path == str(path) and document.source_sha256 == sha256_file(path)


def test_markdown_title_is_first_heading_outside_code_fences(tmp_path):
    text = "Intro line\n\n```python\n# not a heading\n```\n\nReturns policy\n==============\n\n## Later\n"
    [document], _ = read_file(write(tmp_path / "a.md", text))
    assert document.title == "Returns policy"
    assert document.text == text.strip("\n")  # the text is kept as written


def test_text_file_in_a_legacy_encoding_with_windows_newlines(tmp_path):
    [document], _ = read_file(write(tmp_path / "note.txt", "Grüße aus München\r\nPreis: 10 €\r\n", "cp1252"))
    assert document.text == "Grüße aus München\nPreis: 10 €"
    assert document.meta["encoding"] == "cp1252"
    assert document.title is None


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_rows_fields_locators_and_multiline_quoted_fields(tmp_path):
    path = write(
        tmp_path / "faq.csv",
        'question,answer,tags\n"What is Care+?","Our plan.\nIt lasts ""two"" years.",warranty\n\nOpen Sunday?,No,\n',
    )
    documents, skipped = read_file(path)
    assert skipped == []
    assert [d.locator for d in documents] == ["row 1", "row 2"]
    assert documents[0].fields == {
        "question": "What is Care+?",
        "answer": 'Our plan.\nIt lasts "two" years.',
        "tags": "warranty",
    }
    assert documents[0].text == 'question: What is Care+?\nanswer: Our plan.\nIt lasts "two" years.\ntags: warranty'
    assert documents[1].text == "question: Open Sunday?\nanswer: No"  # empty values are left out of the text
    assert [d.meta["line"] for d in documents] == [2, 5]
    assert documents[0].meta["delimiter"] == "," and documents[0].reader == "csv"
    assert len({d.id for d in documents}) == 2


@pytest.mark.parametrize(
    ("name", "data", "delimiter", "encoding"),
    [
        ("semicolons.csv", "name;city\nJosé;Málaga\nRenée;Zürich\n".encode("cp1252"), ";", "cp1252"),
        ("tabs.tsv", "\ufeffname\tcity\nJosé\tMálaga\nRenée\tZürich\n".encode(), "\t", "utf-8-sig"),
        ("pipes.csv", "name|city\nJosé|Málaga\nRenée|Zürich\n".encode("latin-1"), "|", "cp1252"),
        ("utf16.tsv", "name\tcity\nJosé\tMálaga\nRenée\tZürich\n".encode("utf-16"), "\t", "utf-16"),
    ],
)
def test_csv_delimiter_and_encoding_are_detected(tmp_path, name, data, delimiter, encoding):
    (tmp_path / name).write_bytes(data)
    documents, _ = read_file(tmp_path / name)
    assert [d.fields for d in documents] == [{"name": "José", "city": "Málaga"}, {"name": "Renée", "city": "Zürich"}]
    assert (documents[0].meta["delimiter"], documents[0].meta["encoding"]) == (delimiter, encoding)


def test_csv_ragged_and_badly_quoted_rows_are_skipped_and_reported(tmp_path):
    path = write(tmp_path / "t.csv", 'a,b\n1,2\n3,4,5\n6,"q"x\n7,8\n')
    documents, skipped = read_file(path)
    assert [d.fields["a"] for d in documents] == ["1", "7"]
    assert [d.locator for d in documents] == ["row 1", "row 4"]  # skipped rows keep their numbers
    assert skipped[0] == "t.csv line 3 (row 2): 3 fields, the header has 2 — row skipped"
    assert skipped[1].startswith("t.csv line 4 (row 3): ") and skipped[1].endswith("row skipped")


def test_csv_delimiter_option_overrides_the_sniffer(tmp_path):
    path = write(tmp_path / "t.csv", "a;b,c\n1;2,3\n")
    [document], _ = read_file(path, delimiter=";")
    assert document.fields == {"a": "1", "b,c": "2,3"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a,,c\n1,2,3\n", "header column 2 has no name"),
        ("2024,2025\n1,2\n", "a header row is required"),
        ("a,a\n1,2\n", "'a' appears twice"),
        ("a,b\n", "no data rows"),
        ("a,b\n1\n2\n", "no readable rows: all 2 rows were skipped"),
    ],
)
def test_csv_errors(tmp_path, text, error):
    with pytest.raises(ReadError, match=error):
        read_file(write(tmp_path / "bad.csv", text))


# --- XLSX ----------------------------------------------------------------------------------------


def test_xlsx_rows_of_every_sheet(tmp_path):
    from datetime import date

    path = build.xlsx_file(
        tmp_path / "book.xlsx",
        {
            "Orders": [
                [None],
                ["order", "date", "total", "paid"],
                ["A-1", date(2024, 1, 5), 9.5, True],
                [],
                ["A-2", None, 3],
            ],
            "Empty": [],
            "Notes": [["note"], ["call back"]],
        },
    )
    documents, skipped = read_file(path)
    assert skipped == []
    assert [d.locator for d in documents] == ["sheet Orders row 3", "sheet Orders row 5", "sheet Notes row 2"]
    assert documents[0].fields == {"order": "A-1", "date": "2024-01-05T00:00:00", "total": 9.5, "paid": True}
    assert documents[1].fields == {"order": "A-2", "date": None, "total": 3, "paid": None}
    assert documents[1].text == "order: A-2\ntotal: 3"
    assert documents[2].meta == {"sheet": "Notes", "row": 2} and documents[2].reader == "xlsx"


def test_xlsx_bad_sheet_and_overlong_row_are_skipped(tmp_path):
    path = build.xlsx_file(
        tmp_path / "book.xlsx",
        {"Good": [["a", "b"], [1, 2], [3, 4, "extra"]], "NoHeader": [[1, 2], [3, 4]]},
    )
    documents, skipped = read_file(path)
    assert [d.locator for d in documents] == ["sheet Good row 2"]
    assert skipped == [
        "book.xlsx sheet Good row 3: values beyond the header's 2 columns — row skipped",
        "book.xlsx sheet NoHeader row 1: a header row is required, but the first row looks like data "
        "(all numbers: ['1', '2']) — sheet skipped",
    ]


# --- PDF -----------------------------------------------------------------------------------------

PAGES = ["Customers may return any item within thirty days.", "Opened software is final sale."]


@pytest.fixture
def text_pdf(tmp_path: Path) -> Path:
    return build.text_pdf(tmp_path / "policy.pdf", PAGES, title="Returns policy", table_every=2)


def test_pdf_one_document_per_page(text_pdf):
    documents, skipped = read_file(text_pdf)
    assert skipped == []
    assert [d.locator for d in documents] == ["page 1", "page 2"]
    assert documents[0].text.startswith("Section 1\nCustomers may return any item within thirty days.")
    assert "Thermo T5 129.00 12" in documents[0].text  # the table's cells, row by row
    assert documents[1].meta == {"pages": 2, "engine": "pypdf", "page": 2}
    assert {d.title for d in documents} == {"Returns policy"}
    assert documents[0].source_sha256 == sha256_file(text_pdf)


def test_pdf_docling_engine_reads_the_same_text_without_any_download(text_pdf):
    from tailorlm import offline

    offline.enforce()  # the socket guard: a hub download would fail the conversion
    pypdf_documents, _ = read_file(text_pdf)
    documents, skipped = read_file(text_pdf, engine="docling")
    assert skipped == [] and [d.locator for d in documents] == ["page 1", "page 2"]
    for ours, theirs in zip(documents, pypdf_documents, strict=True):
        assert ours.text.split() == theirs.text.split()
    assert documents[0].meta["engine"] == "docling"
    hf_home = Path(os.environ["HF_HOME"])
    assert not hf_home.exists() or not any(hf_home.rglob("*"))  # nothing fetched into the model cache


def test_pdf_page_without_text_is_reported_and_all_image_pdf_needs_ocr(tmp_path):
    documents, skipped = read_file(build.text_pdf(tmp_path / "half.pdf", ["Text on page one.", None, "Page three."]))
    assert [d.locator for d in documents] == ["page 1", "page 3"]
    assert skipped == ["half.pdf page 2: no text layer, only images (needs OCR) — page skipped"]
    with pytest.raises(ReadError, match="needs OCR: no text layer on any page"):
        read_file(build.text_pdf(tmp_path / "scan.pdf", [None]))


def test_pdf_encrypted_is_refused_unless_only_permissions_are_protected(text_pdf, tmp_path):
    with pytest.raises(ReadError, match="encrypted PDF: it needs a password"):
        read_file(build.encrypted_pdf(tmp_path / "locked.pdf", text_pdf))
    documents, _ = read_file(build.encrypted_pdf(tmp_path / "permissions.pdf", text_pdf, user_password=""))
    assert len(documents) == 2


def test_pdf_truncated_and_junk(text_pdf, tmp_path):
    data = text_pdf.read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 3])
    with pytest.raises(ReadError, match="truncated or corrupt PDF"):
        read_file(tmp_path / "cut.pdf")
    (tmp_path / "junk.pdf").write_bytes(b"GIF89a not a pdf")
    with pytest.raises(ReadError, match=r"not a PDF \(file starts with b'GIF89a.*a GIF image"):
        read_file(tmp_path / "junk.pdf")


# --- DOCX ----------------------------------------------------------------------------------------


def test_docx_headings_lists_and_tables_become_markdown(tmp_path):
    [document], skipped = read_file(build.docx_file(tmp_path / "policy.docx"))
    assert skipped == [] and document.reader == "docx" and document.title == "Returns policy"
    text = document.text
    for line in (
        "# Returns policy",
        "## Scope",
        "### Exceptions",
        "- Keep the receipt",
        "Opened software is final sale.",
    ):
        assert line in text.split("\n"), line
    table = [line for line in text.split("\n") if line.startswith("|")]
    assert [cell.strip() for cell in table[0].strip("|").split("|")] == ["Product", "Price"]
    assert set(table[1]) <= set("|-: ") and "Thermo T5" in table[2]


def test_docx_zip_bombs_are_refused_before_extraction(tmp_path, monkeypatch):
    import tailorlm.ingest.docx as docx_reader

    def must_not_run(*args, **kwargs):
        raise AssertionError("the package was handed to docling")

    monkeypatch.setattr(docx_reader, "docling_convert", must_not_run)
    bomb = Path(__file__).resolve().parents[1] / "assets" / "bad_inputs" / "zip-bomb.docx"
    with pytest.raises(ReadError, match="declares 1,024 MB uncompressed, over the 500 MB limit; possible zip bomb"):
        read_file(bomb)
    dense = tmp_path / "dense.docx"  # under the size limit, but 20 MB of zeros in 20 KB
    with zipfile.ZipFile(dense, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types>wordprocessingml.document.main</Types>")
        archive.writestr("word/document.xml", bytes(20 << 20))
    with pytest.raises(ReadError, match=r"part 'word/document.xml' of the DOCX expands [\d,]+x"):
        read_file(dense)


def test_docx_junk_is_a_clear_error(tmp_path):
    (tmp_path / "junk.docx").write_bytes(b"%!PS-Adobe junk")
    with pytest.raises(ReadError, match=r"not a DOCX file: not a ZIP package \(file starts with b'%!PS"):
        read_file(tmp_path / "junk.docx")


# --- HTML ----------------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Returns | Acme</title><style>p {color: red}</style></head>
<body><header>Acme logo</header><nav><a href="/">Home</a></nav>
<main><h1>Returns</h1><p>Return items within <b>30 days</b>.<br>Keep the receipt.</p>
<h2>Fees</h2><ul><li>Free for members</li><li>Others pay <i>5 €</i></li></ul>
<table><tr><th>Item</th><th>Days</th></tr><tr><td>Hub</td><td>30</td></tr></table>
<script>track()</script><div hidden>secret</div></main>
<aside>Related links</aside><footer>© Acme</footer></body></html>"""


def test_html_main_content_as_markdown(tmp_path):
    [document], _ = read_file(write(tmp_path / "returns.html", PAGE))
    assert document.title == "Returns | Acme"
    assert document.text == (
        "# Returns\n\nReturn items within 30 days.\nKeep the receipt.\n\n## Fees\n\n- Free for members\n- Others pay 5 €"
        "\n\n| Item | Days |\n| --- | --- |\n| Hub | 30 |"
    )


def test_html_without_main_uses_articles_or_body(tmp_path):
    page = (
        "<html><body><header>Site</header><nav>menu</nav><article><header><h2>One</h2></header><p>First.</p>"
        "</article><article><p>Second.</p><footer>By Ann</footer></article><footer>Legal</footer></body></html>"
    )
    [document], _ = read_file(write(tmp_path / "a.htm", page))
    assert document.text == "## One\n\nFirst.\n\nSecond.\n\nBy Ann"  # an article's own header and footer stay
    assert document.title is None
    [document], _ = read_file(write(tmp_path / "b.html", "<p>Just a paragraph</p> and loose text"))
    assert document.text == "Just a paragraph\n\nand loose text"


# --- E-mail --------------------------------------------------------------------------------------


def test_strip_reply_removes_quotes_attributions_and_signatures():
    body = (
        "Thanks, that worked.\n\nOn Mon, 1 Jan 2024 at 10:00, Jane Roe <jane@example.com>\nwrote:\n"
        "> Have you tried turning it off?\n> \n\nBest,\nBob\n-- \nBob, Acme support\n+1 555 0100\n"
    )
    assert strip_reply(body) == "Thanks, that worked.\n\nBest,\nBob"
    outlook = "See below.\n\nFrom: Jane\nSent: Monday\nTo: Bob\nSubject: Hub\n\nOld text"
    assert strip_reply(outlook) == "See below."
    assert strip_reply("Fine.\n-----Original Message-----\nOld") == "Fine."
    assert strip_reply("Am 1. Jan. 2024 schrieb Jana:\n> Hallo\nDanke!") == "Danke!"
    assert strip_reply("On time delivery matters to us.\nThanks") == "On time delivery matters to us.\nThanks"


def support_mbox(path: Path) -> Path:
    path.write_bytes(
        build.mbox(
            [
                build.message(
                    "Jane <jane@gmail.com>", "support@acme.example", "Hub", "My hub is offline.", "<1@gmail.com>"
                ),
                build.message(
                    "Bob <bob@help.acme.example>",
                    "jane@gmail.com",
                    "Re: Hub",
                    "Please restart it.\n\nOn Monday Jane wrote:\n> My hub is offline.\n",
                    "<2@acme.example>",
                    "<1@gmail.com>",
                ),
                build.message(
                    "Jane <jane@gmail.com>", "support@acme.example", "Re: Hub", "> quoted only\n", "<3@gmail.com>"
                ),
                build.message(
                    "Sam <sam@mail.example>", "support@acme.example", "Invoice", "From now on, bill me.", "<4@x>"
                ),
            ]
        )
    )
    return path


def test_mbox_messages_roles_threads_and_skipped_bodies(tmp_path):
    path = support_mbox(tmp_path / "support.mbox")
    documents, skipped = read_file(path)
    assert [d.locator for d in documents] == ["message 1", "message 2", "message 4"]
    assert skipped == [
        "support.mbox message 3 <3@gmail.com> (line 30): no body text "
        "(after removing quoted replies and the signature) — skipped"
    ]
    first, reply, other = documents
    assert first.fields["role"] == "customer" and reply.fields["role"] == "agent"  # help.acme.example is the company
    assert reply.text == "Please restart it."
    assert reply.fields["in_reply_to"] == "<1@gmail.com>" and reply.fields["references"] == ["<1@gmail.com>"]
    assert first.fields["thread_id"] == reply.fields["thread_id"] == "<1@gmail.com>"
    assert other.fields["thread_id"] == "<4@x>" and other.text == "From now on, bill me."  # ">From " unescaped
    assert first.fields["date"] == "2024-01-01T00:00:00+00:00" and first.title == "Hub"
    assert first.meta["company_domains"] == ["acme.example"] and first.meta["role_rule"].startswith("inferred")


def test_mbox_company_domains_option_and_content_sniffing(tmp_path):
    path = support_mbox(tmp_path / "export.txt")  # an mbox with a .txt name is still an mbox
    documents, _ = read_file(path, company_domains=["gmail.com"])
    assert [d.fields["role"] for d in documents] == ["agent", "customer", "customer"]
    assert documents[0].meta == {"company_domains": ["gmail.com"], "role_rule": "given (company_domains)", "line": 1}
    documents, _ = read_file(path, company_domains="mail.example")  # one domain as a plain string
    assert [d.fields["role"] for d in documents] == ["customer", "customer", "agent"]


def test_eml_with_html_body_and_attachment(tmp_path):
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "care@acme.example", "jane@example.com", "Your return"
    mail["Message-ID"] = "<r1@acme.example>"
    mail.set_content(
        "<html><body><p>Your refund is <b>on its way</b>.</p><footer>Acme</footer></body></html>", subtype="html"
    )
    mail.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="label.pdf")
    (tmp_path / "r.eml").write_bytes(bytes(mail))
    [document], _ = read_file(tmp_path / "r.eml", company_domains=["acme.example"])
    assert document.text == "Your refund is on its way."
    assert document.fields["role"] == "agent" and document.fields["thread_id"] == "<r1@acme.example>"
    assert document.meta["attachments"] == ["label.pdf"] and "line" not in document.meta


# --- JSONL ---------------------------------------------------------------------------------------


def test_jsonl_records_lines_and_malformed_lines(tmp_path):
    path = write(
        tmp_path / "r.jsonl",
        '{"key": "X1", "entities": {"total": "9.00"}}\n\n{oops}\n[1]\n{"key": "X2", "text": "hi"}\n',
    )
    documents, skipped = read_file(path)
    assert [d.locator for d in documents] == ["line 1", "line 5"]
    assert documents[0].fields == {"key": "X1", "entities": {"total": "9.00"}}
    assert documents[0].text == 'key: X1\nentities: {"total": "9.00"}'
    assert skipped == [
        "r.jsonl line 3, column 2: malformed JSON (Expecting property name enclosed in double quotes) — line skipped",
        "r.jsonl line 4: expected a JSON object, got list — line skipped",
    ]
    documents, skipped = read_file(path, text_field="text")
    assert [d.text for d in documents] == ["hi"] and "r.jsonl line 1: no text in field 'text' — line skipped" in skipped


# --- choosing a reader ---------------------------------------------------------------------------


def test_content_decides_before_the_extension(tmp_path, text_pdf):
    cases = {
        "report.txt": (text_pdf.read_bytes(), "pdf"),
        "policy.bin": (build.docx_file(tmp_path / "d.docx").read_bytes(), "docx"),
        "book.docx": (build.xlsx_file(tmp_path / "b.xlsx", {"S": [["a"], [1]]}).read_bytes(), "xlsx"),
        "inbox.txt": (b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\nFrom: a@b\n\nhi\n", "email"),
        "letter.md": (b"From the desk of the CEO\n\nHello.\n", "markdown"),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert reader_for(tmp_path / name, data[:8192]).name == expected, name


def test_read_file_checks_the_options_of_the_reader_it_picks(text_pdf):
    with pytest.raises(ValueError, match=r"reader_options\['pdf'\]\['engine'\] must be 'pypdf' or 'docling'"):
        read_file(text_pdf, engine="ocr")
    with pytest.raises(ValueError, match=r"reader_options\['pdf'\]: no option 'delimiter'"):
        read_file(text_pdf, delimiter=";")
