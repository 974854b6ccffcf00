"""The `evaluate` verb, top to bottom: plan the suite → generate → score → judge → gate → write.

    result = evaluate(workspace, project, run="run-...", gate=True)
    result.summary["scores"]["finetuned"]["rouge_l"]   # {"value": 0.41, "ci": [0.35, 0.47], "n": 120}
    result.gate.passed

The evaluation is a registry row (`kind="evaluation"`) created `running` once the suite is valid,
and `complete` only when `evals/<id>/` (results.jsonl, summary.json, report.html) has been renamed
into place; any error marks it `failed` and leaves no folder. While it runs, its row names its owner
(pid, host, heartbeat); SIGTERM or Ctrl-C marks it `interrupted` (`tailorlm.lifecycle`), and the
answers generated so far stay in the generation cache for the next evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailorlm.config import Project
from tailorlm.evaluate.cache import GenerationCache
from tailorlm.evaluate.failures import analyse, diagnose
from tailorlm.evaluate.gate import GateResult, check_gate, combine_gates
from tailorlm.evaluate.generation import Decoding, GeneratedAnswer, LocalModel, loss_summary
from tailorlm.evaluate.judge import JudgeConfig
from tailorlm.evaluate.judging import judge_answers
from tailorlm.evaluate.report import write_evaluation
from tailorlm.evaluate.scoring import Score, compact_details, compare_to_reference, finite, score_candidate
from tailorlm.evaluate.suite import LOSS_TASKS, Suite, plan_suite
from tailorlm.lifecycle import current_owner, heartbeat, stop_signals
from tailorlm.offline import enforce
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import Artifact, EvaluationMeta
from tailorlm.workspace import Workspace, new_id, sha256_file


@dataclass
class EvaluationResult:
    """A complete evaluation: the registry row, its folder, the summary and the gate's verdict."""

    evaluation: Artifact
    path: Path
    summary: dict[str, Any]
    gate: GateResult | None

    @property
    def report(self) -> Path:
        return self.path / "report.html"


def evaluate(
    workspace: Workspace,
    project: Project,
    *,
    run: str | None = None,
    runs: list[str] | None = None,
    dataset: str | None = None,
    cases_file: Path | None = None,
    baselines: list[str] | None = None,
    endpoints: list[str] | None = None,
    gate: bool = False,
    progress: Progress = SILENT,
    judge: JudgeConfig | str | None = None,
    reference: str | None = None,
) -> EvaluationResult:
    """Evaluate fine-tuned runs against baselines on the same cases with the same decoding.

    Args:
        run: A run id or registered model (`name@vN`); `runs` for several. Default: the latest
            complete run (trained on `dataset` when that is given).
        dataset: `name`, `name@version` or id; default the run's dataset, else the project's.
        cases_file: Hand-written cases (`.yaml` or `.jsonl`) added to the test split.
        baselines: Override `evaluate.baselines` (`base`, `few_shot`, `rag`; `[]` for none).
        endpoints: OpenAI-compatible URLs (or `NAME=URL`) answering as extra candidates.
        gate: Require objectives (an error without any); the CLI exits 1 when unmet.
        progress: Told the suite, then counts each model's answers (per candidate), losses and judgements.
        judge: A judge endpoint URL or `JudgeConfig` (default: `evaluate.judge` when the project has it).
        reference: Candidate the others are compared with item by item (default `base`).

    Raises:
        EvalError: Anything to fix before it can run; nothing is written then.
    """
    enforce(project.allow_hosts)
    suite = plan_suite(
        workspace,
        project,
        runs=([run] if run else []) + list(runs or []),
        dataset=dataset,
        cases_file=cases_file,
        baselines=baselines,
        endpoints=endpoints,
        gate=gate,
        judge=judge,
        reference=reference,
    )
    eval_id = new_id("eval")
    final = workspace.eval_dir(eval_id)
    parents = [r.id for r in suite.runs] + ([suite.dataset.id] if suite.dataset else [])
    meta = EvaluationMeta(
        candidates=[c.name for c in suite.candidates],
        task=suite.task,
        cases=len(suite.cases),
        runs=[r.id for r in suite.runs],
        dataset=suite.dataset.id if suite.dataset else None,
        owner=current_owner(),
    )
    workspace.registry.add(
        Artifact(
            id=eval_id,
            kind="evaluation",
            name=suite.name,
            hash="",
            key=suite.key,
            path=workspace.relative(final),
            status="running",
            meta=meta,
        ),
        parents=parents,
    )
    cache = GenerationCache.for_workspace(workspace)
    try:
        with stop_signals(), heartbeat(workspace.registry, eval_id):
            summary, rows, gate_result = _run(suite, project, cache, progress, eval_id)
            write_evaluation(workspace, final, summary, rows)
        meta = meta.replace(
            owner=None,
            scores=flat_scores(summary["scores"]),
            gate={"passed": gate_result.passed, "unmet": gate_result.unmet} if gate_result else None,
            gates=summary.get("gates"),
        )
        artifact = workspace.registry.update(
            eval_id, status="complete", hash=sha256_file(final / "results.jsonl"), meta=meta
        )
    except BaseException as error:
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        workspace.registry.update(eval_id, status=status, meta=meta.replace(error=str(error), owner=None))
        workspace.audit.append(f"evaluate.{status}", inputs=parents, outputs=[eval_id], error=str(error))
        raise
    finally:
        cache.close()
        suite.close()
    verdict = meta.gate.model_dump(include={"passed", "unmet"}) if meta.gate else None
    workspace.audit.append(
        "evaluate", inputs=parents, outputs=[eval_id], hash=artifact.hash, gate=verdict, cases=len(suite.cases)
    )
    return EvaluationResult(artifact, final, summary, gate_result)


