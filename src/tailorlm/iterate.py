"""`tailorlm iterate`: reviewers' feedback becomes the next model, round after round, until the objectives
are met.

A round, top to bottom:

1. **data**: the stored feedback (`tailorlm.feedback`) is written to the round's folder and added to the
   project's sources as a `feedback` source; with `iterate.synthesize`, the teacher of `prepare.synthesize`
   also writes new examples for the current model's weakest failure clusters (`failure_synthesis.py`; the
   failures of the previous round's evaluation, or of an evaluation of the model in round 1), added as a
   source pinned to the train split and kept for the later rounds; prepare builds the next dataset version
   (pairs, rated answers, corrections; split by prompt, so held-out feedback prompts are test cases);
2. **retrain**: `iterate.method` dpo/kto/orpo trains the current model's adapter further on the
   preferences (`train.preference.start_from` = the current model); `sft` trains `train.method` from the
   base on the enlarged dataset;
3. **evaluate** the new run and its parent on the same cases (the new dataset's test split), item by item:
   the paired difference on `iterate.metric` with its bootstrap 95% interval, over every case and over the
   held-out feedback items alone; the gate (`evaluate.objectives`) on the new run;
4. **decide**: register the new run as the project's next model version when the gate passes and the gain
   is significant (or `require_gain: false`); stop when the objectives are met, when a round brings no
   significant gain, or after `iterate.rounds`.

Every round also records the parent's failure clusters with suggestions of data to add, and writes the
new run's failed answers to `to_review.jsonl` (feedback records still without a `rating`) for reviewers to
rate or correct and import back with `tailorlm feedback import`. The report (`report.json`, `report.md`)
lists every round.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.checks import describe, iterate_synthesis
from tailorlm.config import Project, Source
from tailorlm.documents import Ingest
from tailorlm.errors import UserError
from tailorlm.evaluate import evaluate
from tailorlm.evaluate.scoring import primary_metric
from tailorlm.evaluate.stats import paired_comparison
from tailorlm.failure_synthesis import synthesize_for_failures
from tailorlm.feedback import list_feedback, write_feedback
from tailorlm.prepare import prepare
from tailorlm.progress import SILENT, Progress
from tailorlm.register import register
from tailorlm.registry import Artifact, ModelMeta
from tailorlm.train import train
from tailorlm.workspace import Workspace, atomic_write_json, atomic_write_text, new_id, read_jsonl


class IterateError(UserError, ValueError):
    """An iteration that can't start: no registered model, no feedback, a task feedback can't train."""


@dataclass
class Round:
    """What one round did and decided."""

    number: int
    parent: str  # the model it started from, name@version
    dataset: str = ""
    run: str = ""
    evaluation: str = ""
    metric: str = ""
    gain: dict[str, Any] = field(default_factory=dict)  # every case: mean_diff, ci, wins, losses, n
    feedback_gain: dict[str, Any] = field(default_factory=dict)  # the held-out feedback items only
    gate: dict[str, Any] | None = None
    registered: str | None = None
    decision: str = ""
    failures: dict[str, Any] = field(default_factory=dict)  # the parent's failure clusters on these cases
    suggestions: list[str] = field(default_factory=list)
    synthetic: dict[str, Any] = field(default_factory=dict)  # the teacher's examples for the weakest clusters
    to_review: str = ""


@dataclass
class IterationResult:
    id: str
    path: Path
    rounds: list[Round]
    stopped: str
    model: str  # the latest registered model at the end

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "stopped": self.stopped,
            "model": self.model,
            "rounds": [asdict(r) for r in self.rounds],
        }


def iterate(
    workspace: Workspace,
    project: Project,
    *,
    rounds: int | None = None,
    method: str | None = None,
    ingest: Ingest | None = None,
    progress: Progress = SILENT,
) -> IterationResult:
    """Run rounds of feedback → dataset → retrain → evaluate against the parent → register (see the module
    docstring); `rounds` and `method` override `iterate.rounds` and `iterate.method`."""
    settings = project.iterate
    rounds = rounds or settings.rounds
    method = method or settings.method
    if project.task != "chat":
        raise IterateError(f"iterate learns from feedback on chat answers; this project's task is {project.task!r}")
    if found := list(iterate_synthesis(project, None, method)):
        raise IterateError(describe(found))
    try:
        parent = workspace.resolve("model", project.project)
    except KeyError:
        raise IterateError(
            f"no registered model {project.project!r} to improve yet",
            hint="train and register one first: tailorlm run (or train, eval, register)",
        ) from None
    metric = settings.metric or (primary_metric(project.task, ["rouge_l", "chrf", "exact_match"]) or ("rouge_l",))[0]
    objectives = project.evaluate.objectives
    iteration_id = new_id("iter")
    folder = workspace.iteration_dir(iteration_id)
    folder.mkdir(parents=True)
    done: list[Round] = []
    stopped = f"{rounds} round(s) done"
    answers: list[dict[str, Any]] | None = None  # the latest evaluation's answers (the current model's among them)
    answered_as: dict[str, str] = {}  # run id → its candidate name in `answers`
    synthetic: list[Path] = []  # the teacher's examples so far: every later round keeps them
    for number in range(1, rounds + 1):
        records = list_feedback(workspace)
        if not records:
            raise IterateError(
                "no feedback stored yet", hint="collect some: POST /v1/feedback, or tailorlm feedback import"
            )
        step = Round(number=number, parent=_name(parent), metric=metric)
        done.append(step)
        progress.say(f"round {number}: from {step.parent}, {len(records)} feedback record(s), method {method}")
        round_dir = folder / f"round-{number}"
        round_dir.mkdir()
        feedback_file = round_dir / "feedback.jsonl"
        write_feedback(feedback_file, records)
        parent_run = parent.meta_as(ModelMeta).run
        if settings.synthesize:
            if answers is None:  # round 1: evaluate the current model first, to know where it fails
                progress.say(f"round {number}: evaluating {step.parent} to find its weakest failure clusters")
                first = evaluate(workspace, project, runs=[parent_run], baselines=[], progress=progress)
                answers, answered_as = read_jsonl(first.path / "results.jsonl"), {parent_run: "finetuned"}
                step.synthetic["evaluation"] = first.evaluation.id
            added = synthesize_for_failures(
                workspace,
                project,
                answers,
                answered_as[parent_run],
                metric=metric,
                limit=settings.synthesize,
                path=round_dir / "synthetic.jsonl",
                progress=progress,
            )
            step.synthetic.update(added.summary())
            synthetic += [added.path] if added.path else []
        round_project = _round_project(project, feedback_file, method, parent, synthetic)

        # --- data → retrain -----------------------------------------------------------------------
        dataset = prepare(workspace, round_project, ingest=ingest, progress=progress).dataset
        step.dataset = f"{dataset.name}@{dataset.version}"
        run = train(workspace, round_project, dataset=dataset.id, progress=progress).run
        step.run = run.id

        # --- evaluate against the parent on the same cases -----------------------------------------
        result = evaluate(
            workspace,
            round_project,
            runs=[parent_run, run.id],
            dataset=dataset.id,
            baselines=[],
            reference=parent_run,
            gate=bool(objectives),
            progress=progress,
        )
        step.evaluation = result.evaluation.id
        step.gain = _gain(result.summary, run.id, metric)
        rows = answers = read_jsonl(result.path / "results.jsonl")
        answered_as = {parent_run: parent_run, run.id: run.id}  # two runs: each answers under its id
        step.feedback_gain = _held_out_gain(rows, run.id, parent_run, metric)
        verdict = result.evaluation.meta.gate_for(run.id) if objectives else None  # type: ignore[union-attr]
        step.gate = verdict.model_dump(include={"passed", "unmet"}) if verdict else None
        parent_failures = result.summary.get("failures", {}).get(parent_run, {})
        step.failures = {k: parent_failures.get(k) for k in ("failed", "total", "by_error", "by_tag")}
        step.suggestions = list(parent_failures.get("suggestions", []))
        step.to_review = str(_write_to_review(round_dir, rows, run.id, settings.review_items))

        # --- decide --------------------------------------------------------------------------------
        significant = bool(step.gain) and step.gain["ci"][0] is not None and step.gain["ci"][0] > 0
        passed = verdict is None or verdict.passed
        keep = passed and (significant or not settings.require_gain)
        if keep:
            model = register(workspace, run.id, name=project.project, system_prompt=project.system_prompt)
            step.registered = _name(model)
            parent = model
        if keep and objectives:
            step.decision = f"objectives met: registered {step.registered}"
            stopped = "objectives met"
        elif not significant and settings.require_gain:
            step.decision = f"no significant gain on {metric} over {step.parent}: not registered"
            stopped = "no significant gain"
        elif not passed:
            step.decision = "gate not passed (" + "; ".join(verdict.unmet if verdict else []) + "): not registered"
        else:
            step.decision = f"registered {step.registered}"
        progress.say(f"round {number}: {step.decision}")
        workspace.audit.append(
            "iterate.round",
            inputs=[step.parent, dataset.id],
            outputs=[run.id, result.evaluation.id, *([step.registered] if step.registered else [])],
            iteration=iteration_id,
            round=number,
            gain=step.gain,
            decision=step.decision,
        )
        _write_report(folder, IterationResult(iteration_id, folder, done, stopped, _name(parent)))
        if stopped in ("objectives met", "no significant gain"):
            break
    result_ = IterationResult(iteration_id, folder, done, stopped, _name(parent))
    _write_report(folder, result_)
    return result_


def _name(model: Artifact) -> str:
    return f"{model.name}@{model.version}"


def _round_project(
    project: Project, feedback_file: Path, method: str, parent: Artifact, synthetic: list[Path]
) -> Project:
    """The project as this round trains it: the feedback and the teacher's examples (pinned to the train
    split) as more sources, the round's method."""
    data = project.model_dump(mode="python")
    added = [Source(path=feedback_file, kind="feedback")]
    added += [Source(path=path, kind="dataset", split="train") for path in synthetic]
    data["sources"] = [
        *[s for s in data["sources"] if s["kind"] != "feedback"],
        *[source.model_dump(mode="python", exclude_defaults=True) for source in added],
    ]
    if method != "sft":
        data["train"]["method"] = method
        data["train"]["preference"]["start_from"] = _name(parent)
    copy = Project.model_validate(data)
    copy.root = project.root
    return copy


