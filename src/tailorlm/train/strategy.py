"""How the processes of a distributed `tailorlm train` share the work (`train.strategy`), decided before the
first step, printed, recorded in the run's plan, and checked against what the Trainer really built.

- ddp: every process holds the whole model and averages gradients.
- fsdp: FSDP2 (`torch.distributed.fsdp.fully_shard` through accelerate): weights, gradients and optimizer
  states sharded over the processes.
- deepspeed_zero2 / deepspeed_zero3: DeepSpeed ZeRO (optimizer states + gradients sharded; ZeRO-3 the weights
  as well); needs DeepSpeed installed and GPUs.
- auto: the planner (memory.py) estimates one device's peak: it fits on one device → ddp; it doesn't → fsdp.

The configs are generated from the project file (`fsdp.json`: the Trainer's `fsdp_config`; `deepspeed.json`)
and written into the run folder, and the Trainer is given the same values.

Silent fallbacks are refused. Two are known: accelerate enables FSDP only for GPU-like devices, so the
Trainer's `fsdp=` on CPU quietly becomes DDP (gloo can run FSDP2 itself: `enable_fsdp_on_cpu` hands the
Trainer's own FSDP2 plugin to accelerate there), and a launcher can start fewer processes than asked
(`accelerate launch --cpu --num_processes 2` runs one); `check_trainer` compares what the Trainer built,
and the number of processes it trains with, with the plan.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm.errors import UserError
from tailorlm.train import distributed

DEEPSPEED = {"deepspeed_zero2": 2, "deepspeed_zero3": 3}


class StrategyError(UserError, ValueError):
    """A strategy that can't run as asked here; the message says what to change or install."""


@dataclass(frozen=True)
class StrategyChoice:
    name: str  # single | ddp | fsdp | deepspeed_zero2 | deepspeed_zero3
    reason: str


def choose_strategy(
    asked: str,
    *,
    method: str,
    world: int,
    device: str,
    model_dir: Path | None,
    seq_len: int,
    micro_batch: int,
    precision: str,
    gradient_checkpointing: bool,
    device_memory_gib: float | None = None,
) -> StrategyChoice:
    """The strategy this launch trains with and why (`asked` is `train.strategy`)."""
    if world <= 1:
        if asked in ("auto", "ddp"):
            return StrategyChoice("single", "one process")
        return StrategyChoice("single", f"train.strategy {asked} applies to 2 or more processes; this is one")
    if asked in DEEPSPEED:
        if device != "cuda":
            raise StrategyError(
                f"train.strategy {asked}: DeepSpeed trains on GPUs only and this launch is on {device}",
                hint="use train.strategy ddp or fsdp on CPU processes",
            )
        if importlib.util.find_spec("deepspeed") is None:
            raise StrategyError(
                f"train.strategy {asked} needs DeepSpeed, which is not installed",
                hint="pip install deepspeed (built against this machine's CUDA), or use train.strategy fsdp",
            )
        return StrategyChoice(asked, f"train.strategy {asked} (ZeRO stage {DEEPSPEED[asked]}) over {world} processes")
    if method == "qlora" and asked == "fsdp":
        raise StrategyError(
            "train.strategy fsdp with method qlora: sharding a 4-bit base is not supported here",
            hint="use method lora with fsdp, or qlora with ddp (QLoRA's base is small enough to replicate)",
        )
    if asked in ("ddp", "fsdp"):
        return StrategyChoice(asked, f"train.strategy {asked} over {world} processes")
    return _auto(
        method=method,
        world=world,
        device=device,
        model_dir=model_dir,
        seq_len=seq_len,
        micro_batch=micro_batch,
        precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        device_memory_gib=device_memory_gib,
    )


def _auto(
    *,
    method: str,
    world: int,
    device: str,
    model_dir: Path | None,
    seq_len: int,
    micro_batch: int,
    precision: str,
    gradient_checkpointing: bool,
    device_memory_gib: float | None,
) -> StrategyChoice:
    from tailorlm.train.memory import ModelShape, PlannerError, Setup, estimate, fits
    from tailorlm.train.plan import HEADROOM

    if method == "qlora":
        return StrategyChoice("ddp", "auto: QLoRA's 4-bit base is replicated (it is not sharded here)")
    try:
        shape = ModelShape.from_config(model_dir) if model_dir else None
    except PlannerError as error:
        return StrategyChoice("ddp", f"auto: ddp, the planner can't estimate this model ({error.message})")
    if shape is None:
        return StrategyChoice("ddp", "auto: ddp, no model config to plan from")
    memory = device_memory_gib if device_memory_gib is not None else device_memory(device)
    setup = Setup(
        method=method if method in ("full", "lora", "qlora", "dora") else "lora",
        device="cuda" if device == "cuda" else "cpu",
        precision=precision if precision in ("fp32", "bf16", "fp16") else "fp32",  # type: ignore[arg-type]
        seq_len=seq_len,
        micro_batch=micro_batch,
        gradient_checkpointing=gradient_checkpointing,
        gpus=world,
    )
    whole = estimate(shape, setup)
    budget = memory * HEADROOM
    if fits(whole, memory, HEADROOM):
        return StrategyChoice(
            "ddp", f"auto: fits on one device ({whole.total_gib:.2f} of {budget:.1f} GB planned), so ddp"
        )
    sharded = estimate(shape, Setup(**{**setup.__dict__, "sharded": True}))
    verdict = "" if fits(sharded, memory, HEADROOM) else "; still over, see `tailorlm plan`"
    return StrategyChoice(
        "fsdp",
        f"auto: doesn't fit on one device ({whole.total_gib:.2f} GB > {budget:.1f} GB planned), so fsdp: "
        f"{sharded.total_gib:.2f} GB each over {world} processes{verdict}",
    )