def flat_scores(scores: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """`{candidate: {metric: value}}` with only measured values (what `register` and model cards read)."""
    return {
        candidate: {name: float(s["value"]) for name, s in metrics.items() if s.get("value") is not None}
        for candidate, metrics in scores.items()
    }


# --- the steps of one evaluation, in the order `_run` takes them -----------------------------------------


def _run(
    suite: Suite, project: Project, cache: GenerationCache, progress: Progress, eval_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]], GateResult | None]:
    """Generate → score → per-item rows and failures → judge → gate → summary."""
    settings = project.evaluate
    decoding = Decoding(max_new_tokens=settings.max_new_tokens)
    progress.say(
        f"    {len(suite.cases)} case(s) x {len(suite.candidates)} candidate(s): "
        + ", ".join(c.name for c in suite.candidates)
    )
    started = time.monotonic()
    outputs, losses = _generate(suite, decoding, settings.batch_size, cache, progress)
    seconds = time.monotonic() - started
    scores, passed = _score(suite, outputs, losses)
    confidence = _confidence(suite)
    rows, failures = _rows(suite, outputs, scores, passed, losses)
    judge_summary = judge_answers(suite, outputs, scores, rows, progress) if suite.judge else None
    summary_scores = {name: {m: s.to_json() for m, s in by_metric.items()} for name, by_metric in scores.items()}
    per_item = {name: {m: s.per_item for m, s in by_metric.items()} for name, by_metric in scores.items()}
    baseline_names = [c.name for c in suite.candidates if c.kind == "baseline"]
    gates = (
        {
            c.run or c.name: check_gate(
                settings.objectives, summary_scores[c.name], c.name, per_item=per_item, baselines=baseline_names
            )
            for c in suite.finetuned()
        }
        if settings.objectives
        else {}
    )
    gate_result = combine_gates(gates) if gates else None
    summary = {
        "id": eval_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **_describe_suite(suite, decoding, project),
        "scores": summary_scores,
        "details": {
            name: {m: compact_details(s.details, len(suite.cases)) for m, s in by_metric.items() if s.details}
            for name, by_metric in scores.items()
        },
        "comparisons": _compare(suite, scores),
        "loss": {name: value["summary"] for name, value in losses.items()},
        "confidence": confidence or None,
        "judge": judge_summary,
        "gate": gate_result.to_meta() if gate_result else None,
        "gates": {name: g.to_meta() for name, g in gates.items()} if len(gates) > 1 else None,
        "failures": failures,
        "generation": _generation_counts(suite, seconds),
        **suite.info,
    }
    ordered = [rows[(case.id, c.name)] for case in suite.cases for c in suite.candidates]
    return summary, ordered, gate_result


