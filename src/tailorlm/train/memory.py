"""Peak training memory per device, from a model's config.json alone: weights, adapter, gradients, optimizer
states, activations and buffers, for full fine-tuning, LoRA, QLoRA and DoRA.

The terms are counted, not guessed: parameters from the architecture's shapes, bytes per parameter from
what the method keeps (TailorLM keeps fp32 master weights for full fine-tuning and fp32 adapters on a base
in the run's precision; QLoRA's NF4 base is 4 bits a weight plus its double-quantised scales), activations
from what a decoder layer saves for backward (with gradient checkpointing: each layer's input plus one
layer recomputed) and what the lean loss (train/loss.py) holds: the hidden states of the trained positions
and one chunk of logits at a time, never `[batch, seq, vocab]` whole. The constants that are measured, not
derived, say so: the runtime each device carries (CUDA context and allocator slack; on CPU, the process with
torch and transformers loaded) and PEFT's adapter path on CPU. docs/planner.md compares the estimate with
measured peaks.

    shape = ModelShape.from_config(Path("/models/llama-2-7b"))
    estimate(shape, Setup(method="qlora", device="cuda")).total_gib
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tailorlm.errors import UserError

GIB = 1024**3
Optimizer = Literal["adamw", "adamw_8bit"]

# Decoder-only architectures whose layer shapes are the ones counted below (attention q/k/v/o + gated MLP).
KNOWN_TYPES = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "phi3",
    "granite",
    "olmo2",
    "smollm3",
)
CUDA_RUNTIME_GIB = 0.45  # context + cuBLAS workspace + allocator slack (not in torch's own counters)
CPU_RUNTIME_GIB = 0.58  # measured: a training process with torch, transformers and peft loaded (docs/planner.md)
# On CPU PEFT's adapter path keeps more than the tensors counted for GPUs (dropout's float noise, fp32
# copies around each adapted layer): measured, in fp32 elements per token and layer per element of the
# adapted layers' inputs + outputs, with dropout on (docs/planner.md).
CPU_ADAPTER_PATH = {"lora": 0.89, "qlora": 0.89, "dora": 2.63}
LOGIT_COPIES = 2.0  # one chunk's fp32 logits (turned into their gradient in place) + logsumexp's temporary


class PlannerError(UserError, ValueError):
    """A model config or setting the planner can't estimate; it says so rather than guess."""


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on, read from config.json."""

    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, path: Path) -> ModelShape:
        """The shape of the model at `path` (a model directory, or one holding only config.json, or the file)."""
        file = path / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise PlannerError(f"no config.json at {path}", hint="give a model directory (config.json is enough)")
        try:
            config = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise PlannerError(f"{file}: not a readable JSON config ({error})") from None
        return cls.from_dict(config, where=str(file))

    @classmethod
    def from_dict(cls, config: dict[str, Any], *, where: str = "config.json") -> ModelShape:
        model_type = str(config.get("model_type", ""))
        if model_type not in KNOWN_TYPES:
            raise PlannerError(
                f"{where}: the planner doesn't know model_type {model_type!r}, so it won't guess its memory",
                hint=f"it knows {', '.join(KNOWN_TYPES)} (dense decoders); a mixture of experts is not estimated",
            )
        text = config.get("text_config") or config  # multimodal configs (gemma3) keep the decoder here
        needed = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
        if missing := [name for name in needed if not isinstance(text.get(name), int)]:
            raise PlannerError(f"{where}: {', '.join(missing)} missing or not a number; can't count the weights")
        heads = text["num_attention_heads"]
        return cls(
            model_type=model_type,
            hidden=text["hidden_size"],
            layers=text["num_hidden_layers"],
            heads=heads,
            kv_heads=text.get("num_key_value_heads") or heads,
            head_dim=text.get("head_dim") or text["hidden_size"] // heads,
            intermediate=text["intermediate_size"],
            vocab=text["vocab_size"],
            tied_embeddings=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        )

    # shapes of the linear layers of one decoder layer: (in, out)
    def linears(self) -> list[tuple[int, int]]:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linears())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def params(self) -> int:
        norms = self.hidden * (2 * self.layers + 1)
        return self.linear_params + self.embedding_params + norms

    def adapter_params(self, rank: int, method: str) -> int:
        per_layer = sum(rank * (a + b) for a, b in self.linears())
        if method == "dora":
            per_layer += sum(b for _, b in self.linears())  # the magnitude vector of each adapted weight
        return self.layers * per_layer


@dataclass(frozen=True)
class Setup:
    """One way to train: what the estimate is for. Defaults are TailorLM's own choices."""

    method: str = "lora"
    device: Literal["cpu", "cuda"] = "cuda"
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    rank: int = 16
    lora_dropout: float = 0.05
    seq_len: int = 1024
    micro_batch: int = 1
    gradient_checkpointing: bool = True
    optimizer: Optimizer = "adamw"
    master_weights: bool = True  # full fine-tuning: fp32 weights (+ autocast); False: weights in `precision`
    flash_attention: bool = True  # SDPA/flash keeps no seq × seq scores
    gpus: int = 1
    sharded: bool = False  # FSDP / ZeRO-3: weights, gradients and optimizer states split across the GPUs

    def __post_init__(self) -> None:
        if self.method not in ("full", "lora", "qlora", "dora"):
            raise PlannerError(f"method must be full, lora, qlora or dora (got {self.method!r})")
        for name in ("rank", "seq_len", "micro_batch", "gpus"):
            if getattr(self, name) <= 0:
                raise PlannerError(f"{name.replace('_', '-')} must be > 0 (got {getattr(self, name)})")

    @property
    def act_bytes(self) -> int:
        return 4 if self.precision == "fp32" else 2

    def describe(self) -> str:
        parts = [self.method + (f" r={self.rank}" if self.method != "full" else "")]
        parts.append(f"micro-batch {self.micro_batch}")
        parts.append(f"checkpointing {'on' if self.gradient_checkpointing else 'off'}")
        if self.gpus > 1:
            parts.append(f"{'FSDP' if self.sharded else 'DDP'} on {self.gpus} GPUs")
        return ", ".join(parts)