def device_memory(device: str) -> float:
    """GiB one process can plan with: its GPU's memory, or on CPU this node's RAM shared by its processes."""
    if device == "cuda":
        import torch

        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.cuda.get_device_properties(local).total_memory / 1024**3
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return ram / max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


# --- the configs, generated from the project file ----------------------------------------------------------


def fsdp_config() -> dict[str, Any]:
    """The Trainer's `fsdp_config` (accelerate's FSDP2 plugin): each decoder layer its own shard group (the
    model's `_no_split_modules`), full state dicts gathered on save so checkpoints load on any process count.
    Gradient checkpointing stays the model's own (`train.gradient_checkpointing`), not FSDP's."""
    return {
        "version": 2,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "reshard_after_forward": True,
        "state_dict_type": "FULL_STATE_DICT",
        "cpu_ram_efficient_loading": False,
        "activation_checkpointing": False,
    }


def deepspeed_config(stage: int, *, micro_batch: int, gradient_accumulation: int, precision: str) -> dict[str, Any]:
    """A DeepSpeed ZeRO-2/3 config with the run's own batch and precision (the Trainer checks they agree)."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero |= {"stage3_gather_16bit_weights_on_model_save": True}
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": gradient_accumulation,
        "train_batch_size": "auto",
        "steps_per_print": 1_000_000,  # progress is ours
    }


def configs(strategy: str, *, micro_batch: int, gradient_accumulation: int, precision: str) -> dict[str, Any]:
    """The files `strategy` needs, by name (written into the run folder): `fsdp.json` or `deepspeed.json`."""
    if strategy == "fsdp":
        return {"fsdp.json": fsdp_config()}
    if strategy in DEEPSPEED:
        stage = DEEPSPEED[strategy]
        batch = {"micro_batch": micro_batch, "gradient_accumulation": gradient_accumulation}
        return {"deepspeed.json": deepspeed_config(stage, **batch, precision=precision)}
    return {}


def trainer_arguments(strategy: str, **run: Any) -> dict[str, Any]:
    """The `TrainingArguments` that select `strategy`, from the same configs ({} for single and ddp)."""
    files = configs(strategy, **run)
    if "fsdp.json" in files:
        return {"fsdp": True, "fsdp_config": files["fsdp.json"]}
    if "deepspeed.json" in files:
        return {"deepspeed": files["deepspeed.json"]}
    return {}


def check_resume(checkpoint: Path | None, strategy: str, run_id: str, device: str) -> None:
    """An FSDP checkpoint (full state dicts gathered on save) resumes under FSDP on GPUs only. A DDP or
    single-process checkpoint resumes on any process count.

    On CPU processes accelerate's FSDP2 full-state-dict load hangs under gloo (rank 0 broadcasting the state
    dict in `set_model_state_dict` while rank 1 waits at the optimizer's barrier), so it is refused there."""
    if checkpoint is None or not (checkpoint / "pytorch_model_fsdp.bin").exists():
        return
    if strategy != "fsdp":
        raise StrategyError(
            f"run {run_id} was checkpointed by FSDP ({checkpoint.name}); it resumes under FSDP only, and this "
            f"launch trains {strategy}",
            hint=f"tailorlm train --resume {run_id} --gpus 2 (or more)",
        )
    if device != "cuda":
        raise StrategyError(
            f"run {run_id} was checkpointed by FSDP ({checkpoint.name}); resuming FSDP on CPU processes is not "
            "supported (accelerate's FSDP2 checkpoint load hangs under gloo, see docs/scale.md)",
            hint="resume it on GPUs (tailorlm train --resume RUN --gpus 2), or train it again with --force",
        )


# --- after the Trainer is built: no silent fallback --------------------------------------------------------


def enable_fsdp_on_cpu(trainer: Any) -> None:
    """Give accelerate the Trainer's FSDP2 plugin on CPU processes, where it drops it (its state turns FSDP on
    only for GPU-like devices, so `fsdp=` there is DDP without a word); FSDP2 itself runs under gloo."""
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if trainer.args.fsdp_plugin_args is None or trainer.is_fsdp_enabled:
        return
    if state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
    trainer.is_fsdp_enabled = True


def check_trainer(trainer: Any, strategy: str, *, recipe: str = "sft", shards: bool = True) -> None:
    """Refuse to train when the Trainer didn't build `strategy`, or trains on another number of processes
    than this launch has; `shards=False`: the recipe saves a replicated model only (ddp)."""
    if not shards and strategy not in ("single", "ddp"):
        raise StrategyError(
            f"train.strategy {strategy}: the {recipe} recipe trains replicated models only (ddp)",
            hint="set train.strategy: ddp",
        )
    enable_fsdp_on_cpu(trainer)
    built = (
        "deepspeed"
        if getattr(trainer, "is_deepspeed_enabled", False)
        else "fsdp"
        if getattr(trainer, "is_fsdp_enabled", False)
        else "ddp"
        if trainer.args.world_size > 1
        else "single"
    )
    wanted = "deepspeed" if strategy in DEEPSPEED else strategy
    if built != wanted:
        raise distributed.DistributedError(
            f"the plan says {strategy} but the Trainer built {built}; refusing to train on a silent fallback",
            hint="see docs/scale.md (strategies)",
        )
    processes = trainer.accelerator.num_processes
    if processes != distributed.world_size():
        raise distributed.DistributedError(
            f"this launch has {distributed.world_size()} processes but the Trainer trains with {processes}; "
            "refusing to train on a silent fallback"
        )
