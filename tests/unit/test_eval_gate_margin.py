"""The gate's margin objective `beats_baselines`: constructed per-item scores through `check_gate`, the
objective's validation, and the project-file form."""

from __future__ import annotations

import re

import pytest

from tailorlm.config import ConfigError, parse_project
from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.gate import check_gate, validate_objectives

N = 30
# The fine-tuned model recalls more facts than base on almost every item, and about as many as rag.
FINETUNED = [0.8 + 0.01 * (i % 5) for i in range(N)]
BASE = [0.3 + 0.02 * (i % 7) for i in range(N)]
RAG = [0.8 + 0.01 * ((i + 2) % 5) for i in range(N)]
PER_ITEM = {
    "finetuned": {"fact_recall": FINETUNED, "invented_facts": [0.0] * N},
    "base": {"fact_recall": BASE, "invented_facts": [0.5] * (N - 1) + [None]},
    "rag": {"fact_recall": RAG, "invented_facts": [0.2 + 0.1 * (i % 3) for i in range(N)]},
}
SCORES = {"fact_recall": {"value": sum(FINETUNED) / N, "ci": [0.8, 0.84]}, "invented_facts": {"value": 0.0}}


def test_beats_every_baseline_or_names_the_one_it_does_not() -> None:
    gate = check_gate(
        {"fact_recall": "beats_baselines"}, SCORES, "finetuned", per_item=PER_ITEM, baselines=["base", "rag"]
    )
    assert not gate.passed
    (line,) = gate.unmet  # base is beaten, rag is not
    assert re.fullmatch(r"fact_recall: \+0 \[-\S+, \+\S+\] vs rag — not above 0 at 95%", line), line
    meta = gate.to_meta()["checks"][0]
    assert meta["objective"] == "beats_baselines" and meta["threshold"] is None
    base = meta["versus"]["base"]
    assert base["passed"] and base["n"] == N and base["wins"] == N
    assert base["ci"][0] > 0 and base["mean_diff"] == pytest.approx(sum(FINETUNED) / N - sum(BASE) / N)
    assert not meta["versus"]["rag"]["passed"]

    against_base = check_gate(
        {"fact_recall": "beats_baselines"}, SCORES, "finetuned", per_item=PER_ITEM, baselines=["base"]
    )
    assert against_base.passed and against_base.unmet == []
    (explained,) = against_base.explain()
    assert re.fullmatch(r"fact_recall: \+0\.\d+ \[\+0\.\d+, \+0\.\d+\] vs base — above 0 at 95%", explained), explained


def test_lower_is_better_metrics_must_come_out_below() -> None:
    gate = check_gate(
        {"invented_facts": "beats_baselines", "fact_recall": 0.5},
        SCORES,
        "finetuned",
        per_item=PER_ITEM,
        baselines=["base", "rag"],
    )
    assert gate.passed, gate.unmet
    versus = gate.to_meta()["checks"][0]["versus"]
    assert versus["base"]["n"] == N - 1  # items either side left unscored are skipped
    assert versus["base"]["mean_diff"] == pytest.approx(-0.5) and versus["base"]["ci"][1] < 0
    worse = {**PER_ITEM, "finetuned": {"invented_facts": [0.6] * N}}
    (line,) = check_gate(
        {"invented_facts": "beats_baselines"}, SCORES, "finetuned", per_item=worse, baselines=["base"]
    ).unmet
    assert line == "invented_facts: +0.1 [+0.1, +0.1] vs base — not below 0 at 95%"


def test_the_verdict_is_deterministic_and_unmeasured_is_unmet() -> None:
    noisy = {
        "finetuned": {"rouge_l": [0.1 * (i % 10) for i in range(N)]},
        "base": {"rouge_l": [0.1 * ((i * 7) % 10) for i in range(N)]},
    }
    runs = [
        check_gate({"rouge_l": "beats_baselines"}, {}, "finetuned", per_item=noisy, baselines=["base"]).to_meta()
        for _ in range(3)
    ]
    assert runs[0] == runs[1] == runs[2]
    unmeasured = check_gate({"rouge_l": "beats_baselines"}, {}, "finetuned", per_item={}, baselines=["base"])
    assert unmeasured.unmet == ["rouge_l: not measured vs base (no item scored for both)"]
    none_scored = {"finetuned": {"rouge_l": [None] * 3}, "base": {"rouge_l": [0.1] * 3}}
    assert not check_gate(
        {"rouge_l": "beats_baselines"}, {}, "finetuned", per_item=none_scored, baselines=["base"]
    ).passed
    ties = {"finetuned": {"rouge_l": [0.5] * 5}, "base": {"rouge_l": [0.5] * 5}}
    (line,) = check_gate({"rouge_l": "beats_baselines"}, {}, "finetuned", per_item=ties, baselines=["base"]).unmet
    assert line == "rouge_l: +0 [+0, +0] vs base — not above 0 at 95%"
    alone = check_gate({"rouge_l": "beats_baselines"}, {}, "finetuned", per_item=ties, baselines=[])
    assert alone.unmet == ["rouge_l: no baseline to beat (evaluate.baselines is empty)"]


def test_validation_of_the_objective() -> None:
    validate_objectives({"fact_recall": "beats_baselines", "rouge_l": 0.15, "pass_rate": "beats_baselines"}, ["base"])
    with pytest.raises(EvalError, match=r"evaluate.objectives.perplexity: beats_baselines compares per-item"):
        validate_objectives({"perplexity": "beats_baselines"}, ["base"])
    with pytest.raises(EvalError, match=r"macro_f1 has none"):
        validate_objectives({"macro_f1": "beats_baselines"}, ["base"])
    with pytest.raises(EvalError, match=r"needs a baseline to beat; set evaluate.baselines"):
        validate_objectives({"fact_recall": "beats_baselines"}, ["endpoint"], baselines=[])
    with pytest.raises(EvalError, match=r"must be a number or 'beats_baselines'"):
        validate_objectives({"rouge_l": "high"}, ["base"])


def test_project_file_form(tmp_path) -> None:
    data = {"project": "p", "base_model": "m", "evaluate": {"objectives": {"fact_recall": "beats_baselines"}}}
    project = parse_project(data, root=tmp_path)
    assert project.evaluate.objectives == {"fact_recall": "beats_baselines"}
    data["evaluate"]["objectives"] = {"fact_recall": "beat_baselines", "rouge_l": 0.15}
    with pytest.raises(ConfigError, match=r"evaluate.objectives: .*fact_recall: must be a number \(a threshold\) or"):
        parse_project(data, root=tmp_path)
