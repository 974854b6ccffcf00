"""The parts around the runner: the gate, failure analysis, prompt strategies, scoring and the cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tailorlm.evaluate.baselines import BM25Retriever, Passage, PromptBuilder, example_passages, pick_shots
from tailorlm.evaluate.cache import GenerationCache, cache_key, model_fingerprint
from tailorlm.evaluate.cases import EvalCase, EvalError
from tailorlm.evaluate.failures import analyse, diagnose, numbers
from tailorlm.evaluate.gate import check_gate, combine_gates, validate_objectives
from tailorlm.evaluate.metrics import Case
from tailorlm.evaluate.scoring import compare_to_reference, score_candidate, select_metrics
from tailorlm.formats.examples import Example


def test_gate_directions_and_unmeasured_scores() -> None:
    scores = {
        "accuracy": {"value": 0.96, "ci": [0.9, 0.99]},
        "perplexity": {"value": 12.0},
        "field_f1": {"value": None},
    }
    gate = check_gate({"accuracy": 0.95, "perplexity": 10, "field_f1": 0.9}, scores, "finetuned")
    assert not gate.passed
    assert gate.unmet == ["perplexity 12 (needs <= 10)", "field_f1 not measured (needs >= 0.9)"]
    assert gate.to_meta()["passed"] is False and gate.to_meta()["checks"][0]["ci"] == [0.9, 0.99]
    assert check_gate({"accuracy": 0.95, "perplexity": 20}, scores, "finetuned").passed
    both = combine_gates({"run-a": gate, "run-b": check_gate({"accuracy": 0.5}, scores, "x")})
    assert not both.passed and both.unmet[0].startswith("run-a: perplexity")
    validate_objectives({"accuracy": 0.9, "judge_win_rate_vs_rag": 0.6, "loss": 2.0}, ["base", "rag"])
    with pytest.raises(EvalError, match="judge_win_rate_vs_rag"):
        validate_objectives({"judge_win_rate_vs_rag": 0.6}, ["base"])


def test_numbers_and_diagnosis() -> None:
    assert numbers("Total RM 1,234.50 on 09/01/2019, step 3") == {"1234.5", "2019"}
    case = EvalCase(
        id="c",
        messages=[{"role": "user", "content": "ACME, TOTAL 31.00, 09/01/2019"}],
        expected='{"company": "ACME", "total": "31.00", "date": "09/01/2019"}',
    )
    prompt = case.input_text
    assert diagnose("extract", case, "", finished=True, prompt_text=prompt, scores={}) == ["empty"]
    assert diagnose("extract", case, "The company is ACME", finished=True, prompt_text=prompt, scores={}) == [
        "invalid_json"
    ]
    found = diagnose(
        "extract", case, '{"company": "ACME", "total": "45.50"}', finished=False, prompt_text=prompt, scores={}
    )
    assert found == ["too_long", "missing_field", "wrong_value", "hallucinated_number"]
    label_case = EvalCase(id="l", messages=[{"role": "user", "content": "x"}], expected="billing", label="billing")
    assert diagnose(
        "classify",
        label_case,
        "shipping",
        finished=True,
        prompt_text="x",
        scores={"accuracy": 0.0},
        predicted_label="shipping",
    ) == ["wrong_label"]
    assert diagnose(
        "classify", label_case, "hmm", finished=True, prompt_text="x", scores={"accuracy": 0.0}, predicted_label=None
    ) == ["unparseable_label"]
    chat = EvalCase(
        id="q",
        messages=[{"role": "user", "content": "refund?"}],
        expected="Ten days.",
        must_contain=["ten days"],
        must_not_contain=["call us"],
    )
    assert diagnose(
        "chat",
        chat,
        "Please call us.",
        finished=True,
        prompt_text="refund?",
        scores={"must_contain": 0.0, "must_not_contain": 0.0},
    ) == ["missing_required", "forbidden_content"]


def test_failures_are_grouped_with_suggestions() -> None:
    labels = ["billing", "billing", "billing", "shipping"]
    cases = [
        EvalCase(
            id=f"c{i}",
            messages=[{"role": "user", "content": "t"}],
            expected=g,
            label=g,
            source="tickets.csv",
            tags=["web"] if i < 2 else [],
        )
        for i, g in enumerate(labels)
    ]
    outputs = ["shipping", "shipping", "billing", "???"]
    errors = [["wrong_label"], ["wrong_label"], [], ["unparseable_label"]]
    analysis = analyse(
        "classify", cases, outputs, errors, [False, False, True, False], ["shipping", "shipping", "billing", None]
    )
    assert analysis["failed"] == 3 and analysis["total"] == 4
    assert analysis["by_error"]["wrong_label"] == {"count": 2, "cases": ["c0", "c1"]}
    assert analysis["by_label"]["billing"]["count"] == 2 and analysis["by_tag"]["web"]["count"] == 2
    assert analysis["confusions"] == [{"gold": "billing", "predicted": "shipping", "count": 2}]
    advice = " ".join(analysis["suggestions"])
    assert "2 of 3 'billing' cases were answered 'shipping'" in advice
    assert "named no single label" in advice and "share the source 'tickets.csv'" in advice


def test_prompt_strategies() -> None:
    train = [
        Example.chat(system="S", user=f"Question {i} about {topic}", assistant=f"Answer about {topic}", label=topic)
        for i, topic in enumerate(["refunds", "shipping", "pairing", "refunds"])
    ]
    case = EvalCase(id="c", messages=[{"role": "user", "content": "How long do refunds take?"}])
    builder = PromptBuilder(
        "You are Acme support.",
        shots=pick_shots(train, 2, task="chat"),
        retriever=BM25Retriever(example_passages(train)),
        rag_k=2,
    )
    assert builder.plain(case) == [{"role": "system", "content": "You are Acme support."}, *case.messages]
    shots = builder.few_shot(case)
    assert [m["role"] for m in shots] == ["system", "user", "assistant", "user", "assistant", "user"]
    found = builder.retrieve(case)
    assert found and all("refunds" in p.text for p in found)
    rag = builder.rag(case, found)
    assert rag[0]["content"].startswith("You are Acme support.\n\nAnswer using the company's documents")
    assert "[1] " in rag[0]["content"] and rag[-1] == case.messages[-1]
    with_system = EvalCase(id="s", messages=[{"role": "system", "content": "Own"}, *case.messages])
    assert builder.plain(with_system)[0]["content"] == "Own"  # the case's own system turn wins
    by_label = pick_shots(train, 3, task="classify")
    assert len({e.label for e in by_label}) == 3  # one per label first
    assert BM25Retriever([Passage("alpha beta")]).search("gamma", 3) == []
    with pytest.raises(EvalError, match="nothing to retrieve"):
        BM25Retriever([])


def test_scores_have_intervals_and_pass_verdicts() -> None:
    cases = [
        Case(expected="refunds take ten days", must_contain=["ten"]),
        Case(expected="it shipped"),
        Case(expected="hold the button"),
    ]
    outputs = ["refunds take ten days", "it has not shipped yet", "no idea"]
    scores, passed = score_candidate("chat", ["rouge_l", "must_contain"], outputs, cases, {})
    assert passed == [True, True, False]  # rouge_l >= 0.5 and the must_contain check holds
    assert scores["pass_rate"].value == pytest.approx(2 / 3)
    low, high = scores["rouge_l"].ci
    assert low <= scores["rouge_l"].value <= high
    reference, _ = score_candidate("chat", ["rouge_l", "must_contain"], ["no", "no", "no"], cases, {})
    comparison = compare_to_reference(scores, reference, ["a", "b", "c"], "chat")
    assert comparison["rouge_l"]["wins"] == 2 and comparison["pass_rate"]["flipped"] == ["a", "b"]
    assert select_metrics("classify", None, ["accuracy", "judge"]) == ["accuracy", "macro_f1"]
    assert select_metrics("chat", ["rouge_l"], ["field_f1", "perplexity"]) == ["rouge_l", "field_f1"]
    with pytest.raises(ValueError, match="unknown metric 'bleu2'"):
        select_metrics("chat", ["bleu2"], [])


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path / "cache" / "generations.sqlite")
    key = cache_key("generate", "model", "prompt", {"max_new_tokens": 8})
    assert key != cache_key("generate", "model", "prompt", {"max_new_tokens": 9})
    assert cache.get_many([key]) == {} and cache.misses == 1
    cache.put_many([(key, {"text": "hi", "tokens": 1})])
    assert cache.get_many([key, key]) == {key: {"text": "hi", "tokens": 1}} and cache.hits == 1
    assert len(cache) == 1
    cache.close()
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"a": 1}))
    before = model_fingerprint(model)
    (model / "config.json").write_text(json.dumps({"a": 2}))
    assert model_fingerprint(model) != before
    assert not math.isnan(len(before))
