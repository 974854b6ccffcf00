"""Defaults by device and data size: precision, gradient checkpointing, LoRA dropout, packing, epochs, learning
rate, step intervals — decided once, printed, and recorded in the run so nothing is silently chosen."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tailorlm.config import PREFERENCE_METHODS, TrainSettings
from tailorlm.train import distributed
from tailorlm.train.precision import choose_precision
from tailorlm.train.strategy import choose_strategy


def detect_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def auto_epochs(n_train: int) -> int:
    """3 passes, raised for small sets so the model sees ≥ 100 examples' worth of steps, lowered for
    large ones so it sees ≤ 25,000 (the rule OpenAI's fine-tuning API documents)."""
    if n_train <= 0:
        return 1
    if n_train * 3 < 100:
        return min(25, math.ceil(100 / n_train))
    if n_train * 3 > 25_000:
        return max(1, 25_000 // n_train)
    return 3


@dataclass
class Plan:
    device: str
    precision: str
    gradient_checkpointing: bool
    epochs: int
    learning_rate: float
    steps_per_epoch: int
    total_steps: int
    eval_steps: int
    save_steps: int
    lora_dropout: float | None = None  # None: full fine-tuning (no adapter)
    packing: bool = False
    notes: list[str] = field(default_factory=list)
    strategy: str = "single"  # how the processes share the work (train/strategy.py)
    strategy_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(
    settings: TrainSettings,
    n_train: int,
    *,
    device: str | None = None,
    model_dir: Path | None = None,
    recipe: str = "sft",
) -> Plan:
    """The run's plan; `recipe` is the training recipe's short name (only `sft` packs examples)."""
    device = device or detect_device()
    notes: list[str] = []
    chosen = choose_precision(settings.precision, device, settings.method, model_dir)
    precision = chosen.precision
    if chosen.note:
        notes.append(chosen.note)
    checkpointing = settings.gradient_checkpointing
    if checkpointing == "auto":
        checkpointing = device == "cuda" and settings.method in ("full", "qlora")
    dropout, note = choose_lora_dropout(settings, device, precision, bool(checkpointing), model_dir)
    if note:
        notes.append(note)
    packing = settings.packing is not False and recipe == "sft"  # auto: confirmed on the loaded model (sft.py)
    if settings.packing is True and recipe != "sft":
        notes.append(f"packing: not used by the {recipe} recipe")
    epochs = auto_epochs(n_train) if settings.epochs == "auto" else settings.epochs
    if settings.epochs == "auto":
        notes.append(f"epochs auto: {epochs} for {n_train} training examples")
    lr = settings.learning_rate or (
        2e-5 if settings.method == "full" else 5e-5 if settings.method in PREFERENCE_METHODS else 2e-4
    )
    per_step = settings.batch_size * settings.gradient_accumulation
    steps_per_epoch = max(1, math.ceil(n_train / per_step))
    total = settings.max_steps or steps_per_epoch * epochs
    strategy = choose_strategy(
        settings.strategy,
        method=settings.method,
        world=distributed.world_size(),
        device=device,
        model_dir=model_dir,
        seq_len=settings.max_length,
        micro_batch=settings.batch_size,
        precision=precision,
        gradient_checkpointing=bool(checkpointing),
    )
    return Plan(
        device=device,
        precision=precision,
        gradient_checkpointing=bool(checkpointing),
        epochs=epochs,
        learning_rate=lr,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        eval_steps=settings.eval_steps or max(1, total // 5),
        save_steps=settings.save_steps or max(1, total // 2),
        lora_dropout=dropout,
        packing=packing,
        notes=notes,
        strategy=strategy.name,
        strategy_reason=strategy.reason,
    )


DEFAULT_LORA_DROPOUT = 0.05


def choose_lora_dropout(
    settings: TrainSettings,
    device: str,
    precision: str,
    checkpointing: bool,
    model_dir: Path | None,
    *,
    memory_gib: float | None = None,
) -> tuple[float | None, str | None]:
    """`train.lora.dropout` resolved, and a note saying why when it was `auto`.

    auto → 0 on CPU (the profile in docs/benchmarks.md: dropout's random masks are 16% of a LoRA step) and on a
    GPU whose memory the planner finds binding with dropout on (dropout keeps a copy of every adapted layer's
    input: train/memory.py), else 0.05. `memory_gib`: the GPU's memory (default: the first GPU's)."""
    if settings.method == "full":
        return None, None
    asked = settings.lora.dropout
    if asked != "auto":
        return float(asked), None
    if device == "cpu":
        return 0.0, "LoRA dropout auto: 0 on CPU (its random masks cost ~16% of a step)"
    from tailorlm.train.memory import GIB, ModelShape, PlannerError, Setup, estimate, fits

    try:
        if model_dir is None:
            raise PlannerError("no model directory")
        with_dropout = estimate(
            ModelShape.from_config(model_dir),
            Setup(
                method=settings.method if settings.method in ("lora", "qlora", "dora") else "lora",
                device="cuda",
                precision=precision,  # type: ignore[arg-type]
                rank=settings.lora.r,
                lora_dropout=DEFAULT_LORA_DROPOUT,
                seq_len=settings.max_length,
                micro_batch=settings.batch_size,
                gradient_checkpointing=checkpointing,
            ),
        )
    except PlannerError:
        return DEFAULT_LORA_DROPOUT, f"LoRA dropout auto: {DEFAULT_LORA_DROPOUT} (memory not estimated for this model)"
    if memory_gib is None:
        import torch

        memory_gib = torch.cuda.get_device_properties(0).total_memory / GIB
    if fits(with_dropout, memory_gib, HEADROOM):
        return DEFAULT_LORA_DROPOUT, None
    return 0.0, (
        f"LoRA dropout auto: 0, memory binds ({with_dropout.total_gib:.1f} GB estimated with dropout, "
        f"{memory_gib * HEADROOM:.1f} GB of the GPU to plan with)"
    )


def describe_plan(plan: Plan, method: str, n_train: int, resume_from: Path | None = None) -> str:
    """The line printed before training starts: what will run where, and for how long."""
    line = (
        f"plan: {method} on {plan.device}, {plan.precision}, {plan.total_steps} steps "
        f"({plan.epochs} epoch(s) of {plan.steps_per_epoch} over {n_train} examples), "
        f"learning rate {plan.learning_rate:g}" + (", gradient checkpointing" if plan.gradient_checkpointing else "")
    )
    if plan.lora_dropout is not None:
        line += f", LoRA dropout {plan.lora_dropout:g}"
    if plan.packing:
        line += ", packing"
    if resume_from is not None:
        line += f"; resuming from {resume_from.name}"
    if plan.strategy != "single":
        line += f"; strategy {plan.strategy} ({plan.strategy_reason})"
    elif plan.strategy_reason not in ("", "one process"):  # a strategy asked for that one process can't use
        line += f"; {plan.strategy_reason}"
    return "; ".join([line, *plan.notes])


# --- hardware: which method and batch fit the GPUs (tailorlm plan) ---------------------------------------

HEADROOM = 0.9  # plan to 90 % of a device's memory: fragmentation and spikes take the rest
ASSUMED_TFLOPS = 100.0  # achieved bf16 TFLOP/s per GPU when nothing was measured (an A100 at ~30 % MFU)


@dataclass
class HardwarePlan:
    """What `tailorlm plan` decides: the cheapest setup that fits, or why none does and what would."""

    fits: bool
    asked: str
    gpus: int
    gpu_memory_gib: float
    chosen: Any = None  # memory.Estimate of the recommended setup
    gradient_accumulation: int = 1
    strategy: str = "single"
    seconds_per_epoch: float | None = None
    throughput: str = ""
    would_fit: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = f"{self.gpus}×{self.gpu_memory_gib:g} GB"
        if not self.fits:
            return f"{self.asked} cannot fit on {where}; would fit: " + ("; ".join(self.would_fit) or "nothing listed")
        setup = self.chosen.setup
        line = f"{self.asked} on {where} → {setup.describe()}, grad-accum {self.gradient_accumulation}"
        return line + f" ({self.chosen.total_gib:.1f} GB per GPU)"

    def to_json(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "summary": self.summary(),
            "gpus": self.gpus,
            "gpu_memory_gb": self.gpu_memory_gib,
            "strategy": self.strategy,
            "gradient_accumulation": self.gradient_accumulation,
            "estimate": self.chosen.to_json() if self.chosen else None,
            "seconds_per_epoch": self.seconds_per_epoch,
            "throughput": self.throughput,
            "would_fit": self.would_fit,
            "notes": self.notes,
        }


def plan_hardware(
    shape: Any,
    *,
    gpus: int,
    gpu_memory_gib: float,
    method: str | None = None,
    rank: int = 16,
    seq_len: int = 1024,
    micro_batch: int | None = None,
    global_batch: int = 16,
    device: str = "cuda",
    tokens: int | None = None,
    tokens_per_s: float | None = None,
    tflops: float | None = None,
) -> HardwarePlan:
    """The cheapest setup that fits `gpus` devices of `gpu_memory_gib`: LoRA before QLoRA (unless `method`
    is given), the largest micro-batch, checkpointing only when needed, DDP before FSDP."""
    from tailorlm.train.memory import Setup, estimate, fits

    precision = "fp32" if device == "cpu" else "bf16"
    methods = [method] if method else ["lora", "qlora"]
    batches = [micro_batch] if micro_batch else [8, 4, 2, 1]
    strategies = [False, True] if gpus > 1 else [False]
    asked = f"{method or 'fine-tuning'} of a {shape.params / 1e9:.2f}B {shape.model_type} model at {seq_len} tokens"
    result = HardwarePlan(fits=False, asked=asked, gpus=gpus, gpu_memory_gib=gpu_memory_gib)

    def setup_for(name: str, batch: int, checkpointing: bool, sharded: bool) -> Setup:
        return Setup(
            method=name,
            device=device,  # type: ignore[arg-type]
            precision=precision,  # type: ignore[arg-type]
            rank=rank,
            seq_len=seq_len,
            micro_batch=batch,
            gradient_checkpointing=checkpointing,
            gpus=gpus,
            sharded=sharded,
        )

    for name in methods:
        for sharded in strategies:
            for batch in batches:
                for checkpointing in (False, True):
                    candidate = estimate(shape, setup_for(name, batch, checkpointing, sharded))
                    if fits(candidate, gpu_memory_gib, HEADROOM):
                        result.fits, result.chosen = True, candidate
                        result.strategy = "single" if gpus == 1 else ("fsdp" if sharded else "ddp")
                        result.gradient_accumulation = max(1, math.ceil(global_batch / (batch * gpus)))
                        _add_time(result, shape, tokens, tokens_per_s, tflops, device)
                        return result
    # nothing fits: say what would
    smallest = estimate(shape, setup_for(methods[0], 1, True, gpus > 1))
    result.chosen = None
    result.notes.append(
        f"{methods[0]} at micro-batch 1 with checkpointing needs {smallest.total_gib:.1f} GB per GPU"
        f" ({gpus}×{gpu_memory_gib:g} GB gives {gpu_memory_gib * HEADROOM:.1f} GB to plan with)"
    )
    for other in ("lora", "qlora"):
        if other in methods:
            continue
        alternative = estimate(shape, setup_for(other, 1, True, False))
        if fits(alternative, gpu_memory_gib, HEADROOM):
            result.would_fit.append(
                f"{other} r={rank}, micro-batch 1, checkpointing on ({alternative.total_gib:.1f} GB)"
            )
    needed = smallest.total_gib / HEADROOM
    result.would_fit.append(f"{methods[0]} on GPUs of ≥ {math.ceil(needed)} GB")
    if device == "cuda":
        for count in (2, 4, 8, 16, 32, 64):
            spread = estimate(shape, replace(smallest.setup, gpus=count, sharded=True))
            if fits(spread, gpu_memory_gib, HEADROOM):
                result.would_fit.append(f"{methods[0]} sharded (FSDP) over {count}×{gpu_memory_gib:g} GB")
                break
    return result


def _add_time(
    result: HardwarePlan, shape: Any, tokens: int | None, tokens_per_s: float | None, tflops: float | None, device: str
) -> None:
    setup = result.chosen.setup
    if tokens_per_s:
        result.throughput = f"{tokens_per_s:,.0f} tokens/s (given)"
    elif device == "cuda":
        # forward 2N, backward 2N for activations (+2N weight gradients when every weight trains),
        # +2N with checkpointing (the forward again)
        per_token = shape.params * (6 if setup.method == "full" else 4) + (
            2 * shape.params if setup.gradient_checkpointing else 0
        )
        achieved = (tflops or ASSUMED_TFLOPS) * 1e12 * result.gpus
        tokens_per_s = achieved / per_token
        source = "given" if tflops else "assumed; pass --tflops or --tokens-per-s"
        result.throughput = (
            f"~{tokens_per_s:,.0f} tokens/s from {tflops or ASSUMED_TFLOPS:g} TFLOP/s per GPU ({source})"
        )
    else:
        result.throughput = "unknown on CPU: pass --tokens-per-s (measured: `tailorlm runs` metrics show tokens/s)"
        return
    if tokens:
        result.seconds_per_epoch = tokens / tokens_per_s
