"""Models and tokenizers, shared by every stage: check a local model directory, load a base model and
turn it into what a method trains (full weights, LoRA, DoRA, or LoRA on a 4-bit NF4 base: QLoRA),
resolve a registered model or a run (`ModelRef`), and load trained runs back for inference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm.config import LoraSettings
from tailorlm.errors import UserError
from tailorlm.registry import ModelMeta, RunMeta
from tailorlm.workspace import NotFound, Workspace

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


class ModelDirError(UserError, ValueError):
    """A base model directory that can't be used; the message names what is missing."""


def check_model_dir(path: Path) -> Path:
    """Validate a local model directory: config.json, a tokenizer and weights, named when missing."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelDirError(
            f"base model directory not found: {path} (base_model must be a local directory, a .gguf file or a "
            "registered base — `tailorlm base list`; nothing is downloaded, copy the model there first)"
        )
    if not path.is_dir():
        raise ModelDirError(f"base_model must be a directory, got a file: {path}")
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json or tokenizer.model)")
    if not any(path.glob(pattern) for pattern in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors)")
    if missing:
        raise ModelDirError(f"{path} is not a usable model directory: missing {', '.join(missing)}")
    try:
        import json

        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except ValueError as error:
        raise ModelDirError(f"{path / 'config.json'} is not valid JSON: {error}") from None
    return path.resolve()


def load_tokenizer(path: Path) -> Any:
    """The model's tokenizer with a chat template (ChatML fallback) and a pad token."""
    from transformers import AutoTokenizer

    from tailorlm.formats.templates import ensure_chat_template

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as error:  # transformers raises many kinds for a broken tokenizer
        raise ModelDirError(f"{path}: the tokenizer can't be loaded: {error}") from None
    ensure_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def load_base_model(path: Path, *, method: str, precision: str, device: str) -> Any:
    """The base model ready for `method` (4-bit NF4 with double quantization for qlora)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    # Full fine-tuning keeps fp32 master weights (autocast does the low-precision math); adapters
    # train in fp32 on top of a frozen base stored in the run's precision.
    dtype = torch.float32 if method == "full" else torch_dtype(precision)
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(precision),
        )
        if device != "cpu":  # each rank of a distributed launch on its own GPU, not all of them on GPU 0
            kwargs["device_map"] = {"": local_rank()}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if method == "qlora":
        disable_cpu_bf16_repack(model)
    return model


def local_rank() -> int:
    """This process's GPU index on its node: torchrun/accelerate/Slurm set LOCAL_RANK (0 when launched alone)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def disable_cpu_bf16_repack(model: Any) -> int:
    """Known trap: on CPU, bitsandbytes repacks 4-bit weights for an AVX512-BF16 kernel after any
    no-grad forward (eval, generate); later backward passes then run through a kernel without
    autograd and LoRA gradients are silently wrong. Turning the repack off on every Linear4bit
    keeps gradients right. Returns how many layers were changed."""
    import bitsandbytes as bnb

    count = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def add_adapters(
    model: Any,
    method: str,
    lora: LoraSettings,
    *,
    gradient_checkpointing: bool,
    task_type: str = "CAUSAL_LM",
    dropout: float | None = None,
) -> Any:
    """Wrap the model with LoRA/DoRA adapters (QLoRA: after preparing the 4-bit base). `task_type="SEQ_CLS"`
    also trains and saves the new classification head in full (PEFT's `modules_to_save`). `dropout`: the
    plan's resolved `lora.dropout` (needed when the setting is `auto`)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if dropout is None:
        if lora.dropout == "auto":
            raise ValueError("lora.dropout is 'auto': pass the plan's resolved value (plan.lora_dropout)")
        dropout = lora.dropout

    if method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=dropout,
        target_modules=lora.targets,
        use_dora=method == "dora",
        task_type=task_type,
    )
    model = get_peft_model(model, config)
    if method == "qlora":
        disable_cpu_bf16_repack(model)
    return model


def load_trained(artifact_dir: Path, base_model: Path, *, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """A trained run's model for inference: base + adapter (PEFT) or the full weights; and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = dtype or torch.float32
    tokenizer = load_tokenizer(artifact_dir)
    if (artifact_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_model, local_files_only=True, dtype=dtype)
        model = PeftModel.from_pretrained(base, artifact_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(artifact_dir, local_files_only=True, dtype=dtype)
    model.to(device).eval()
    return model, tokenizer


@dataclass
class ModelRef:
    """Everything needed to load a registered model (or a run) for inference or export."""

    name: str
    version: str | None
    run_id: str
    base_model: Path
    artifact_dir: Path  # adapter/ (PEFT) or model/ (full weights)
    method: str
    system_prompt: str | None

    @property
    def is_adapter(self) -> bool:
        return (self.artifact_dir / "adapter_config.json").is_file()


def resolve_model(workspace: Workspace, reference: str | None = None) -> ModelRef:
    """A registered model (`name`, `name@vN`, model id) or a run id, ready to load."""
    if reference and reference.startswith("run-"):
        try:
            run = workspace.registry.get(reference)
        except NotFound:
            raise NotFound(f"no run {reference!r} in this workspace", hint="see `tailorlm runs`") from None
        if run.status != "complete":
            raise NotFound(f"run {reference} is {run.status}, not complete: it has no model to load")
        run_meta = run.meta_as(RunMeta)
        return ModelRef(
            name=run.id,
            version=None,
            run_id=run.id,
            base_model=Path(run_meta.base_model),
            artifact_dir=workspace.path_of(run) / run_meta.artifact,
            method=run_meta.method,
            system_prompt=None,
        )
    model = workspace.resolve("model", reference)
    description = model.meta_as(ModelMeta)
    return ModelRef(
        name=model.name,
        version=model.version,
        run_id=description.run,
        base_model=Path(description.base_model),
        artifact_dir=workspace.root / description.artifact,
        method=description.method,
        system_prompt=description.system_prompt,
    )
