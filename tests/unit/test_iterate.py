"""`tailorlm iterate` on a tiny workspace with a registered model and stored feedback: two rounds run
unattended (feedback → dataset → DPO from the current model → evaluation against the parent on the same
cases → registered), every round in the report with its paired gains, over all cases and the held-out
feedback items; the loop stops when the objectives are met; without a model or feedback it says what to do."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from helpers.data import make_chat_examples
from helpers.feedback import style_feedback
from tailorlm.config import parse_project
from tailorlm.feedback import record_many
from tailorlm.iterate import IterateError, iterate
from tailorlm.prepare import prepare
from tailorlm.register import register
from tailorlm.train import train


def project_with_model(workspace, tiny_model_dir, tmp_path, **iterate_settings):
    data = tmp_path / "chats.jsonl"
    data.write_text(
        "".join(json.dumps({"messages": [m.model_dump() for m in e.messages]}) + "\n" for e in make_chat_examples(24))
    )
    project = parse_project(
        {
            "project": "acme",
            "base_model": str(tiny_model_dir),
            "system_prompt": "You are Acme support.",
            "sources": [{"path": str(data), "kind": "dataset"}],
            "prepare": {"split": {"test": 0.25, "val": 0.1}, "dedup": {"near_threshold": None}},
            "train": {
                "method": "lora",
                "max_steps": 8,
                "batch_size": 4,
                "learning_rate": 5e-3,
                "logging_steps": 2,
                "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            },
            "evaluate": {"max_new_tokens": 12, "batch_size": 8},
            "iterate": iterate_settings,
        },
        root=tmp_path,
    )
    prepare(workspace, project)
    run = train(workspace, project).run
    register(workspace, run.id, name="acme", system_prompt=project.system_prompt)
    return project


def test_two_rounds_run_unattended_and_each_is_reported(workspace, tiny_model_dir, tmp_path, one_torch_thread):
    project = project_with_model(workspace, tiny_model_dir, tmp_path, rounds=2, require_gain=False, review_items=3)
    record_many(workspace, style_feedback(20, "pairs"))
    result = iterate(workspace, project)

    assert [r.number for r in result.rounds] == [1, 2] and result.stopped == "2 round(s) done"
    first, second = result.rounds
    assert first.parent == "acme@v1" and first.registered == "acme@v2"
    assert second.parent == "acme@v2" and second.registered == "acme@v3" and result.model == "acme@v3"
    for step in result.rounds:
        assert step.metric == "rouge_l" and step.gain["n"] > 0 and len(step.gain["ci"]) == 2
        assert 0 < step.feedback_gain["n"] < step.gain["n"]  # held-out feedback prompts are a part of the cases
        assert step.failures["total"] == step.gain["n"]
        lines = (result.path / "round-1" / "to_review.jsonl").read_text().splitlines()
        assert len(lines) <= 3
    # lineage: the model of round 2 ← its run ← the round's dataset and the model it started from
    model = workspace.resolve("model", "acme@v3")
    run = workspace.registry.get(second.run)
    parents = {p.id for p in workspace.registry.parents(run.id)}
    assert workspace.resolve("model", "acme@v2").id in parents
    assert any(p.kind == "dataset" for p in workspace.registry.parents(run.id))
    assert model.meta.run == run.id  # type: ignore[union-attr]
    assert run.meta.method == "dpo"  # type: ignore[union-attr]
    report = json.loads((result.path / "report.json").read_text())
    assert [r["registered"] for r in report["rounds"]] == ["acme@v2", "acme@v3"]
    assert "| 2 | acme@v2 |" in (result.path / "report.md").read_text()


def test_the_loop_stops_when_the_objectives_are_met(workspace, tiny_model_dir, tmp_path, one_torch_thread):
    project = project_with_model(workspace, tiny_model_dir, tmp_path, rounds=3, require_gain=False)
    project.evaluate.objectives = {"rouge_l": 0.0}
    record_many(workspace, style_feedback(12, "pairs"))
    result = iterate(workspace, project, method="kto")
    assert len(result.rounds) == 1 and result.stopped == "objectives met"
    assert result.rounds[0].gate == {"passed": True, "unmet": []}


def test_iterate_says_what_is_missing(workspace, tiny_model_dir, tmp_path):
    from tailorlm.cli import app

    project = parse_project({"project": "acme", "base_model": str(tiny_model_dir)}, root=tmp_path)
    with pytest.raises(IterateError, match="no registered model"):
        iterate(workspace, project)
    (workspace.root / "tailorlm.yaml").write_text(f"project: acme\nbase_model: {tiny_model_dir}\n")
    result = CliRunner().invoke(app, ["iterate", "--workspace", str(workspace.root)])
    assert result.exit_code == 1 and "no registered model 'acme'" in result.output and "Traceback" not in result.output
