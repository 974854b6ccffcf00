"""`train.lora.dropout: auto` is the planner's choice (issue 11, "memory knobs chosen by the planner"): 0 on CPU and
where the memory planner finds the GPU's memory binding, else 0.05; an explicit number is kept; the value used is
printed in the plan line, recorded in the run and is what the saved adapter was trained with."""

from __future__ import annotations

import json

import pytest

from helpers.data import make_chat_examples, register_dataset
from helpers.train import project_for
from tailorlm.config import TrainSettings
from tailorlm.registry import RunMeta
from tailorlm.train.plan import DEFAULT_LORA_DROPOUT, choose_lora_dropout, describe_plan, make_plan


def _choose(settings: TrainSettings, device: str, model_dir, memory_gib: float | None = None):
    return choose_lora_dropout(settings, device, "bf16", False, model_dir, memory_gib=memory_gib)


def test_auto_is_zero_on_cpu_and_an_explicit_number_is_kept(tiny_model_dir):
    dropout, note = _choose(TrainSettings(), "cpu", tiny_model_dir)
    assert dropout == 0.0 and note is not None and "0 on CPU" in note
    assert _choose(TrainSettings(lora={"dropout": 0.1}), "cpu", tiny_model_dir) == (0.1, None)
    assert _choose(TrainSettings(lora={"dropout": 0}), "cuda", tiny_model_dir, memory_gib=80) == (0.0, None)
    assert _choose(TrainSettings(method="full"), "cpu", tiny_model_dir) == (None, None)  # no adapter


def test_auto_on_a_gpu_is_zero_only_when_memory_binds(tiny_model_dir):
    """The tiny model with batch 8 × 1024 tokens: a few hundred MB estimated, so an 80 GB GPU keeps dropout and a
    0.5 GB one (the estimate with dropout does not fit) turns it off, saying why."""
    settings = TrainSettings(batch_size=8, max_length=1024)
    assert _choose(settings, "cuda", tiny_model_dir, memory_gib=80) == (DEFAULT_LORA_DROPOUT, None)
    dropout, note = _choose(settings, "cuda", tiny_model_dir, memory_gib=0.5)
    assert dropout == 0.0 and note is not None and note.startswith("LoRA dropout auto: 0, memory binds (")


def test_auto_keeps_the_default_when_the_memory_cannot_be_estimated(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mixtral"}))
    dropout, note = _choose(TrainSettings(), "cuda", tmp_path, memory_gib=16)
    assert dropout == DEFAULT_LORA_DROPOUT and note is not None and "not estimated" in note


@pytest.mark.parametrize("value", [1.0, -0.1, "sometimes"])
def test_a_bad_dropout_names_the_field(value, tmp_path):
    from tailorlm.config import parse_project
    from tailorlm.errors import UserError

    with pytest.raises(UserError, match=r"train\.lora\.dropout"):
        parse_project(
            {"project": "p", "base_model": str(tmp_path), "train": {"lora": {"dropout": value}}}, root=tmp_path
        )


def test_the_resolved_dropout_is_printed_recorded_and_trained_with(tiny_model_dir, workspace, tmp_path):
    plan = make_plan(TrainSettings(), 40, device="cpu", model_dir=tiny_model_dir)
    assert plan.lora_dropout == 0.0 and ", LoRA dropout 0" in describe_plan(plan, "lora", 40)
    register_dataset(workspace, make_chat_examples(16))
    from tailorlm.train import train

    result = train(workspace, project_for(tiny_model_dir, tmp_path, max_steps=2, lora={"r": 4, "dropout": "auto"}))
    recorded = result.run.meta_as(RunMeta).plan
    assert recorded["lora_dropout"] == 0.0 and any("LoRA dropout auto: 0" in n for n in recorded["notes"])
    adapter = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter["lora_dropout"] == 0.0
