"""Which precision a run trains in, measured rather than assumed.

On GPUs: bf16 where supported, else fp16. On CPUs it depends on the chip: with AVX512-BF16 or AMX a bf16
matmul runs ~2× an fp32 one, without them ~3× *slower*, and at a tiny model's shapes the casts cost more
than they save. So `train.precision: auto` times the model's own MLP block (tokens × hidden →
intermediate → hidden, forward and backward) in fp32 and under bf16 autocast at plan time, a fraction of
a second, and picks bf16 autocast (fp32 master weights) only when it is clearly faster. The measurement
goes into the plan's notes, so the run records why; `train.precision: fp32|bf16` overrides it.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

# bf16 must beat fp32 by this much: below it, the lower precision isn't worth it.
BF16_MIN_SPEEDUP = 1.3
TOKENS = 512  # rows of the timed matmul: a micro-batch's worth
SMALLEST_MEASURED_HIDDEN = 256
"""Below this hidden size a matmul is too small for bf16 to pay, and timing it is noise: fp32, unmeasured
(so the same tiny model gets the same precision whatever the machine's load)."""
MEASURED_METHODS = ("lora", "dora", "full")  # the supervised recipe, whose bf16 path is tested


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    note: str | None = None


def choose_precision(requested: str, device: str, method: str, model_dir: Path | None = None) -> PrecisionChoice:
    """The run's precision: `requested` unless it is `auto`; then by device, and on CPU by measurement."""
    import torch

    if requested == "fp16" and device == "cpu":
        raise ValueError("train.precision: fp16 is not supported on CPU (use fp32 or bf16)")
    if requested != "auto":
        return PrecisionChoice(requested)
    if device == "cuda":
        return PrecisionChoice("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if method not in MEASURED_METHODS:  # QLoRA: bitsandbytes' CPU 4-bit kernels are only checked in fp32;
        return PrecisionChoice("fp32", f"precision auto: fp32 ({method} on CPU)")  # preference: not measured
    hidden, intermediate = model_shape(model_dir)
    if hidden < SMALLEST_MEASURED_HIDDEN:
        return PrecisionChoice(
            "fp32", f"precision auto: fp32 (hidden size {hidden} < {SMALLEST_MEASURED_HIDDEN}: too small to gain)"
        )
    fp32, bf16 = block_seconds(hidden, intermediate)
    return decide(fp32, bf16, f"{TOKENS}×{hidden}→{intermediate}")


def decide(fp32_seconds: float, bf16_seconds: float, shape: str) -> PrecisionChoice:
    """bf16 when its matmul is at least `BF16_MIN_SPEEDUP` times faster than fp32's, else fp32."""
    speedup = fp32_seconds / max(bf16_seconds, 1e-12)
    precision = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    return PrecisionChoice(
        precision,
        f"precision auto: {precision} (bf16 autocast measured at {speedup:.2f}× fp32 on this model's MLP block "
        f"{shape}; bf16 needs ≥ {BF16_MIN_SPEEDUP}×; set train.precision to override)",
    )


def model_shape(model_dir: Path | None) -> tuple[int, int]:
    """(hidden size, MLP width) from the model's config.json; a small-model guess when it can't be read."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")) if model_dir else {}
    except (OSError, ValueError):
        config = {}
    config = config.get("text_config", config)
    hidden = int(config.get("hidden_size") or config.get("n_embd") or 512)
    return hidden, int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden)


@functools.lru_cache(maxsize=8)
def block_seconds(hidden: int, intermediate: int, repeats: int = 5) -> tuple[float, float]:
    """Best-of-`repeats` time of the model's MLP block (TOKENS × hidden → intermediate → hidden), forward
    and backward, in fp32 and under bf16 autocast with fp32 weights (casts included), interleaved so both
    see the same machine load."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, hidden, generator=generator, requires_grad=True)
    up = (torch.randn(intermediate, hidden, generator=generator) / hidden**0.5).requires_grad_()
    down = (torch.randn(hidden, intermediate, generator=generator) / intermediate**0.5).requires_grad_()
    best = {False: float("inf"), True: float("inf")}
    for _ in range(repeats + 1):  # one extra round: the best-of drops the warm-up
        for bf16 in best:
            start = time.perf_counter()
            for _ in range(2):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = F.linear(F.silu(F.linear(x, up)), down)
                out.float().square().mean().backward()
            best[bf16] = min(best[bf16], time.perf_counter() - start)
    return best[False], best[True]