def _gain(summary: dict[str, Any], run_id: str, metric: str) -> dict[str, Any]:
    compared = summary.get("comparisons", {}).get(run_id, {}).get(metric)
    if not compared:
        return {}
    return {key: compared[key] for key in ("mean_diff", "ci", "wins", "losses", "ties", "n")}


def _held_out_gain(rows: list[dict[str, Any]], run_id: str, parent_run: str, metric: str) -> dict[str, Any]:
    """The paired comparison on the test cases that came from feedback (held-out reviewers' prompts)."""
    by_case: dict[str, dict[str, float | None]] = {}
    for row in rows:
        if str(row.get("source") or "").startswith("feedback#") and row["candidate"] in (run_id, parent_run):
            by_case.setdefault(row["case"], {})[row["candidate"]] = (row.get("scores") or {}).get(metric)
    cases = [c for c, s in by_case.items() if s.get(run_id) is not None and s.get(parent_run) is not None]
    if not cases:
        return {}
    comparison = paired_comparison([by_case[c][run_id] for c in cases], [by_case[c][parent_run] for c in cases])
    finite = [None if math.isnan(v) else v for v in comparison.ci]
    return {
        "mean_diff": None if math.isnan(comparison.mean_diff) else comparison.mean_diff,
        "ci": finite,
        "wins": comparison.wins,
        "losses": comparison.losses,
        "ties": comparison.ties,
        "n": comparison.n,
    }


