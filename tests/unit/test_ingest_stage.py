"""The ingest stage: folder walking, per-file outcomes, storage by content hash, unchanged re-ingest,
registry rows, the audit event, and the checks on its arguments."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from tailorlm.documents import Document, FileResult, IngestReport, load_documents
from tailorlm.ingest import ingest
from tailorlm.ingest.readers import READERS, reader
from tailorlm.progress import LogProgress
from tailorlm.registry import DocumentMeta
from tailorlm.workspace import NotFound, read_jsonl, sha256_file


def company_folder(root: Path) -> Path:
    """docs/ with Markdown, a hidden file and folder, a FAQ CSV and a JSONL file."""
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / ".git").mkdir()
    (root / "docs" / "b.md").write_text("# Beta\n\nSecond doc.\n", encoding="utf-8")
    (root / "docs" / "a.md").write_text("# Alpha\n\nFirst doc.\n", encoding="utf-8")
    (root / "docs" / "sub" / "c.txt").write_text("Third doc.\n", encoding="utf-8")
    (root / "docs" / ".draft.md").write_text("# Draft\n", encoding="utf-8")
    (root / "docs" / ".git" / "config.md").write_text("# Git\n", encoding="utf-8")
    (root / "faq.csv").write_text("question,answer\nOpen Sunday?,No\nRefunds?,Within 30 days\n", encoding="utf-8")
    (root / "records.jsonl").write_text('{"id": 1}\n{"id": 2}\n{"id": 3}\n', encoding="utf-8")
    return root


def test_ingest_folders_and_files(workspace, tmp_path):
    root = company_folder(tmp_path / "company")
    log = io.StringIO()
    progress = LogProgress(Console(file=log), interval=0)
    report = ingest(workspace, [root / "docs", root / "faq.csv", str(root / "records.jsonl")], progress=progress)

    assert isinstance(report, IngestReport) and report.ok and report.documents == 3 + 2 + 3
    names = [Path(r.path).relative_to(root).as_posix() for r in report.files]
    assert names == ["docs/a.md", "docs/b.md", "docs/sub/c.txt", "faq.csv", "records.jsonl"]  # sorted, hidden skipped
    assert [r.status for r in report.files] == ["ingested"] * 5
    assert [line.split(" · ")[0] for line in log.getvalue().splitlines()] == [
        f"ingest 3 paths: {i}/5 files ({i * 20}%)" for i in range(1, 6)
    ]

    faq = report.files[3]
    assert faq == FileResult(str(root / "faq.csv"), "ingested", sha256_file(root / "faq.csv"), 2)
    stored = workspace.documents_file(faq.sha256)
    assert stored.parent == workspace.documents_dir and stored.name == f"{faq.sha256}.jsonl"
    documents = load_documents(workspace, [faq.sha256])
    assert [d.locator for d in documents] == ["row 1", "row 2"]
    assert all(d.source_path == str(root / "faq.csv") and d.source_sha256 == faq.sha256 for d in documents)
    assert documents[1].fields == {"question": "Refunds?", "answer": "Within 30 days"}
    assert documents == [Document.from_json(row) for row in read_jsonl(stored)]

    artifact = workspace.registry.get(f"doc-{faq.sha256[:16]}")
    assert (artifact.kind, artifact.name, artifact.hash, artifact.status) == (
        "document",
        "faq.csv",
        faq.sha256,
        "complete",
    )
    assert artifact.path == f"documents/{faq.sha256}.jsonl"
    assert artifact.meta == DocumentMeta(
        source_path=str(root / "faq.csv"), reader="csv", documents=2, bytes=(root / "faq.csv").stat().st_size
    )
    assert len(workspace.registry.find("document")) == 5

    [event] = workspace.audit.events()
    assert event["action"] == "ingest"
    assert event["inputs"] == [r.path for r in report.files]
    assert event["outputs"] == [f"doc-{r.sha256[:16]}" for r in report.files]
    assert event["details"]["failed"] == [] and event["details"]["documents"] == 8
    assert event["details"]["counts"] == {"ingested": 5}
    assert workspace.audit.verify()[0]


def test_reingest_is_unchanged_until_content_or_options_change(workspace, tmp_path):
    root = company_folder(tmp_path / "company")
    first = ingest(workspace, [root])
    stored = {p: p.stat().st_mtime_ns for p in workspace.documents_dir.iterdir()}

    again = ingest(workspace, [root])
    assert [r.status for r in again.files] == ["unchanged"] * len(first.files)
    assert [r.documents for r in again.files] == [
        r.documents for r in first.files
    ] and again.documents == first.documents
    assert {p: p.stat().st_mtime_ns for p in workspace.documents_dir.iterdir()} == stored  # nothing rewritten
    assert len(workspace.registry.find("document")) == len(first.files)
    events = workspace.audit.events()
    assert len(events) == 2 and events[1]["details"]["counts"] == {"unchanged": len(first.files)}
    assert events[1]["outputs"] == events[0]["outputs"]

    (root / "faq.csv").write_text("question,answer\nOpen Sunday?,Yes now\n", encoding="utf-8")
    changed = ingest(workspace, [root / "faq.csv", root / "records.jsonl"])
    assert [r.status for r in changed.files] == ["ingested", "unchanged"]
    assert len(workspace.registry.find("document")) == len(first.files) + 1  # the old version is kept

    reread = ingest(workspace, [root / "records.jsonl"], reader_options={"jsonl": {"text_field": "id"}})
    assert reread.files[0].status == "failed"  # other settings: read again (and "id" holds no text)


def test_same_content_twice_in_one_call(workspace, tmp_path):
    (tmp_path / "a.md").write_text("# Same\n", encoding="utf-8")
    (tmp_path / "copy.md").write_text("# Same\n", encoding="utf-8")
    report = ingest(workspace, [tmp_path])  # tmp_path also holds the workspace (ws/): never ingested
    assert [Path(r.path).name for r in report.files] == ["a.md", "copy.md"]
    assert [r.status for r in report.files] == ["ingested", "unchanged"]
    assert report.files[0].sha256 == report.files[1].sha256


def test_failures_are_recorded_and_the_rest_continues(workspace, tmp_path):
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "big.md").write_text("x" * 3000, encoding="utf-8")
    (tmp_path / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "ok.md").write_text("Fine.\n", encoding="utf-8")
    report = ingest(workspace, [tmp_path, tmp_path / "missing.pdf"], max_file_mb=0.002)

    results = {Path(r.path).name: r for r in report.files}
    assert results["empty.md"].error == "empty file"
    assert results["big.md"].error == "file is 0.0 MB, over the 0.002 MB limit (max_file_mb)"
    assert results["photo.heic"].error.startswith("no reader for '.heic' files (readable: .csv, .docx")
    assert results["missing.pdf"].error == "no such file or folder"
    assert results["ok.md"].status == "ingested"
    assert not report.ok and report.documents == 1
    assert len(list(workspace.documents_dir.iterdir())) == 1
    failed = workspace.audit.events()[-1]["details"]["failed"]
    assert {Path(f["path"]).name for f in failed} == {"empty.md", "big.md", "photo.heic", "missing.pdf"}


def test_a_reader_bug_is_a_failed_file_not_a_crash(workspace, tmp_path):
    @reader(".boom")
    def read_boom(path: Path):
        yield from ()
        raise KeyError("surprise")

    try:
        (tmp_path / "x.boom").write_text("data", encoding="utf-8")
        (tmp_path / "y.md").write_text("Fine.\n", encoding="utf-8")
        report = ingest(workspace, [tmp_path])
    finally:
        del READERS["boom"]
    assert [r.status for r in report.files] == ["failed", "ingested"]
    assert report.files[0].error == "the boom reader failed unexpectedly: KeyError: 'surprise'"


def test_odd_file_names_stay_inside_the_workspace(workspace, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    names = ["..%2f..%2fescape.md", "..\u2215..\u2215etc\u2215passwd.md", "new\nline.md", "-rf *.md"]
    for number, name in enumerate(names):
        (source / name).write_text(f"Document {number}.\n", encoding="utf-8")
    before = sorted(tmp_path.parent.iterdir())
    report = ingest(workspace, [source / name for name in names])  # named explicitly: hidden ones are read too

    assert [r.status for r in report.files] == ["ingested"] * 4
    assert sorted(tmp_path.parent.iterdir()) == before
    assert sorted(p.name for p in workspace.documents_dir.iterdir()) == sorted(
        f"{r.sha256}.jsonl" for r in report.files
    )
    assert sorted(a.name for a in workspace.registry.find("document")) == sorted(names)
    with pytest.raises(ValueError, match="not a sha256 content hash"):
        load_documents(workspace, ["../../etc/passwd"])
    with pytest.raises(NotFound, match="no documents ingested for"):
        load_documents(workspace, ["0" * 64])


def test_partial_files_keep_their_warnings(workspace, tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3\n4,5\n", encoding="utf-8")
    [result] = ingest(workspace, [tmp_path / "t.csv"]).files
    assert (result.status, result.documents, result.error) == ("partial", 2, None)
    assert result.warnings == ["t.csv line 3 (row 2): 1 fields, the header has 2 — row skipped"]
    assert workspace.registry.get(f"doc-{result.sha256[:16]}").meta_as(DocumentMeta).warnings == result.warnings
    assert workspace.audit.events()[-1]["details"]["partial"] == [{"path": result.path, "warnings": result.warnings}]
    [again] = ingest(workspace, [tmp_path / "t.csv"]).files
    assert (again.status, again.warnings) == ("unchanged", result.warnings)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"word": {}}, r"reader_options: no reader named 'word' \(readers: csv, docx, email"),
        ({"pdf": {"engin": "docling"}}, r"reader_options\['pdf'\]: no option 'engin' \(options: engine\)"),
        ({"pdf": {"engine": "ocr"}}, r"reader_options\['pdf'\]\['engine'\] must be 'pypdf' or 'docling' \(got 'ocr'\)"),
        ({"csv": ";"}, r"reader_options\['csv'\] must map option names to values"),
    ],
)
def test_reader_options_are_checked_before_anything_is_read(workspace, tmp_path, options, error):
    (tmp_path / "a.md").write_text("Fine.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        ingest(workspace, [tmp_path], reader_options=options)
    assert workspace.audit.events() == [] and not list(workspace.documents_dir.iterdir())


def test_stored_documents_are_json_lines(workspace, tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\nBody with “quotes” and é.\n", encoding="utf-8")
    [result] = ingest(workspace, [tmp_path]).files
    [row] = [
        json.loads(line) for line in workspace.documents_file(result.sha256).read_text(encoding="utf-8").splitlines()
    ]
    assert row["text"] == "# Title\n\nBody with “quotes” and é." and row["title"] == "Title"
    assert set(row) == {"text", "source_path", "source_sha256", "locator", "reader", "title", "fields", "meta", "id"}