@dataclass
class Estimate:
    """Peak memory of one device, by term (bytes)."""

    setup: Setup
    params: int
    trainable: int
    weights: float
    adapter: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.weights + self.adapter + self.gradients + self.optimizer + self.activations + self.buffers

    @property
    def total_gib(self) -> float:
        return self.total / GIB

    def breakdown_gib(self) -> dict[str, float]:
        terms = ("weights", "adapter", "gradients", "optimizer", "activations", "buffers")
        return {term: round(getattr(self, term) / GIB, 3) for term in terms} | {"total": round(self.total_gib, 3)}

    def to_json(self) -> dict[str, Any]:
        return {
            "setup": asdict(self.setup),
            "params": self.params,
            "trainable": self.trainable,
            "gib": self.breakdown_gib(),
            "notes": self.notes,
        }


def estimate(shape: ModelShape, setup: Setup) -> Estimate:
    """Peak memory of each device training `shape` as `setup` says."""
    notes: list[str] = []
    low = 2 if setup.precision in ("bf16", "fp16") else 4
    if setup.device == "cpu" and setup.precision != "fp32":
        notes.append("on CPU TailorLM trains in fp32 unless bf16 is asked for")
    full = setup.method == "full"
    trainable = shape.params if full else shape.adapter_params(setup.rank, setup.method)
    # weights of the (frozen or trained) base
    weights: float
    if full:
        weight_bytes = 4 if setup.master_weights else low
        weights = shape.params * weight_bytes
    elif setup.method == "qlora":
        # NF4: 4 bits a weight; double quantisation stores 8-bit absmax per 64 weights + fp32 per 256 blocks
        nf4 = 0.5 + 1 / 64 + 4 / (64 * 256)
        weights = shape.linear_params * nf4 + (shape.params - shape.linear_params) * low
    else:
        weights = shape.params * low
    adapter = 0.0 if full else trainable * 4  # adapters train in fp32
    grad_bytes = (4 if setup.master_weights else low) if full else 4
    gradients = float(trainable * grad_bytes)
    state_bytes = 2 if setup.optimizer == "adamw_8bit" else (2 * grad_bytes)
    optimizer = float(trainable * state_bytes)
    if setup.sharded and setup.gpus > 1:
        weights, adapter, gradients, optimizer = (x / setup.gpus for x in (weights, adapter, gradients, optimizer))
        notes.append(f"weights, gradients and optimizer states sharded over {setup.gpus} GPUs")
    activations = _activations(shape, setup)
    runtime = CUDA_RUNTIME_GIB if setup.device == "cuda" else CPU_RUNTIME_GIB
    buffers = runtime * GIB
    if setup.method == "dora":  # the adapted weight is materialised for its norm, one layer at a time
        buffers += max(a * b for a, b in shape.linears()) * low
    if setup.method == "qlora":  # one layer's weight dequantised for the matmul at a time
        buffers += max(a * b for a, b in shape.linears()) * low
    return Estimate(setup, shape.params, trainable, weights, adapter, gradients, optimizer, activations, buffers, notes)


