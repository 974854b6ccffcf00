"""The CUDA paths of training — bf16 mixed precision and QLoRA's 4-bit base on the GPU — on the tiny model.

Marked `gpu`: run where `torch.cuda.is_available()`, skipped with that reason elsewhere (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from helpers.data import make_chat_examples, register_dataset
from helpers.train import losses, project_for
from tailorlm.config import LoraSettings
from tailorlm.registry import RunMeta
from tailorlm.train import train

pytestmark = pytest.mark.gpu


def test_auto_precision_on_cuda_is_bf16_where_supported() -> None:
    import torch

    from tailorlm.config import TrainSettings
    from tailorlm.train.plan import make_plan

    plan = make_plan(TrainSettings(method="qlora"), 40, device="cuda")
    assert plan.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert plan.gradient_checkpointing  # qlora on CUDA trades compute for memory by default


def test_bf16_lora_trains_on_cuda(tiny_model_dir, workspace, tmp_path):
    import torch

    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    register_dataset(workspace, make_chat_examples(40))
    result = train(workspace, project_for(tiny_model_dir, tmp_path, method="lora", precision="bf16", max_steps=40))
    assert (result.plan.device, result.plan.precision) == ("cuda", "bf16")
    assert result.run.meta_as(RunMeta).plan["precision"] == "bf16"
    trained = losses(result)
    assert trained[-1] < trained[0] * 0.92, trained
    assert (result.run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_qlora_base_is_4bit_on_the_gpu_and_trains(tiny_model_dir, workspace, tmp_path):
    import bitsandbytes as bnb

    from tailorlm.modeling import add_adapters, load_base_model

    model = load_base_model(tiny_model_dir, method="qlora", precision="bf16", device="cuda")
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and all(m.weight.device.type == "cuda" and m.weight.quant_state is not None for m in quantized)
    peft_model = add_adapters(model, "qlora", LoraSettings(r=8, alpha=16, dropout=0.0), gradient_checkpointing=True)
    assert any(p.requires_grad and p.device.type == "cuda" for p in peft_model.parameters())

    register_dataset(workspace, make_chat_examples(40))
    # NF4-quantised random weights are noisy: a wider adapter and a higher rate to see it learn
    project = project_for(
        tiny_model_dir, tmp_path, method="qlora", learning_rate=2e-2, lora={"r": 32, "alpha": 64, "dropout": 0.0}
    )
    result = train(workspace, project)
    assert result.plan.device == "cuda" and result.run.status == "complete"
    trained = losses(result)
    assert trained[-1] < trained[0] * 0.97, trained
