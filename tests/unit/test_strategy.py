"""train.strategy: `auto` asks the planner (fits on one device → ddp, else fsdp) and says why; the configs
are generated from the project's settings and load where they are used; DeepSpeed without DeepSpeed (or
without GPUs) is refused naming what to install; a Trainer that didn't build the planned strategy, and an
FSDP checkpoint resumed without FSDP, are refused. The 2-process FSDP2 run is in test_distributed.py."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from tailorlm.config import TrainSettings
from tailorlm.train import distributed
from tailorlm.train.plan import describe_plan, make_plan
from tailorlm.train.strategy import (
    StrategyError,
    check_resume,
    check_trainer,
    choose_strategy,
    configs,
    trainer_arguments,
)

LLAMA2_7B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}


@pytest.fixture
def llama2_7b(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    return tmp_path


def _choose(asked: str, model_dir: Path | None, *, method="lora", world=2, device="cuda", memory=80.0):
    return choose_strategy(
        asked,
        method=method,
        world=world,
        device=device,
        model_dir=model_dir,
        seq_len=1024,
        micro_batch=1,
        precision="bf16",
        gradient_checkpointing=True,
        device_memory_gib=memory,
    )


def test_auto_picks_ddp_when_one_device_holds_the_run_and_fsdp_when_it_does_not(llama2_7b):
    lora = _choose("auto", llama2_7b, memory=80)
    assert lora.name == "ddp" and "fits on one device" in lora.reason and "of 72.0 GB planned" in lora.reason
    # full fine-tuning of 6.74B parameters: fp32 weights + gradients + 2 AdamW moments = 16 bytes each,
    # 100.4 GB on one device; sharded over 8 GPUs 12.6 GB each (+ activations and the runtime)
    full = _choose("auto", llama2_7b, method="full", world=8, memory=40)
    whole, each = map(
        float, re.findall(r"\(([\d.]+) GB > 36.0 GB planned\), so fsdp: ([\d.]+) GB each over 8", full.reason)[0]
    )
    assert full.name == "fsdp" and "still over" not in full.reason
    assert 100.4 < whole < 100.4 + 2 and 12.55 < each < 12.55 + 2  # + activations, the loss, the runtime: < 2 GB
    over = _choose("auto", llama2_7b, method="full", world=2, memory=40)
    assert over.name == "fsdp" and "still over, see `tailorlm plan`" in over.reason
    qlora = _choose("auto", llama2_7b, method="qlora", memory=8)
    assert qlora.name == "ddp" and "replicated" in qlora.reason


def test_one_process_trains_alone_and_says_so(llama2_7b):
    assert _choose("auto", llama2_7b, world=1).name == "single"
    alone = _choose("fsdp", llama2_7b, world=1)
    assert alone.name == "single" and "applies to 2 or more processes" in alone.reason


def test_auto_without_a_config_the_planner_knows_says_so(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA2_7B, "model_type": "mixtral"}))
    choice = _choose("auto", tmp_path)
    assert (
        choice.name == "ddp" and "the planner can't estimate this model" in choice.reason and "mixtral" in choice.reason
    )


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="DeepSpeed is installed here")
def test_deepspeed_without_deepspeed_or_gpus_is_refused_naming_what_to_install(llama2_7b):
    with pytest.raises(StrategyError, match="needs DeepSpeed, which is not installed") as missing:
        _choose("deepspeed_zero3", llama2_7b)
    assert "pip install deepspeed" in missing.value.hint
    with pytest.raises(StrategyError, match="DeepSpeed trains on GPUs only and this launch is on cpu"):
        _choose("deepspeed_zero2", llama2_7b, device="cpu")
    with pytest.raises(StrategyError, match="fsdp with method qlora"):
        _choose("fsdp", llama2_7b, method="qlora")


def test_the_configs_come_from_the_project_and_load_where_they_are_used(tmp_path):
    zero3 = configs("deepspeed_zero3", micro_batch=4, gradient_accumulation=8, precision="bf16")["deepspeed.json"]
    assert zero3["zero_optimization"]["stage"] == 3
    assert zero3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert (zero3["train_micro_batch_size_per_gpu"], zero3["gradient_accumulation_steps"]) == (4, 8)
    assert zero3["bf16"] == {"enabled": True} and zero3["fp16"] == {"enabled": False}
    zero2 = configs("deepspeed_zero2", micro_batch=2, gradient_accumulation=1, precision="fp16")["deepspeed.json"]
    assert zero2["zero_optimization"]["stage"] == 2 and zero2["fp16"] == {"enabled": True}
    assert "stage3_gather_16bit_weights_on_model_save" not in zero2["zero_optimization"]
    assert configs("ddp", micro_batch=2, gradient_accumulation=1, precision="fp32") == {}

    # the FSDP file is the Trainer's fsdp_config: it loads as one, and selects FSDP2 with full state dicts
    fsdp_file = tmp_path / "fsdp.json"
    fsdp_file.write_text(
        json.dumps(configs("fsdp", micro_batch=2, gradient_accumulation=1, precision="fp32")["fsdp.json"])
    )
    arguments = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", fsdp=True, fsdp_config=str(fsdp_file)
    )
    assert arguments.fsdp_plugin_args["fsdp_version"] == 2
    assert arguments.fsdp_plugin_args["state_dict_type"] == "FULL_STATE_DICT"
    assert trainer_arguments("fsdp", micro_batch=2, gradient_accumulation=1, precision="fp32")["fsdp"] is True


def test_the_plan_records_the_strategy_and_why(tiny_model_dir):
    plan = make_plan(TrainSettings(strategy="fsdp"), 40, device="cpu", model_dir=tiny_model_dir)
    assert (plan.strategy, plan.strategy_reason) == (
        "single",
        "train.strategy fsdp applies to 2 or more processes; this is one",
    )
    assert plan.to_json()["strategy"] == "single"
    assert "; train.strategy fsdp applies to 2 or more processes; this is one" in describe_plan(plan, "lora", 40)
    plan.strategy, plan.strategy_reason = "ddp", "auto: fits on one device"
    assert "strategy ddp (auto: fits on one device)" in describe_plan(plan, "lora", 40)


def test_a_trainer_that_did_not_build_the_planned_strategy_is_refused(tmp_path, tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    common = {"output_dir": str(tmp_path), "use_cpu": True, "report_to": "none"}
    # one process: a plan for ddp (or fsdp, deepspeed) on a Trainer that built none is refused
    plain = Trainer(model=model, args=TrainingArguments(**common))
    with pytest.raises(distributed.DistributedError, match="the plan says ddp but the Trainer built single"):
        check_trainer(plain, "ddp")
    check_trainer(plain, "single")
    with pytest.raises(StrategyError, match="the dpo recipe trains replicated models only"):
        check_trainer(plain, "fsdp", recipe="dpo", shards=False)


def test_an_fsdp_checkpoint_resumes_under_fsdp_on_gpus_only(tmp_path):
    checkpoint = tmp_path / "checkpoint-3"
    checkpoint.mkdir()
    check_resume(checkpoint, "single", "run-x", "cpu")  # a DDP / one-process checkpoint resumes on any count
    (checkpoint / "pytorch_model_fsdp.bin").write_bytes(b"")
    with pytest.raises(StrategyError, match="run run-x was checkpointed by FSDP") as refused:
        check_resume(checkpoint, "single", "run-x", "cuda")
    assert "--resume run-x --gpus 2" in refused.value.hint
    with pytest.raises(StrategyError, match="resuming FSDP on CPU processes is not supported"):
        check_resume(checkpoint, "fsdp", "run-x", "cpu")
    check_resume(checkpoint, "fsdp", "run-x", "cuda")


def test_deepspeed_asked_on_cpu_processes_stops_every_rank_with_the_reason(tmp_path, tiny_model_dir):
    """Through the CLI under torchrun: each rank refuses before training (exit 1), nothing is registered."""
    import os
    import subprocess
    import sys

    import yaml

    from helpers.data import make_chat_examples, register_dataset
    from tailorlm.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    register_dataset(ws, make_chat_examples(40))
    train = {"method": "lora", "batch_size": 2, "max_steps": 2, "strategy": "deepspeed_zero3"}
    ws.project_file.write_text(yaml.safe_dump({"project": "tiny", "base_model": str(tiny_model_dir), "train": train}))
    ws.close()
    src = str(Path(__file__).resolve().parents[2] / "src")
    result = subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", "train", "--workspace", str(ws.root), "--processes", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode != 0
    assert "DeepSpeed trains on GPUs only and this launch is on cpu" in result.stdout + result.stderr
    assert Workspace(ws.root).registry.find("run") == []