def _activations(shape: ModelShape, setup: Setup) -> float:
    """What backward needs from the forward pass, for one micro-batch."""
    tokens = setup.seq_len * setup.micro_batch
    b = 4 if setup.precision == "fp32" else 2
    h, i = shape.hidden, shape.intermediate
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    # one decoder layer, per token (elements): 2 norms in/out, q k v, attention out, o_proj in,
    # gate, up, act(gate), gate*up (down's input), two residual adds
    per_token: float = 4 * h + q + 2 * kv + q + 4 * i + 2 * h
    if not setup.flash_attention:
        per_token += 2 * shape.heads * setup.seq_len  # scores and softmax (eager attention)
    if setup.method != "full":
        targets = shape.linears()
        per_token += sum(setup.rank for _ in targets)  # each lora_A output
        if setup.device == "cpu" and setup.lora_dropout > 0:
            per_token += CPU_ADAPTER_PATH[setup.method] * sum(a + b for a, b in targets)
        else:
            if setup.lora_dropout > 0:
                per_token += sum(a for a, _ in targets)  # each adapter input after dropout
            if setup.method == "dora":
                per_token += 2 * sum(out for _, out in targets)  # the base output again, and the adapter's
    per_layer = int(per_token * tokens * b)
    # with checkpointing: each layer's input + one layer recomputed at a time
    kept = shape.layers * tokens * h * b + per_layer if setup.gradient_checkpointing else shape.layers * per_layer
    return kept + loss_memory(shape, setup)


def loss_memory(shape: ModelShape, setup: Setup) -> float:
    """The lean loss's peak (train/loss.py): the trained positions' hidden states and their gradient, kept
    from forward to backward; one chunk of fp32 logits and its softmax temporary at a time (never the whole
    `[batch, seq, vocab]`); with full fine-tuning the head's fp32 gradient, accumulated over the chunks.
    Every position is counted as trained (a chat's prompt tokens are not: an upper bound)."""
    from tailorlm.train.loss import CHUNK_ELEMENTS

    rows = setup.seq_len * setup.micro_batch
    chunk = min(rows, max(64, CHUNK_ELEMENTS // shape.vocab))
    hidden = 2 * rows * shape.hidden * setup.act_bytes
    logits = LOGIT_COPIES * chunk * shape.vocab * 4
    head_gradient = shape.vocab * shape.hidden * 4 if setup.method == "full" else 0
    return hidden + logits + head_gradient


def fits(result: Estimate, gpu_memory_gib: float, headroom: float = 0.9) -> bool:
    """Within `headroom` of the device's memory (fragmentation and spikes need the rest)."""
    return result.total_gib <= gpu_memory_gib * headroom


def ceil_div(a: int, b: int) -> int:
    return max(1, math.ceil(a / b))


def with_changes(setup: Setup, **changes: Any) -> Setup:
    return replace(setup, **changes)
