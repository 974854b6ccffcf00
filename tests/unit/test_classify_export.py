"""Exporting a classification run: `merge` folds the LoRA adapter and its trained head into the base and
writes a folder plain transformers loads as a text classifier, with the labels and `classifier.json`, and the
parity check in the report; the generative targets refuse it with the reason, writing nothing."""

from __future__ import annotations

import json

import pytest

from helpers.classify import ticket_examples
from helpers.data import register_dataset
from tailorlm.config import parse_project
from tailorlm.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_merge_writes_a_standalone_text_classifier(workspace, tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, pipeline

    from tailorlm.classifier import load_classifier
    from tailorlm.export import ExportError, export
    from tailorlm.modeling import load_tokenizer

    register_dataset(workspace, ticket_examples(96), name="tickets", val=24, test=12)
    project = parse_project(
        {
            "project": "tickets",
            "base_model": str(tiny_model_dir),
            "task": "classify",
            "train": {"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0},
        },
        root=tmp_path,
    )
    run = train(workspace, project)
    result = export(workspace, run.run.id, "merge", output=tmp_path / "merged")
    [parity] = [c for c in result.report["checks"] if c["name"] == "classifier parity (fp32)"]
    assert parity["status"] == "passed" and parity["same_label"] == parity["texts"] > 0, parity
    folder = tmp_path / "merged"
    assert not (folder / "adapter_config.json").exists() and (folder / "classifier.json").is_file()
    assert json.loads((folder / "config.json").read_text())["id2label"] == {
        "0": "billing",
        "1": "shipping",
        "2": "technical",
    }

    # plain transformers, no peft, no tailorlm: the same labels as the run's own classifier
    network = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    classify = pipeline("text-classification", model=network, tokenizer=load_tokenizer(folder), device=-1)
    texts = ["parcel shipped the days", "restart hub button thank", "invoice price we you"]
    ours = load_classifier(run.run_dir / "adapter", tiny_model_dir, device="cpu").predict(texts, min_confidence=0)
    assert [answer["label"] for answer in classify(texts)] == [p.label for p in ours]

    with pytest.raises(ExportError, match="classification model: export it with the `merge` target"):
        export(workspace, run.run.id, "gguf", output=tmp_path / "gguf")
    assert not (tmp_path / "gguf").exists()