def _write_to_review(folder: Path, rows: list[dict[str, Any]], run_id: str, limit: int) -> Path:
    """The new run's failed answers, as feedback records waiting for a rating or a correction."""
    failed = [r for r in rows if r["candidate"] == run_id and r.get("passed") is False][:limit]
    path = folder / "to_review.jsonl"
    lines = [
        {
            "messages": [{"role": "user", "content": r["input"]}],
            "answer": r["output"],
            "model": run_id,
            "tags": [f"case:{r['case']}"],
        }
        for r in failed
    ]
    atomic_write_text(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return path


def _write_report(folder: Path, result: IterationResult) -> None:
    atomic_write_json(folder / "report.json", result.to_json())
    atomic_write_text(folder / "report.md", report_markdown(result))


def report_markdown(result: IterationResult) -> str:
    """The rounds as a table, with what each decided and the suggestions of data to add."""
    lines = [
        f"# Iteration {result.id}",
        "",
        f"Stopped: {result.stopped}. Current model: {result.model}.",
        "",
        "| round | from | dataset | run | gain (95% CI), all cases | gain (95% CI), held-out feedback | gate "
        "| decision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rounds:
        gate = "" if r.gate is None else ("passed" if r.gate.get("passed") else "failed")
        lines.append(
            f"| {r.number} | {r.parent} | {r.dataset} | {r.run} | {_show(r.gain)} | {_show(r.feedback_gain)} | "
            f"{gate} | {r.decision} |"
        )
    for r in result.rounds:
        if r.synthetic:
            clusters = ", ".join(f"{n} {name}" for name, n in r.synthetic.get("clusters", {}).items()) or "none"
            lines += [
                "",
                f"Round {r.number}, the teacher {r.synthetic.get('teacher') or ''} wrote "
                f"{r.synthetic.get('examples', 0)} new example(s) for {r.parent}'s weakest failure clusters "
                f"({clusters}).",
            ]
        if r.suggestions:
            lines += ["", f"Round {r.number}, data to add (from {r.parent}'s failures):", ""]
            lines += [f"- {s}" for s in r.suggestions]
    return "\n".join(lines) + "\n"


def _show(gain: dict[str, Any]) -> str:
    if not gain or gain.get("mean_diff") is None:
        return "n/a"
    low, high = gain["ci"]
    return f"{gain['mean_diff']:+.3f} [{low:+.3f}, {high:+.3f}] (n={gain['n']})"
