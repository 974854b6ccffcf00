"""`tailorlm eval` for classification: the ladder of baselines (label-name similarity, kNN over the train
split, TF-IDF + logistic regression) and a classification head, scored on the same test cases with CIs,
and the head's calibration on test in the summary and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.classify import ticket_examples
from helpers.data import register_dataset
from tailorlm.config import parse_project
from tailorlm.evaluate import evaluate
from tailorlm.evaluate.cases import EvalError
from tailorlm.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LADDER = ["label_similarity", "knn", "tfidf"]


def tickets_project(model_dir: Path, root: Path, **evaluate_settings):
    return parse_project(
        {
            "project": "tickets",
            "base_model": str(model_dir),
            "task": "classify",
            "train": {"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0},
            "evaluate": {"baselines": LADDER, **evaluate_settings},
        },
        root=root,
    )


def test_the_ladder_and_a_classification_head_on_the_same_cases(workspace, tiny_model_dir, tmp_path):
    register_dataset(workspace, ticket_examples(150), name="tickets", val=24, test=30)
    project = tickets_project(tiny_model_dir, tmp_path, objectives={"accuracy": "beats_baselines"})
    run = train(workspace, project).run
    result = evaluate(workspace, project, run=run.id, gate=True)
    scores = result.summary["scores"]
    assert set(scores) == {*LADDER, "finetuned"}
    for name in scores:
        accuracy = scores[name]["accuracy"]
        assert 0 <= accuracy["value"] <= 1 and accuracy["n"] == 30 and len(accuracy["ci"]) == 2
        assert "macro_f1" in scores[name]
    assert scores["tfidf"]["accuracy"]["value"] >= 0.9  # topic words are separable: TF-IDF finds them
    assert scores["finetuned"]["accuracy"]["value"] >= 0.8
    confidence = result.summary["confidence"]["finetuned"]
    assert 0 <= confidence["ece"] <= 1 and 0 <= confidence["coverage"] <= 1
    assert confidence["curve"][0]["coverage"] == 1.0
    assert "Confidence: calibration" in result.report.read_text()
    assert result.gate is not None  # the gate ran against every rung (passed or not, it says why)
    assert set(result.gate.to_meta()["checks"][0]["versus"]) == set(LADDER)


def test_generative_baselines_on_an_encoder_are_refused_with_the_alternative(workspace, tiny_model_dir, tmp_path):
    from helpers.classify import build_tiny_encoder

    encoder = build_tiny_encoder(tmp_path / "encoder", tiny_model_dir)
    register_dataset(workspace, ticket_examples(30), name="tickets", val=0, test=6)
    project = tickets_project(encoder, tmp_path, baselines=["base"])
    with pytest.raises(EvalError, match="encoder that can't generate; for task classify use label_similarity"):
        evaluate(workspace, project)


def test_an_encoder_without_baselines_set_is_measured_against_the_ladder(workspace, tiny_model_dir, tmp_path):
    from helpers.classify import build_tiny_encoder

    encoder = build_tiny_encoder(tmp_path / "encoder", tiny_model_dir)
    register_dataset(workspace, ticket_examples(30), name="tickets", val=0, test=6)
    project = parse_project({"project": "tickets", "base_model": str(encoder), "task": "classify"}, root=tmp_path)
    result = evaluate(workspace, project)
    assert [c["name"] for c in result.summary["candidates"]] == LADDER
    assert all(result.summary["scores"][name]["accuracy"]["n"] == 6 for name in LADDER)


def test_a_multi_label_head_is_scored_by_label_sets(workspace, tiny_model_dir, tmp_path):
    """A multi-label project is scored with subset accuracy, micro- and macro-F1 over the label sets (each
    with a CI); the head answers with every label over its per-label threshold."""
    register_dataset(workspace, ticket_examples(150, multi=True), name="tickets", val=30, test=30)
    project = parse_project(
        {
            "project": "tickets",
            "base_model": str(tiny_model_dir),
            "task": "classify",
            "train": {
                "method": "lora",
                "multi_label": True,
                "max_steps": 80,
                "batch_size": 8,
                "learning_rate": 5e-3,
                "warmup_ratio": 0.0,
            },
            "evaluate": {"baselines": ["tfidf"]},
        },
        root=tmp_path,
    )
    run = train(workspace, project).run
    result = evaluate(workspace, project, run=run.id)
    scores = result.summary["scores"]
    assert set(scores) == {"tfidf", "finetuned"}
    for name in scores:
        assert {"subset_accuracy", "micro_f1", "label_macro_f1"} <= set(scores[name])
        assert "accuracy" not in scores[name]  # a label set is not one label
        assert scores[name]["subset_accuracy"]["n"] == 30 and len(scores[name]["micro_f1"]["ci"]) == 2
    head = scores["finetuned"]
    assert head["micro_f1"]["value"] >= 0.7 and head["subset_accuracy"]["value"] >= 0.4
