"""The bad-input corpus (tests/assets/bad_inputs/, its README lists each file and the expected
outcome) ingested in one call: every bad file is reported clearly, the good ones are kept, nothing
is written for a failed file and nothing lands outside the workspace."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tailorlm.documents import load_documents
from tailorlm.ingest import ingest

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "bad_inputs"
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<status>\w+) \|(?P<detail>.*)\|$")


def expectations() -> dict[str, tuple[str, str]]:
    """{file name: (status, text the error or warning must contain)} from the corpus README."""
    rows = {}
    for line in (CORPUS / "README.md").read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            detail = match["detail"].strip()
            rows[match["name"]] = (match["status"], "" if detail.startswith("(") else detail)
    return rows


def write_generated(folder: Path) -> dict[str, tuple[str, str]]:
    """The corpus files made at test time (see the README), with their expected outcome."""
    folder.mkdir()
    (folder / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "long-line.md").write_text("word " * 400_000, encoding="utf-8")
    (folder / "long-field.csv").write_text('id,body\n1,"' + "x" * 1_000_000 + '"\n2,short\n', encoding="utf-8")
    (folder / "long-line.jsonl").write_text(json.dumps({"text": "y" * 1_000_000}) + "\n", encoding="utf-8")
    (folder / "link-to-passwd.txt").symlink_to("/etc/passwd")
    outside = folder.parent / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Not named by the user\n\nA file reached only through a link.\n")
    (folder / "link-to-folder").symlink_to(outside)
    return {
        "link-to-passwd.txt": ("failed", "a symbolic link to /etc/passwd: refused"),
        "link-to-folder": ("failed", f"a symbolic link to {outside}: refused"),
        "binary.md": ("failed", "binary content, not text"),
        "long-line.md": ("ingested", ""),
        "long-field.csv": ("ingested", ""),
        "long-line.jsonl": ("ingested", ""),
    }


def test_every_committed_file_is_listed_and_small():
    listed = set(expectations())
    present = {p.name for p in CORPUS.iterdir()}
    assert present == listed, f"not in README: {present - listed}; missing: {listed - present}"
    assert len(present) >= 20
    assert all(p.stat().st_size < 50_000 for p in CORPUS.iterdir())


def test_the_whole_corpus_in_one_call(workspace, tmp_path):
    generated = tmp_path / "generated"
    expected = {**expectations(), **write_generated(generated)}
    outside_before = sorted(p for p in tmp_path.rglob("*") if workspace.root not in p.parents)

    report = ingest(workspace, [CORPUS, generated])  # must not raise, whatever the files hold

    results = {Path(r.path).name: r for r in report.files}
    assert ".hidden-is-skipped.md" not in results
    for name, (status, detail) in expected.items():
        if status == "skipped":
            continue
        result = results[name]
        assert result.status == status, f"{name}: {result}"
        if status == "failed":
            assert result.documents == 0 and detail in (result.error or ""), f"{name}: {result.error}"
            if result.sha256:  # nothing written or registered for a failed file
                assert not workspace.documents_file(result.sha256).exists()
                assert not workspace.registry.find("document", hash=result.sha256)
        elif status == "partial":
            assert result.error is None and result.documents > 0
            assert any(detail in warning and name in warning for warning in result.warnings), result.warnings
        else:
            assert result.error is None and result.warnings == [] and result.documents > 0, f"{name}: {result}"
    assert len(results) == len([s for s, _ in expected.values() if s != "skipped"])
    assert not report.ok

    # Everything written is inside the workspace, named by content hash only.
    outside_after = sorted(p for p in tmp_path.rglob("*") if workspace.root not in p.parents)
    assert outside_after == outside_before
    stored = {p.name for p in workspace.documents_dir.iterdir()}
    kept = [r for r in report.files if r.status in ("ingested", "partial")]
    assert stored == {f"{r.sha256}.jsonl" for r in kept}
    documents = load_documents(workspace, [r.sha256 for r in kept])
    assert sum(r.documents for r in kept) == len(documents)

    # The PDF named .txt and the workbook named .docx went to the readers their content asks for.
    assert {d.reader for d in documents if Path(d.source_path).name == "pdf-named.txt"} == {"pdf"}
    assert {d.reader for d in documents if Path(d.source_path).name == "workbook-named.docx"} == {"xlsx"}
    cp1252 = [d.fields for d in documents if Path(d.source_path).name == "good-cp1252.csv"]
    assert cp1252[0] == {"name": "José", "city": "Málaga", "note": "café 10 €"}
    bom = [d.fields for d in documents if Path(d.source_path).name == "good-utf8-bom.csv"]
    assert bom == [{"question": "What is Care+?", "answer": "Our warranty plan.\nIt lasts 2 years."}]

    event = workspace.audit.events()[-1]
    assert event["action"] == "ingest"
    assert {Path(f["path"]).name for f in event["details"]["failed"]} == {
        name for name, (status, _) in expected.items() if status == "failed"
    }