def _generate(
    suite: Suite, decoding: Decoding, batch_size: int, cache: GenerationCache, progress: Progress
) -> tuple[dict[str, list[GeneratedAnswer]], dict[str, Any]]:
    """Every candidate's answers (one model at a time, all its candidates in one batched pass) and
    each local model's held-out loss on the plain prompts."""
    outputs: dict[str, list[GeneratedAnswer]] = {}
    losses: dict[str, Any] = {}
    n = len(suite.cases)
    for key, model in suite.models.items():
        users = [c for c in suite.candidates if c.model == key]
        conversations = [conv for c in users for conv in suite.conversations[c.name]]
        answers = model.answer(
            conversations,
            decoding,
            batch_size=batch_size,
            cache=cache if isinstance(model, LocalModel) else None,
            progress=progress,
            label=", ".join(c.name for c in users),
        )
        for index, candidate in enumerate(users):
            outputs[candidate.name] = answers[index * n : (index + 1) * n]
        plain = next((c for c in users if c.strategy == "plain"), None)
        if isinstance(model, LocalModel) and suite.task in LOSS_TASKS and plain:
            items = [
                (conv, case.expected) for conv, case in zip(suite.conversations[plain.name], suite.cases, strict=True)
            ]
            values = model.losses(items, batch_size=batch_size, cache=cache, progress=progress, label=plain.name)
            losses[plain.name] = {
                "summary": loss_summary(values),
                "per_item": [v[0] / v[1] if v and v[1] else None for v in values],
            }
        model.unload()
    return outputs, losses


def _confidence(suite: Suite) -> dict[str, Any]:
    """Per classification head: calibration on the test cases and what its abstain threshold keeps."""
    from tailorlm.evaluate.classify import ClassifierCandidate

    gold = [case.label if case.label is not None else case.expected for case in suite.cases]
    return {
        c.name: model.confidence_report(gold)
        for c in suite.candidates
        if isinstance(model := suite.models.get(c.model), ClassifierCandidate)
    }


def _score(
    suite: Suite, outputs: dict[str, list[GeneratedAnswer]], losses: dict[str, Any]
) -> tuple[dict[str, dict[str, Score]], dict[str, list[bool | None]]]:
    """Each candidate's metric scores (and held-out loss), and whether each answer passed."""
    scores: dict[str, dict[str, Score]] = {}
    passed: dict[str, list[bool | None]] = {}
    for candidate in suite.candidates:
        texts = [g.text for g in outputs[candidate.name]]
        # What the candidate was shown (question, few-shot turns, retrieved passages): facts found
        # there are not invented (metric `invented_facts`), and numbers there are not hallucinated.
        metric_cases = [
            c.metric_case(context=p) for c, p in zip(suite.cases, _prompts(suite, candidate.name), strict=True)
        ]
        scores[candidate.name], passed[candidate.name] = score_candidate(
            suite.task, suite.metrics, texts, metric_cases, suite.options
        )
        summary_loss = losses.get(candidate.name, {}).get("summary", {})
        for name in ("loss", "perplexity"):
            if name in summary_loss:
                scores[candidate.name][name] = Score(
                    summary_loss[name], (float("nan"), float("nan")), [], n=int(summary_loss["tokens"])
                )
    return scores, passed


