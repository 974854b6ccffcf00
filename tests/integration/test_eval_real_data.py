"""Evaluate on real public data (../shared/data): SROIE receipts (extract) and official FAQs (chat),
prepared by the real `prepare` stage, answered by the tiny model. Scores are ~0 by design: the tiny
model knows nothing; what is tested is that real data goes through the whole pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tailorlm.config import parse_project
from tailorlm.evaluate import compare, evaluate
from tailorlm.ingest import ingest
from tailorlm.prepare import prepare
from tailorlm.registry import EvaluationMeta
from tailorlm.workspace import Workspace, read_jsonl

pytestmark = pytest.mark.integration


def test_sroie_extraction_through_the_pipeline(
    shared_data: Path, tiny_model_dir: Path, workspace: Workspace, tmp_path: Path
) -> None:
    receipts = tmp_path / "receipts.jsonl"
    lines = (shared_data / "sroie_train" / "train_kie.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    receipts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    project = parse_project(
        {
            "project": "receipts",
            "base_model": str(tiny_model_dir),
            "task": "extract",
            "sources": [{"path": str(receipts), "kind": "extraction", "input": "ocr_text", "fields": ["entities"]}],
            "prepare": {"pii": "off", "split": {"test": 0.2, "val": 0.05, "by": "example"}},
            "evaluate": {
                "baselines": ["base", "few_shot"],
                "few_shot_k": 1,
                "max_new_tokens": 12,
                "limit": 4,
                "objectives": {"field_f1": 0.9},
            },
        },
        root=tmp_path,
    )
    dataset = prepare(workspace, project, ingest=ingest).dataset
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- input: 'ACME SDN BHD\\nTOTAL: RM 9.00\\n25/12/2018'\n"
        "  expected: {company: ACME SDN BHD, total: '9.00', date: 25/12/2018}\n"
        "  json_schema: {type: object, required: [company, total]}\n"
        "  tags: [hand-written]\n",
        encoding="utf-8",
    )
    result = evaluate(workspace, project, dataset=dataset.id, cases_file=cases)

    assert result.summary["cases"] == {"total": 5, "test": 4, "file": 1}
    scores = result.summary["scores"]["base"]
    assert {"field_f1", "json_valid", "exact_record", "pass_rate"} <= set(scores)
    assert 0.0 <= scores["field_f1"]["value"] <= 1.0 and scores["field_f1"]["n"] == 5
    assert "per_field" in result.summary["details"]["base"]["field_f1"]
    rows = read_jsonl(result.path / "results.jsonl")
    assert any(r["prompt_truncated"] for r in rows)  # OCR text is longer than the tiny model's context
    assert all(json.loads(r["expected"]) for r in rows)
    assert result.gate is None  # no run: the gate applies to fine-tuned candidates only
    assert result.summary["failures"]["base"]["failed"] >= 1
    assert "schema_valid" in scores  # the hand-written case's schema is checked


def test_faq_chat_finetuned_against_baselines(
    shared_data: Path, tiny_model_dir: Path, workspace: Workspace, tmp_path: Path
) -> None:
    from tailorlm.train import train

    faq = tmp_path / "faq.csv"
    with (shared_data / "faq_official" / "faq_covidbert_en.csv").open(encoding="utf-8", newline="") as source:
        rows = [row for row in csv.DictReader(source) if row["source"].startswith("Center for Disease Control")]
    with faq.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerows({"question": r["question"], "answer": r["answer"][:400]} for r in rows[:40])
    project = parse_project(
        {
            "project": "faq",
            "base_model": str(tiny_model_dir),
            "task": "chat",
            "system_prompt": "You answer questions from the public, officially and briefly.",
            "sources": [{"path": str(faq), "kind": "faq"}],
            "prepare": {"pii": "off", "split": {"test": 0.15, "val": 0.05}},
            "train": {
                "method": "lora",
                "max_steps": 2,
                "batch_size": 4,
                "max_length": 256,
                "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            },
            "evaluate": {
                "baselines": ["base", "few_shot", "rag"],
                "few_shot_k": 1,
                "rag_k": 1,
                "max_new_tokens": 12,
                "limit": 4,
                "objectives": {"rouge_l": 0.5},
            },
        },
        root=tmp_path,
    )
    prepare(workspace, project, ingest=ingest)
    run = train(workspace, project).run
    first = evaluate(workspace, project, run=run.id, gate=True)
    assert first.gate is not None and not first.gate.passed  # a tiny model does not reach ROUGE-L 0.5
    assert first.evaluation.meta_as(EvaluationMeta).gate.passed is False
    names = [c["name"] for c in first.summary["candidates"]]
    assert names == ["base", "few_shot", "rag", "finetuned", "finetuned+rag"]
    assert first.summary["loss"]["finetuned"]["perplexity"] > 1
    assert first.summary["rag"]["corpus"] == "train split"
    second = evaluate(workspace, project, run=run.id)
    assert second.summary["generation"]["generated"] == 0
    diff = compare(workspace, first.evaluation.id, second.evaluation.id)
    assert diff.common == 4 and all(d["delta"] in (0, None) for d in diff.deltas["finetuned"].values())
