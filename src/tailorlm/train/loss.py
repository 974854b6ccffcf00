"""The training loss: next-token cross-entropy on the trained (assistant) tokens only, computed from the
model's last hidden states in chunks, so the `[batch, seq, vocab]` logits never exist whole.

With a 49k-token vocabulary the logits (and their fp32 log-softmax copy) are the biggest tensors of a
small model's step and most of its loss time; most positions of a chat batch (system prompt, user turn,
padding) are not trained at all. So: run the decoder, keep the hidden states of the positions whose
next token is trained, and push them through the output layer a chunk of rows at a time.

For a plain `nn.Linear` head (the usual case, tied or not) one autograd function does the work: each
chunk's logits, its loss and its gradients (w.r.t. the hidden states, and the head's weight when that
trains) are computed in the forward pass and the chunk's logits are dropped at once; backward only
scales what was kept (the fused linear cross-entropy of Liger / cut-cross-entropy, in plain PyTorch, so
it runs on CPU). Any other head (a LoRA-adapted `lm_head`) goes chunk by chunk under activation
checkpointing, recomputed in backward. A model whose decoder and head can't be found falls back to its
own forward's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE = -100
# Rows per chunk: about 32M logits (128 MB in fp32) whatever the vocabulary.
CHUNK_ELEMENTS = 1 << 25


@dataclass
class LanguageModelParts:
    """What the lean loss needs from a causal LM: the decoder (ids → last hidden states), the output
    layer, and the final logit soft-cap some models apply (Gemma 2)."""

    decoder: Any
    head: torch.nn.Module
    softcap: float | None = None


def model_parts(model: Any) -> LanguageModelParts | None:
    """The decoder and head of a transformers causal LM (PEFT-wrapped or not); None when the model is
    not the usual `decoder → lm_head` shape (then the model's own loss is used)."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    get_decoder = getattr(causal, "get_decoder", None)
    get_head = getattr(causal, "get_output_embeddings", None)
    if get_decoder is None or get_head is None:
        return None
    try:
        decoder, head = get_decoder(), get_head()
    except (AttributeError, ValueError, NotImplementedError):
        return None
    if decoder is None or decoder is causal or not isinstance(head, torch.nn.Module):
        return None
    config = getattr(causal, "config", None)
    text_config = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    if getattr(text_config, "logit_scale", None) not in (None, 1, 1.0):
        return None  # heads that scale their logits (Cohere) keep the model's own loss
    return LanguageModelParts(decoder, head, getattr(text_config, "final_logit_softcapping", None))


def causal_lm_loss(
    model: Any, batch: dict[str, torch.Tensor], parts: LanguageModelParts | None = None
) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the trained tokens of `batch` (input_ids, attention_mask,
    labels with -100 where untrained) and how many tokens that is; divide one by the other for the mean."""
    labels = batch["labels"]
    targets = labels[:, 1:]
    trained = targets != IGNORE
    count = int(trained.sum())
    parts = parts or model_parts(model)
    if parts is None:  # the model's own (mean) loss, turned back into a sum
        out = model(**batch, use_cache=False)  # a cache would turn off packed-row detection (train/packing.py)
        return out.loss * count, count
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    hidden = parts.decoder(**inputs, use_cache=False).last_hidden_state[:, :-1]
    return chunked_cross_entropy(hidden[trained], parts.head, targets[trained], softcap=parts.softcap), count


def chunked_cross_entropy(
    hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor, *, softcap: float | None = None
) -> torch.Tensor:
    """Sum over rows of cross_entropy(head(hidden[i]), targets[i]), a chunk of rows at a time."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0  # keeps the graph (and DDP) happy on a batch with nothing to train
    vocab = _vocab_size(head)
    chunk = max(64, CHUNK_ELEMENTS // max(vocab, 1))
    if type(head) is torch.nn.Linear:
        return _LinearCrossEntropy.apply(hidden, head.weight, head.bias, targets, chunk, softcap)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        piece = (hidden[start : start + chunk], targets[start : start + chunk])
        total = total + checkpoint(_chunk_loss, head, *piece, softcap, use_reentrant=False)
    return total


def _chunk_loss(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, softcap: float | None) -> Any:
    logits = head(hidden).float()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits, targets, reduction="sum")


def _vocab_size(head: torch.nn.Module) -> int:
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else 65_536


class _LinearCrossEntropy(torch.autograd.Function):
    """Linear layer + summed cross-entropy whose forward also computes the gradients, chunk by chunk.

    The logits of one chunk exist at a time; what is kept for backward is the gradient w.r.t. the
    hidden rows (rows × hidden) and, when the head trains, w.r.t. its weight and bias. Matmuls follow
    the autocast state of the forward (bf16 on a bf16 run); softmax and the loss are fp32."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        chunk: int,
        softcap: float | None,
    ) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_bias = bias is not None and ctx.needs_input_grad[2]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if need_bias and bias is not None else None
        for start in range(0, hidden.shape[0], chunk):
            rows = hidden[start : start + chunk]
            target = targets[start : start + chunk]
            logits = F.linear(rows, weight, bias).float()
            if softcap:
                capped = torch.tanh(logits / softcap)
                logits = softcap * capped
            log_norm = torch.logsumexp(logits, dim=-1)
            total += (log_norm - logits.gather(1, target[:, None]).squeeze(1)).sum()
            if not (need_hidden or need_weight or need_bias):
                continue
            # d loss / d logits = softmax - one_hot(target), built in place over the logits' buffer
            grad = logits.sub_(log_norm[:, None]).exp_()
            grad[torch.arange(grad.shape[0], device=grad.device), target] -= 1.0
            if softcap:
                grad *= 1.0 - capped.square()
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += grad.T @ rows.to(grad.dtype)
            if grad_bias is not None:
                grad_bias += grad.sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        weight_dtype, bias_dtype = ctx.dtypes
        scale = grad_output.float()
        return (
            grad_hidden * scale.to(grad_hidden.dtype) if grad_hidden is not None else None,
            (grad_weight * scale).to(weight_dtype) if grad_weight is not None else None,
            (grad_bias * scale).to(bias_dtype) if grad_bias is not None else None,
            None,
            None,
            None,
        )