def _rows(
    suite: Suite,
    outputs: dict[str, list[GeneratedAnswer]],
    scores: dict[str, dict[str, Score]],
    passed: dict[str, list[bool | None]],
    losses: dict[str, Any],
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Any]]:
    """One results.jsonl row per (case, candidate) with its diagnosed errors, and each candidate's
    failure analysis."""
    cases = suite.cases
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    failures: dict[str, Any] = {}
    for candidate in suite.candidates:
        prompts = _prompts(suite, candidate.name)
        predicted = scores[candidate.name].get("accuracy")
        labels = predicted.details.get("predicted") if predicted else None
        loss = losses.get(candidate.name, {}).get("per_item")
        errors = []
        for index, (case, generation) in enumerate(zip(cases, outputs[candidate.name], strict=True)):
            item_scores = {
                name: s.per_item[index] for name, s in scores[candidate.name].items() if len(s.per_item) == len(cases)
            }
            found = diagnose(
                suite.task,
                case,
                generation.text,
                finished=generation.finished,
                prompt_text=prompts[index],
                scores=item_scores,
                predicted_label=labels[index] if labels else None,
            )
            errors.append(found)
            rows[(case.id, candidate.name)] = {
                "case": case.id,
                "candidate": candidate.name,
                "origin": case.origin,
                "source": case.source,
                "tags": case.tags,
                "label": case.label,
                "input": case.input_text,
                "expected": case.expected,
                "output": generation.text,
                "tokens": generation.tokens,
                "finished": generation.finished,
                "cached": generation.cached,
                "prompt_truncated": generation.prompt_truncated,
                "request_error": generation.error,
                "scores": {k: finite(v) for k, v in item_scores.items()},
                "passed": passed[candidate.name][index],
                "errors": found,
                "predicted_label": labels[index] if labels else None,
                "loss": finite(loss[index]) if loss else None,
                "context": suite.contexts.get(candidate.name, [[]] * len(cases))[index],
            }
        failures[candidate.name] = analyse(
            suite.task, cases, [g.text for g in outputs[candidate.name]], errors, passed[candidate.name], labels
        )
    return rows, failures


def _prompts(suite: Suite, candidate: str) -> list[str]:
    """The text of each conversation the candidate was shown."""
    return ["\n".join(m["content"] for m in conversation) for conversation in suite.conversations[candidate]]


def _compare(suite: Suite, scores: dict[str, dict[str, Score]]) -> dict[str, Any]:
    """Each candidate against the reference, item by item."""
    case_ids = [c.id for c in suite.cases]
    reference = scores[suite.reference]
    return {
        c.name: compare_to_reference(scores[c.name], reference, case_ids, suite.task)
        for c in suite.candidates
        if c.name != suite.reference
    }


def _describe_suite(suite: Suite, decoding: Decoding, project: Project) -> dict[str, Any]:
    """What was evaluated, on what, how: the summary's fixed part."""
    cases = suite.cases
    return {
        "task": suite.task,
        "name": suite.name,
        "dataset": (
            {"id": suite.dataset.id, "name": suite.dataset.name, "version": suite.dataset.version}
            if suite.dataset
            else None
        ),
        "runs": [r.id for r in suite.runs],
        "cases": {
            "total": len(cases),
            "test": sum(c.origin == "test" for c in cases),
            "file": sum(c.origin != "test" for c in cases),
        },
        "metrics": suite.metrics,
        "reference": suite.reference,
        "decoding": decoding.to_json(),
        "objectives": dict(project.evaluate.objectives),
        "candidates": [c.to_json() for c in suite.candidates],
    }


def _generation_counts(suite: Suite, seconds: float) -> dict[str, Any]:
    generated = sum(getattr(m, "generated", 0) for m in suite.models.values())
    answers = len(suite.cases) * len(suite.candidates)
    return {"answers": answers, "generated": generated, "cached": answers - generated, "seconds": round(seconds, 3)}
