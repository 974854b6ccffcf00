"""Ingest real public data (../shared/data, skipped when absent): 58 Markdown files of site policy,
an FAQ CSV with quoted multi-line answers, and SROIE receipts as JSON Lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailorlm.documents import load_documents
from tailorlm.ingest import ingest
from tailorlm.workspace import sha256_file

pytestmark = pytest.mark.integration


def test_site_policy_markdown(workspace, shared_data):
    folder = shared_data / "site_policy"
    report = ingest(workspace, [folder])
    # 57 policies and LICENSE.md, plus SOURCE.txt (plain text goes through the same reader).
    assert report.ok and len(report.files) == 59 and report.documents == 59
    assert sum(r.path.endswith(".md") for r in report.files) == 58
    assert {r.status for r in report.files} == {"ingested"}
    documents = load_documents(workspace, [r.sha256 for r in report.files])
    for result, document in zip(report.files, documents, strict=True):
        path = Path(result.path)
        assert path.is_relative_to(folder) and document.source_path == str(path)
        assert document.source_sha256 == result.sha256 == sha256_file(path)
        assert document.reader == "markdown"
        if "Policies" in path.parts:
            assert document.title and document.meta["front_matter"]["title"] == document.title
            assert not document.text.startswith("---")  # the front matter is in meta, not in the text
    terms = next(d for d in documents if d.source_path.endswith("github-terms-of-service.md"))
    assert terms.title == "GitHub Terms of Service" and "## Summary" in terms.text
    assert len(workspace.registry.find("document")) == 59
    assert {r.status for r in ingest(workspace, [folder]).files} == {"unchanged"}


def test_faq_csv_with_multiline_answers(workspace, shared_data):
    path = shared_data / "faq_official" / "faq_covidbert_en.csv"
    [result] = ingest(workspace, [path]).files
    assert (result.status, result.documents, result.warnings) == ("ingested", 213, [])
    documents = load_documents(workspace, [result.sha256])
    assert [d.locator for d in documents] == [f"row {n}" for n in range(1, 214)]
    assert set(documents[0].fields) == {
        "question", "answer", "answer_html", "link", "name", "source", "category", "country", "region", "city",
        "lang", "last_update",
    }  # fmt: skip
    assert documents[0].fields["question"] == "What is a novel coronavirus?"
    assert sum("\n" in d.fields["answer"] for d in documents) > 50  # quoted multi-line answers kept whole
    assert sum(d.fields["source"].startswith("Center for Disease Control") for d in documents) == 111
    assert {d.source_path for d in documents} == {str(path)}


def test_sroie_jsonl(workspace, shared_data):
    path = shared_data / "sroie_train" / "train_kie.jsonl"
    [result] = ingest(workspace, [path]).files
    assert (result.status, result.documents) == ("ingested", 626)
    documents = load_documents(workspace, [result.sha256])
    assert documents[0].locator == "line 1" and documents[-1].locator == "line 626"
    assert all(set(d.fields) == {"key", "ocr_text", "entities"} for d in documents)
    assert documents[0].fields["entities"]["company"] == "ABC HO TRADING"
    assert {d.source_sha256 for d in documents} == {sha256_file(path)}
