"""Packing without padding or leaks: a batch's short examples share a row, positions restart at each example,
and attention never crosses from one example into another.

Rows are built by the installed transformers' `DataCollatorWithFlattening` (examples concatenated, position ids
reset per example, the first label of each example set to -100 so that no example's first token is trained on
the previous example's last one). No attention mask is passed: transformers then derives the block-diagonal
causal mask from the position ids (`masking_utils.find_packed_sequence_indices`, for sdpa and eager attention;
flash-attention's varlen kernels read the same position ids), so this module writes no attention itself.

A row is never wider than the batch's longest example (rounded up as padding would be): on CPU attention costs
grow with the square of a row's width, so packing only fills the room padding would have wasted and a packed
batch never costs more than the padded one. A batch whose examples can't share a row is padded as before.

Not every attention implementation honours packed position ids, so `keeps_examples_apart` checks the loaded
model itself before training: two short sequences run packed and alone must give the same logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tailorlm.train.data import PadCollator

# The count of real (non-padding) tokens of a packed batch, for the trainer's tokens-seen counter: a packed
# batch has no attention mask to count them from, and the pad token is often the end-of-turn token.
REAL_TOKENS = "real_tokens"


def pack_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Indices of the examples in each row: first-fit by decreasing length, no row longer than `width`."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(width - lengths[index])
    return [sorted(row) for row in rows]  # dataset order within a row


@dataclass
class PackCollator:
    """Packs a batch into as few rows as the width of its longest example allows; pads when that saves no row.

    A packed batch is `input_ids`, `labels` and `position_ids` (rows right-padded, the padding a sequence of its
    own that attends only to itself and is never trained) plus `REAL_TOKENS`."""

    pad_token_id: int
    multiple_of: int = 8

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch
        from transformers import DataCollatorWithFlattening

        padded = PadCollator(self.pad_token_id, self.multiple_of)
        lengths = [len(row["input_ids"]) for row in rows]
        width = -(-max(lengths) // self.multiple_of) * self.multiple_of
        groups = pack_rows(lengths, width)
        if len(groups) == len(rows):
            return padded(rows)  # nothing shares a row: the padded batch is the same size, and simpler
        flatten = DataCollatorWithFlattening(return_tensors="pt")
        input_ids = torch.full((len(groups), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(groups), width), -100, dtype=torch.long)
        # the padding after the last example counts from 0 again: a sequence of its own, never attended to
        position_ids = torch.zeros((len(groups), width), dtype=torch.long)
        for r, group in enumerate(groups):
            row = flatten([{"input_ids": rows[i]["input_ids"], "labels": rows[i]["labels"]} for i in group])
            n = row["input_ids"].shape[1]
            input_ids[r, :n] = row["input_ids"][0]
            labels[r, :n] = row["labels"][0]
            position_ids[r, :n] = row["position_ids"][0]
            position_ids[r, n:] = torch.arange(width - n)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            REAL_TOKENS: torch.tensor(sum(lengths)),
        }


def keeps_examples_apart(model: Any) -> bool:
    """Whether `model`'s attention keeps packed examples apart: the last hidden states (the logits when the model
    has no separate decoder) of a short sequence packed after another equal those it has alone, to 1e-3 of their
    scale in fp32 (2e-2 for lower-precision weights). Two tiny forward passes without gradients, dropout off."""
    import torch

    from tailorlm.train.loss import model_parts

    weight = model.get_input_embeddings().weight
    tolerance = 1e-3 if weight.dtype == torch.float32 else 2e-2
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(0, int(weight.shape[0]), (7,), generator=generator)
    second = torch.randint(0, int(weight.shape[0]), (5,), generator=generator)
    parts = model_parts(model)

    def outputs(ids: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        inputs = {"input_ids": ids[None].to(weight.device), "use_cache": False}  # a cache turns detection off
        if positions is not None:
            inputs["position_ids"] = positions[None].to(weight.device)
        if parts is not None:
            return parts.decoder(**inputs).last_hidden_state[0].float()
        return model(**inputs).logits[0].float()

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = outputs(torch.cat([first, second]), torch.cat([torch.arange(7), torch.arange(5)]))[7:]
            alone = outputs(second, None)
    finally:
        model.train(was_training)
    return float((packed - alone).abs().max()) <= tolerance * max(float(alone.abs().max()), 1.0)
