"""The judge's part of an evaluation: a 1-5 score for every answer (pointwise) and each fine-tuned
candidate against each judged baseline, answer by answer (pairwise, swap-consistent); both are added
to the evaluation's scores and per-item rows. The judge itself (prompts, parsing, requests) is `judge.py`."""

from __future__ import annotations

from typing import Any

from tailorlm.evaluate.generation import GeneratedAnswer
from tailorlm.evaluate.judge import agreement, win_rate
from tailorlm.evaluate.scoring import JUDGE_WIN, Score
from tailorlm.evaluate.stats import bootstrap_mean_ci
from tailorlm.evaluate.suite import Suite
from tailorlm.progress import Progress


def judge_answers(
    suite: Suite,
    outputs: dict[str, list[GeneratedAnswer]],
    scores: dict[str, dict[str, Score]],
    rows: dict[tuple[str, str], dict[str, Any]],
    progress: Progress,
) -> dict[str, Any]:
    """The judge's pointwise scores and pairwise win rates (added to `scores` and `rows`)."""
    judge = suite.judge
    assert judge is not None
    questions = ["\n".join(m["content"] for m in c.messages if m["role"] != "system") for c in suite.cases]
    point = _judge_pointwise(suite, questions, outputs, scores, rows, progress) if suite.judge_pointwise else {}
    verdicts, win_rates = _judge_pairs(suite, questions, outputs, scores, rows, progress)
    summary: dict[str, Any] = {
        "endpoint": judge.config.endpoint,
        "model": judge.model,
        "requests": judge.requests,
        "win_rates": win_rates,
    }
    if suite.human_labels:
        finetuned = suite.finetuned()
        default = finetuned[0].name if finetuned else suite.candidates[0].name
        summary["agreement"] = agreement(suite.human_labels, point, verdicts, default)
    return summary


def _judge_pointwise(
    suite: Suite,
    questions: list[str],
    outputs: dict[str, list[GeneratedAnswer]],
    scores: dict[str, dict[str, Score]],
    rows: dict[tuple[str, str], dict[str, Any]],
    progress: Progress,
) -> dict[tuple[str, str], int | None]:
    """A 1-5 score for every answer; returns them by (case, candidate)."""
    assert suite.judge is not None
    cases = suite.cases
    items = [
        (q, g.text, c.expected, c.rubric)
        for cand in suite.candidates
        for q, g, c in zip(questions, outputs[cand.name], cases, strict=True)
    ]
    judged = iter(suite.judge.score_many(items, progress=progress))
    point: dict[tuple[str, str], int | None] = {}
    for cand in suite.candidates:
        per_item: list[float | None] = []
        for case in cases:
            score = next(judged).score
            point[(case.id, cand.name)] = score
            rows[(case.id, cand.name)].setdefault("judge", {})["score"] = score
            per_item.append(None if score is None else float(score))
        valid = [s for s in per_item if s is not None]
        scores[cand.name]["judge"] = Score(
            sum(valid) / len(valid) if valid else float("nan"), bootstrap_mean_ci(valid), per_item, n=len(valid)
        )
    return point


def _judge_pairs(
    suite: Suite,
    questions: list[str],
    outputs: dict[str, list[GeneratedAnswer]],
    scores: dict[str, dict[str, Score]],
    rows: dict[tuple[str, str], dict[str, Any]],
    progress: Progress,
) -> tuple[dict[tuple[str, str, str], str], dict[str, dict[str, Any]]]:
    """Each fine-tuned candidate against each judged baseline, answer by answer; returns the verdicts
    by (case, candidate, baseline) and the win rates."""
    assert suite.judge is not None
    cases = suite.cases
    verdicts: dict[tuple[str, str, str], str] = {}
    win_rates: dict[str, dict[str, Any]] = {}
    for candidate in suite.finetuned():
        for baseline in suite.judge_pairs:
            pairs = [
                (q, a.text, b.text, c.expected, c.rubric)
                for q, a, b, c in zip(questions, outputs[candidate.name], outputs[baseline], cases, strict=True)
            ]
            judged_pairs = suite.judge.compare_many(pairs, progress=progress)
            for case, pair in zip(cases, judged_pairs, strict=True):
                verdicts[(case.id, candidate.name, baseline)] = pair.outcome
                rows[(case.id, candidate.name)].setdefault("judge", {})[f"vs_{baseline}"] = pair.outcome
            rate = win_rate(judged_pairs)
            win_rates.setdefault(candidate.name, {})[baseline] = rate
            wins = [1.0 if p.outcome == "win" else 0.0 for p in judged_pairs]
            per_item: list[float | None] = list(wins)
            scores[candidate.name][f"{JUDGE_WIN}{baseline}"] = Score(
                rate["value"] if rate["value"] is not None else float("nan"),
                bootstrap_mean_ci(wins),
                per_item,
                n=len(wins),
            )
    return verdicts, win_rates
