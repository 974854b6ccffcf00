"""`tailorlm iterate` on a tiny workspace with a registered model and stored feedback: two rounds run
unattended (feedback → dataset → DPO from the current model → evaluation against the parent on the same
cases → registered), every round in the report with its paired gains, over all cases and the held-out
feedback items; the loop stops when the objectives are met and when a round brings no significant gain; a
round can ask the local teacher for new examples for the current model's weakest failures (a scripted
OpenAI-compatible teacher over real HTTP, as in test_synth.py); without a model, feedback or a teacher it
says what to do."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from helpers.data import make_chat_examples
from helpers.feedback import style_feedback
from helpers.serve import ServerThread, scripted_teacher
from tailorlm.checks import problems
from tailorlm.config import parse_project
from tailorlm.dataset_splits import load_split
from tailorlm.feedback import record_many
from tailorlm.iterate import IterateError, iterate
from tailorlm.prepare import prepare
from tailorlm.register import register
from tailorlm.train import train
from tailorlm.workspace import read_jsonl


def project_with_model(workspace, tiny_model_dir, tmp_path, prepare_settings=None, steps=8, **iterate_settings):
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
            "prepare": {
                "split": {"test": 0.25, "val": 0.1},
                "dedup": {"near_threshold": None},
                **(prepare_settings or {}),
            },
            "train": {
                "method": "lora",
                "max_steps": steps,
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


def test_the_loop_stops_when_a_round_brings_no_significant_gain(workspace, tiny_model_dir, tmp_path, one_torch_thread):
    project = project_with_model(workspace, tiny_model_dir, tmp_path, rounds=3)  # require_gain: true (default)
    project.train.learning_rate = 1e-12  # the round's run answers exactly as its parent: a gain of 0
    record_many(workspace, style_feedback(12, "pairs"))
    result = iterate(workspace, project)
    assert len(result.rounds) == 1 and result.stopped == "no significant gain"
    step = result.rounds[0]
    assert step.registered is None and result.model == "acme@v1"
    assert step.gain["mean_diff"] == 0 and step.gain["ci"] == [0, 0] and step.gain["n"] > 0
    assert [m.version for m in workspace.registry.find("model", name="acme")] == ["v1"]
    report = (result.path / "report.md").read_text()
    assert "Stopped: no significant gain. Current model: acme@v1." in report
    assert "no significant gain on rouge_l over acme@v1: not registered" in report


def test_a_round_asks_the_teacher_for_examples_for_the_weakest_failures(
    workspace, tiny_model_dir, tmp_path, one_torch_thread
):
    asked: list[str] = []

    def answer(prompt: str) -> str:
        """Two questions per passage, both answered with its reference: a new one, and the failed one again
        (which must not reach training: it is an evaluated case)."""
        passage = prompt.split("<<<\n", 1)[1].split("\n>>>", 1)[0]
        question, reference = passage.removeprefix("Question: ").split("\nAnswer: ", 1)
        asked.append(question)
        again = {"question": question, "answer": reference}
        return json.dumps([{"question": f"Could you tell me once more: {question}", "answer": reference}, again])

    with ServerThread(scripted_teacher(answer)) as server:
        project = project_with_model(
            workspace,
            tiny_model_dir,
            tmp_path,
            prepare_settings={"synthesize": {"teacher": f"{server.url}/v1", "per_chunk": 2}},
            steps=1,  # a model that still fails most cases
            rounds=1,
            method="sft",
            synthesize=3,
            require_gain=False,
        )
        record_many(workspace, style_feedback(8, "corrections"))
        result = iterate(workspace, project)

    step = result.rounds[0]
    synthetic = step.synthetic
    # the current model was evaluated first; the teacher was asked about 3 of its failed answers, once each
    first = read_jsonl(workspace.eval_dir(synthetic["evaluation"]) / "results.jsonl")
    failed = {r["case"]: r["input"] for r in first if r["passed"] is False}
    assert len(synthetic["cases"]) == 3 and set(synthetic["cases"]) <= set(failed)
    assert sorted(asked) == sorted(failed[c] for c in synthetic["cases"])
    assert synthetic["teacher"] == "scripted" and synthetic["examples"] == 3
    assert synthetic["skipped"] == {"synthetic: an evaluated question": 3}
    # the examples are in the round's dataset, in its train split only, and the round's run trained on it
    dataset = workspace.resolve("dataset", step.dataset)
    train_split = load_split(workspace, dataset, "train")
    made = [e for e in train_split if e.meta.get("synthetic")]
    assert sorted(e.meta["failed_case"] for e in made) == sorted(synthetic["cases"])
    assert all(e.input_text.startswith("Could you tell me once more: ") for e in made)
    assert all(e.meta["teacher"] == "scripted" and e.meta["preference"] == {"desirable": True} for e in made)
    for split in ("val", "test"):
        assert not [e for e in load_split(workspace, dataset, split) if e.meta.get("synthetic")]
    assert any(str(source).endswith("round-1/synthetic.jsonl") for source in dataset.meta.sources)  # type: ignore[union-attr]
    assert workspace.registry.get(step.run).meta.dataset == dataset.id  # type: ignore[union-attr]
    assert (
        "the teacher scripted wrote 3 new example(s) for acme@v1's weakest failure clusters"
        in (result.path / "report.md").read_text()
    )


def test_synthesis_in_a_round_needs_a_teacher_and_a_method_that_can_use_it(workspace, tiny_model_dir, tmp_path):
    project = parse_project(
        {"project": "acme", "base_model": str(tiny_model_dir), "iterate": {"synthesize": 4}}, root=tmp_path
    )
    with pytest.raises(IterateError) as raised:
        iterate(workspace, project)
    message = str(raised.value)
    assert "iterate.synthesize: asks the teacher of prepare.synthesize, and the project has none" in message
    assert "a dpo round can't learn from them: set iterate.method to sft or kto" in message
    assert len([p for p in problems(project) if p.field == "iterate.synthesize"]) == 2  # what `validate` shows
    project.prepare.synthesize = parse_project(
        {"project": "x", "base_model": "x", "prepare": {"synthesize": {"teacher": "http://127.0.0.1:9/v1"}}},
        root=tmp_path,
    ).prepare.synthesize
    with pytest.raises(IterateError, match="no registered model"):
        iterate(workspace, project, method="kto")


def test_a_round_whose_gate_fails_is_not_registered(workspace, tiny_model_dir, tmp_path, one_torch_thread):
    """Registered only when better: an objective the round's run misses keeps the parent as the model,
    and the next round starts from it again."""
    project = project_with_model(workspace, tiny_model_dir, tmp_path, rounds=2, require_gain=False)
    project.evaluate.objectives = {"rouge_l": 1.0}  # a perfect score: out of a tiny model's reach
    record_many(workspace, style_feedback(12, "pairs"))
    result = iterate(workspace, project, method="kto")
    assert [r.number for r in result.rounds] == [1, 2] and result.stopped == "2 round(s) done"
    for step in result.rounds:
        assert step.parent == "acme@v1" and step.registered is None
        assert step.gate is not None and step.gate["passed"] is False
        assert step.decision.startswith("gate not passed (") and step.decision.endswith("): not registered")
    assert result.model == "acme@v1"
    assert [m.version for m in workspace.registry.find("model", name="acme")] == ["v1"]
