"""The judge: robust parsing, the swap rule, and the protocol against a real local server
(`tailorlm.serve` on loopback, serving the tiny model). A random tiny model's verdicts are noise, so
the server test checks what was asked (both orders, request counts), not what was answered."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from helpers.serve import RecordingMiddleware
from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.judge import (
    Judge,
    JudgeConfig,
    PairJudgement,
    agreement,
    combine_verdicts,
    load_human_labels,
    parse_score,
    parse_verdict,
    win_rate,
)


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Score: 4\nGood answer.", 4),
        ("score=5", 5),
        ("I'd give it a 3/5 because it misses the link.", 3),
        ("**Score:** **2**", 2),
        ('{"score": 1, "why": "wrong"}', 1),
        ("[[4]]", 4),
        ("5", 5),
        ("4. Mostly right.", 4),
        ("Rating: 3", 3),
        ("Score: 10/10", None),
        ("Score: 4.5", None),
        ("The answer mentions 3 items.", None),
        ("", None),
    ],
)
def test_scores_are_parsed_robustly(reply: str, score: int | None) -> None:
    assert parse_score(reply) == score


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("[[A]]\nA is more complete.", "A"),
        ("[[B]]", "B"),
        ("[[TIE]] both fine", "tie"),
        ("Verdict: B", "B"),
        ("Answer A is better because...", "A"),
        ("B", "B"),
        ("tie", "tie"),
        ("[[A]] ... on reflection [[B]]", None),
        ("Both have merits.", None),
    ],
)
def test_verdicts_are_parsed(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_a_win_counts_only_when_it_survives_the_swap() -> None:
    assert combine_verdicts("A", "B") == ("win", True)  # candidate preferred in both positions
    assert combine_verdicts("B", "A") == ("loss", True)
    assert combine_verdicts("tie", "tie") == ("tie", True)
    assert combine_verdicts("A", "A") == ("tie", False)  # position bias: always the first answer
    assert combine_verdicts("B", "B") == ("tie", False)
    assert combine_verdicts("A", None) == ("tie", False)
    pairs = [
        PairJudgement(o, c, None, None, ("", ""))
        for o, c in [("win", True), ("tie", False), ("loss", True), ("win", True)]
    ]
    assert win_rate(pairs) == {"value": 0.5, "win": 2, "loss": 1, "tie": 1, "n": 4, "inconsistent": 1}


def test_agreement_with_people(tmp_path: Path) -> None:
    path = tmp_path / "human.jsonl"
    rows = [{"id": f"c{i}", "score": s} for i, s in enumerate([1, 2, 3, 4, 5])]
    rows += [{"id": "c0", "vs": "base", "verdict": "win"}, {"id": "c1", "vs": "base", "verdict": "loss"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    labels = load_human_labels(path)
    scores = {(f"c{i}", "finetuned"): s for i, s in enumerate([1, 2, 3, 4, 5])}
    verdicts = {("c0", "finetuned", "base"): "win", ("c1", "finetuned", "base"): "loss"}
    result = agreement(labels, scores, verdicts, "finetuned")
    assert result["scores"] == {"kappa": 1.0, "n": 5}
    assert result["verdicts"]["n"] == 2 and result["verdicts"]["kappa"] == 1.0
    path.write_text('{"id": "c0", "score": 7}\n', encoding="utf-8")
    with pytest.raises(EvalError, match=r"human.jsonl:1: score must be 1-5"):
        load_human_labels(path)


# --- the protocol against a real server ----------------------------------------------------------


def test_pairwise_asks_both_orders(judge_server: tuple[str, RecordingMiddleware]) -> None:
    url, recorder = judge_server
    before = len(recorder.bodies)
    judge = Judge(JudgeConfig(endpoint=url, max_tokens=4))
    try:
        result = judge.compare("Where is my order?", "CANDIDATE-ANSWER", "BASELINE-ANSWER", "It shipped.")
        scored = judge.score("Where is my order?", "CANDIDATE-ANSWER", "It shipped.", rubric="Be exact.")
    finally:
        judge.close()
    asked = [b["messages"][0]["content"] for b in recorder.bodies[before:]]
    assert len(asked) == 3 and judge.requests == 3
    assert "Answer A:\nCANDIDATE-ANSWER" in asked[0] and "Answer B:\nBASELINE-ANSWER" in asked[0]
    assert "Answer A:\nBASELINE-ANSWER" in asked[1] and "Answer B:\nCANDIDATE-ANSWER" in asked[1]
    assert "Rubric: Be exact." in asked[2]
    assert all(b["temperature"] == 0 and b["max_tokens"] == 4 for b in recorder.bodies[before:])
    # whatever a random model says, the outcome follows the swap rule
    assert (result.outcome, result.consistent) == combine_verdicts(result.candidate_first, result.candidate_second)
    assert scored.score == parse_score(scored.reply)


def test_judge_that_is_down_or_not_allowlisted_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    with pytest.raises(EvalError, match=rf"judge: endpoint http://127.0.0.1:{port}/v1 can't be reached"):
        Judge(JudgeConfig(endpoint=f"http://127.0.0.1:{port}/v1"))
    with pytest.raises(EvalError, match=r"judge: endpoint .* refused: .*allow_hosts"):
        Judge(JudgeConfig(endpoint="http://judge.not-allowlisted.example:8000/v1"))
    with pytest.raises(EvalError, match="not an http"):
        Judge(JudgeConfig(endpoint="ftp://127.0.0.1/v1"))
