"""The evaluate verb end to end on the tiny model: real generation, real files, real registry.

One run is trained for the module (its answers are noise; the pipeline is what is tested)."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from helpers.data import make_chat_examples, register_dataset
from tailorlm.config import EvaluateSettings, Project, parse_project
from tailorlm.evaluate import EvalError, compare, evaluate, format_table, summary_table
from tailorlm.formats.examples import Example
from tailorlm.progress import LogProgress
from tailorlm.registry import Artifact, EvaluationMeta, GateVerdict, RunMeta
from tailorlm.workspace import Workspace, read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers.serve import RecordingMiddleware

EVALUATE = {"max_new_tokens": 6, "batch_size": 8, "baselines": ["base"]}


@pytest.fixture(scope="module")
def trained(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Workspace, Project, Artifact]]:
    from tailorlm.train import train

    root = tmp_path_factory.mktemp("eval-ws")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root / "home"))
        ws = Workspace(root / "ws")
        register_dataset(ws, make_chat_examples(20), name="tiny", val=2, test=4)
        project = parse_project(
            {
                "project": "tiny",
                "base_model": str(tiny_model_dir),
                "system_prompt": "You are Acme support.",
                "train": {
                    "method": "lora",
                    "max_steps": 1,
                    "batch_size": 4,
                    "learning_rate": 3e-3,
                    "eval_steps": 10,
                    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
                },
                "evaluate": EVALUATE,
            },
            root=root,
        )
        run = train(ws, project).run
    yield ws, project, run
    ws.close()


def with_evaluate(project: Project, **settings: Any) -> Project:
    return project.model_copy(update={"evaluate": EvaluateSettings(**{**EVALUATE, **settings})})


def snapshot(ws: Workspace) -> tuple[set[str], set[str]]:
    return {a.id for a in ws.registry.find("evaluation")}, {p.name for p in (ws.root / "evals").iterdir()}


def test_evaluation_writes_report_results_and_registry(trained: tuple[Workspace, Project, Artifact]) -> None:
    ws, project, run = trained
    project = with_evaluate(
        project,
        baselines=["base", "few_shot", "rag"],
        few_shot_k=2,
        rag_k=2,
        objectives={"rouge_l": 0.0, "perplexity": 1e9},
    )
    log = io.StringIO()
    result = evaluate(ws, project, run=run.id, progress=LogProgress(Console(file=log, width=80), interval=0))

    assert result.evaluation.status == "complete" and result.path == ws.eval_dir(result.evaluation.id)
    assert sorted(p.name for p in result.path.iterdir()) == ["report.html", "results.jsonl", "summary.json"]
    candidates = ["base", "few_shot", "rag", "finetuned", "finetuned+rag"]
    meta = result.evaluation.meta_as(EvaluationMeta)
    assert meta.candidates == candidates
    assert meta.gate == GateVerdict(passed=True, unmet=[]) and result.gate and result.gate.passed
    assert set(meta.scores) == set(candidates)
    assert {"rouge_l", "exact_match", "pass_rate", "perplexity"} <= set(meta.scores["finetuned"])
    assert {p.id for p in ws.registry.parents(result.evaluation.id)} == {run.id, run.meta_as(RunMeta).dataset}
    assert result.evaluation.name == "tiny" and result.evaluation.key
    audit = [json.loads(line) for line in (ws.root / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "evaluate" and audit[-1]["outputs"] == [result.evaluation.id]

    rows = read_jsonl(result.path / "results.jsonl")
    assert len(rows) == 4 * len(candidates)
    assert {r["candidate"] for r in rows} == set(candidates)
    assert all(r["context"] for r in rows if r["candidate"].endswith("rag"))  # retrieved passages recorded
    summary = json.loads((result.path / "summary.json").read_text())
    rouge = summary["scores"]["finetuned"]["rouge_l"]
    assert rouge["n"] == 4 and len(rouge["ci"]) == 2 and rouge["ci"][0] <= rouge["value"] <= rouge["ci"][1]
    assert set(summary["comparisons"]) == set(candidates) - {"base"}
    assert {"wins", "losses", "ties", "flipped", "mean_diff", "ci"} <= set(
        summary["comparisons"]["finetuned"]["rouge_l"]
    )
    assert set(summary["loss"]) == {"base", "finetuned"} and summary["loss"]["finetuned"]["tokens"] > 0
    assert summary["rag"]["corpus"] == "train split" and summary["few_shot"]["k"] == 2
    assert summary["failures"]["finetuned"]["total"] == 4
    said = log.getvalue()  # a plain line per batch (or a cache note), naming the candidates answered
    assert "generate base, few_shot, rag" in said and "generate finetuned, finetuned+rag" in said, said

    html = (result.path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "function filterItems" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # self-contained: nothing fetched
    headers, table = summary_table(result.summary)
    assert headers[0] == "candidate" and [r[0] for r in table] == candidates
    assert "finetuned+rag" in format_table(result.summary)

    diff = compare(ws, result.evaluation.id, result.evaluation.id)
    assert diff.common == 4 and not diff.added and diff.deltas["finetuned"]["rouge_l"]["delta"] == 0
    assert diff.flipped["finetuned"] == {"fixed": [], "broken": []}


def test_gate_fails_and_register_refuses(trained: tuple[Workspace, Project, Artifact]) -> None:
    from tailorlm.register import GateFailed, register

    ws, project, run = trained
    project = with_evaluate(project, objectives={"rouge_l": 0.99, "perplexity": 1.0})
    result = evaluate(ws, project, run=run.id, gate=True)
    assert result.gate is not None and not result.gate.passed
    assert result.evaluation.status == "complete"  # a failed gate is a verdict, not an error
    gate = result.evaluation.meta_as(EvaluationMeta).gate
    assert gate is not None and gate.passed is False and len(gate.unmet) == 2
    assert gate.unmet[0].startswith("rouge_l ") and "needs >= 0.99" in gate.unmet[0]
    assert "needs <= 1" in gate.unmet[1]
    with pytest.raises(GateFailed, match="failed the gate"):
        register(ws, run.id, name="tiny-model")


def test_margin_objective_on_a_real_evaluation(trained: tuple[Workspace, Project, Artifact]) -> None:
    """`beats_baselines` on a tiny model's evaluation: each baseline's margin is recorded, the unmet
    ones are named, the facts metrics are scored, and the verdict is the same when evaluated again."""
    ws, project, run = trained
    objectives = {"rouge_l": "beats_baselines", "invented_facts": "beats_baselines", "fact_recall": 0.0}
    project = with_evaluate(project, baselines=["base", "rag"], rag_k=1, objectives=objectives)
    result = evaluate(ws, project, run=run.id, gate=True)
    summary = result.summary
    assert {"fact_recall", "invented_facts"} <= set(summary["metrics"])
    assert summary["objectives"] == objectives
    checks = {c["metric"]: c for c in summary["gate"]["checks"]}
    rouge = checks["rouge_l"]
    assert rouge["objective"] == "beats_baselines" and set(rouge["versus"]) == {"base", "rag"}
    for margin in rouge["versus"].values():
        assert margin["n"] == 4 and margin["ci"][0] <= margin["mean_diff"] <= margin["ci"][1]
    # The same paired bootstrap as the report's comparison with the reference (base).
    assert summary["comparisons"]["finetuned"]["rouge_l"]["ci"] == rouge["versus"]["base"]["ci"]
    assert rouge["passed"] == all(m["passed"] for m in rouge["versus"].values())
    unmet = [line for line in summary["gate"]["unmet"] if line.startswith("rouge_l")]
    assert len(unmet) == sum(not m["passed"] for m in rouge["versus"].values())
    assert all(" at 95%" in line and " vs " in line for line in unmet)
    assert result.gate is not None and result.gate.passed == (not summary["gate"]["unmet"])
    # The finetuned+rag candidate's prompt held the retrieved passages: its facts were checked against them.
    rows = [r for r in read_jsonl(result.path / "results.jsonl") if r["candidate"] == "finetuned+rag"]
    assert all("invented_facts" in r["scores"] for r in rows)

    again = evaluate(ws, project, run=run.id, gate=True)
    assert again.summary["gate"] == summary["gate"]


def test_cache_generates_only_what_is_new(trained: tuple[Workspace, Project, Artifact], tmp_path: Path) -> None:
    ws, project, run = trained
    shutil.rmtree(ws.root / "cache", ignore_errors=True)
    first = evaluate(ws, project, run=run.id)
    assert first.summary["generation"] == {**first.summary["generation"], "answers": 8, "generated": 8, "cached": 0}
    second = evaluate(ws, project, run=run.id)
    assert second.summary["generation"]["generated"] == 0 and second.summary["generation"]["cached"] == 8
    assert [r["output"] for r in read_jsonl(second.path / "results.jsonl")] == [
        r["output"] for r in read_jsonl(first.path / "results.jsonl")
    ]
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- input: Can I change my delivery address?\n  expected: Yes, in your account.\n"
        "  must_not_contain: [refund]\n  tags: [shipping]\n",
        encoding="utf-8",
    )
    third = evaluate(ws, project, run=run.id, cases_file=cases)
    assert third.summary["cases"] == {"total": 5, "test": 4, "file": 1}
    assert third.summary["generation"]["generated"] == 2  # the new case, once per model
    rows = read_jsonl(third.path / "results.jsonl")
    assert {r["origin"] for r in rows} == {"test", "cases.yaml:1"}
    diff = compare(ws, second.evaluation.id, third.evaluation.id)
    assert len(diff.added) == 1 and diff.common == 4


def test_bad_input_is_a_clear_error_and_writes_nothing(
    trained: tuple[Workspace, Project, Artifact], tmp_path: Path
) -> None:
    ws, project, run = trained
    before = snapshot(ws)
    bad_cases = tmp_path / "cases.jsonl"
    bad_cases.write_text('{"input": "ok"}\n{"input": "broken"\n', encoding="utf-8")
    with pytest.raises(EvalError, match=r"cases.jsonl:2: not valid JSON"):
        evaluate(ws, project, run=run.id, cases_file=bad_cases)
    with pytest.raises(EvalError, match=r"unknown metric 'bleurt'; known metrics are: .*rouge_l"):
        evaluate(ws, with_evaluate(project, metrics=["rouge_l", "bleurt"]), run=run.id)
    with pytest.raises(EvalError, match=r"evaluate.objectives: unknown metric\(s\) acuracy"):
        evaluate(ws, with_evaluate(project, objectives={"acuracy": 0.9}), run=run.id)
    with pytest.raises(EvalError, match="the gate needs objectives"):
        evaluate(ws, project, run=run.id, gate=True)
    with pytest.raises(EvalError, match=r"unknown baseline\(s\) \['zero_shot'\]"):
        evaluate(ws, project, run=run.id, baselines=["zero_shot"])
    with pytest.raises(EvalError, match=r"objective judge_win_rate_vs_base needs a judge"):
        evaluate(ws, with_evaluate(project, objectives={"judge_win_rate_vs_base": 0.5}), run=run.id)
    with pytest.raises(EvalError, match=r"judge: endpoint .* can't be reached"):
        evaluate(
            ws,
            with_evaluate(project, objectives={"judge_win_rate_vs_base": 0.5}),
            run=run.id,
            judge="http://127.0.0.1:9/v1",
        )
    with pytest.raises(EvalError, match=r"judge: endpoint .*refused.*allow_hosts"):
        evaluate(
            ws,
            with_evaluate(project, objectives={"judge_win_rate_vs_base": 0.5}),
            run=run.id,
            judge="http://judge.not-allowlisted.example/v1",
        )
    with pytest.raises(EvalError, match=r"endpoint .*refused"):
        evaluate(ws, project, run=run.id, endpoints=["http://llm.not-allowlisted.example/v1"])
    with pytest.raises(EvalError, match="no dataset matches nope"):
        evaluate(ws, project, dataset="nope")

    ws.registry.add(
        Artifact(
            id="run-without-model",
            kind="run",
            name="tiny",
            hash="x",
            path="runs/run-without-model",
            meta=RunMeta(method="lora", base_model=str(project.base_model), dataset=run.meta_as(RunMeta).dataset),
        )
    )
    with pytest.raises(EvalError, match=r"run run-without-model has no model: .* is missing"):
        evaluate(ws, project, run="run-without-model")
    ws.registry.add(
        Artifact(
            id="run-failed",
            kind="run",
            name="tiny",
            hash="x",
            path="runs/run-failed",
            status="failed",
            meta={"method": "lora", "base_model": str(project.base_model), "dataset": "none"},
        )
    )
    with pytest.raises(EvalError, match="run run-failed is failed, not complete"):
        evaluate(ws, project, run="run-failed")
    assert snapshot(ws) == before


def test_an_error_while_running_marks_the_evaluation_failed(
    trained: tuple[Workspace, Project, Artifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tailorlm.evaluate.runner as runner

    ws, project, run = trained
    before = snapshot(ws)[1]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(runner, "write_evaluation", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        evaluate(ws, project, run=run.id)
    latest = ws.registry.find("evaluation")[0]
    assert latest.status == "failed" and latest.meta.error == "disk full"
    assert snapshot(ws)[1] == before  # no folder, complete or not


def test_classification_baseline_only(tiny_model_dir: Path, workspace: Workspace, tmp_path: Path) -> None:
    labels = ["billing", "shipping", "technical"]
    examples = [
        Example.chat(
            system="Classify the ticket.",
            user=f"Ticket {i} about {labels[i % 3]} things",
            assistant=labels[i % 3],
            label=labels[i % 3],
            source=f"t{i}",
        )
        for i in range(18)
    ]
    register_dataset(workspace, examples, name="tickets", val=0, test=6)
    project = parse_project(
        {
            "project": "tickets",
            "base_model": str(tiny_model_dir),
            "task": "classify",
            "evaluate": {**EVALUATE, "max_new_tokens": 3},
        },
        root=tmp_path,
    )
    result = evaluate(workspace, project)
    assert [c["name"] for c in result.summary["candidates"]] == ["base"]
    assert result.summary["runs"] == [] and result.gate is None
    assert set(result.summary["scores"]["base"]) >= {"accuracy", "macro_f1", "pass_rate"}
    matrix = result.summary["details"]["base"]["accuracy"]["confusion_matrix"]
    assert matrix["rows"] == labels and matrix["columns"][-1] == "<unparseable>"
    failures = result.summary["failures"]["base"]
    assert failures["failed"] == 6 - round(result.summary["scores"]["base"]["accuracy"]["value"] * 6)
    assert set(failures["by_label"]) <= set(labels)
    assert set(failures["by_error"]) <= {"wrong_label", "unparseable_label", "empty", "too_long"}
    assert "confusion matrices of base" in (result.path / "report.html").read_text()


def test_judge_and_endpoint_candidates_against_a_local_server(
    trained: tuple[Workspace, Project, Artifact],
    judge_server: tuple[str, RecordingMiddleware],
) -> None:
    ws, project, run = trained
    url, recorder = judge_server
    project = with_evaluate(project, metrics=["rouge_l"], objectives={"judge_win_rate_vs_base": 0.5})
    before = len(recorder.bodies)
    result = evaluate(ws, project, run=run.id, endpoints=[f"served={url}"], judge={"endpoint": url, "max_tokens": 4})

    asked = recorder.bodies[before:]
    answers = [
        b
        for b in asked
        if "grade" not in b["messages"][0]["content"] and "compare two answers" not in b["messages"][0]["content"]
    ]
    pairs = [b for b in asked if "compare two answers" in b["messages"][0]["content"]]
    assert len(answers) == 4  # the endpoint candidate answered each case once
    assert all(b["temperature"] == 0 and b["max_tokens"] == 6 for b in answers)  # the same decoding
    assert len(pairs) == 2 * 4  # finetuned vs base, each case in both orders
    judge = result.summary["judge"]
    assert judge["requests"] == 8
    rate = judge["win_rates"]["finetuned"]["base"]
    assert rate["win"] + rate["loss"] + rate["tie"] == 4
    assert result.summary["scores"]["finetuned"]["judge_win_rate_vs_base"]["value"] == rate["win"] / 4
    assert result.gate is not None and [c.metric for c in result.gate.checks] == ["judge_win_rate_vs_base"]
    rows = read_jsonl(result.path / "results.jsonl")
    assert all(r["judge"]["vs_base"] in {"win", "loss", "tie"} for r in rows if r["candidate"] == "finetuned")
    assert {r["candidate"] for r in rows} == {"base", "finetuned", "served"}
