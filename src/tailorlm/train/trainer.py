"""The transformers `Trainer` the SFT recipe runs: its loss is the lean one (train/loss.py: assistant tokens
only, logits a chunk at a time), for training and validation alike; packed batches (train/packing.py) have
their real tokens counted from the count the collator gives, since they carry no attention mask.

Tried and not kept: length-bucketed batches from pools of 64 batches (instead of transformers' pools of
at most 4 on a small set) cut the padding of a batch of 8 on the sample company's chats from 20% to 3%,
but batches of near-identical examples learned markedly slower on small sets (the tiny test set's loss
fell 6% in 60 steps instead of 15%); see docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from tailorlm.train.loss import causal_lm_loss
from tailorlm.train.packing import REAL_TOKENS


class LeanTrainer(Trainer):
    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        # the collator's count of a packed batch's real tokens is for the tokens-seen counter, not the model
        inputs = {key: value for key, value in inputs.items() if key != REAL_TOKENS}
        unwrapped = self.accelerator.unwrap_model(model)
        if unwrapped is not model or self.is_fsdp_enabled or "labels" not in inputs:
            # DDP/FSDP wrappers sync gradients (FSDP2: gathers the shards) in their own forward: going around
            # it would break that
            self.loss_is_scaled_for_ga = None
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        total, count = causal_lm_loss(model, inputs)
        if num_items_in_batch is not None:  # token-weighted over the accumulated micro-batches
            loss = total / max(float(num_items_in_batch), 1.0)
            self.loss_is_scaled_for_ga = True
        else:
            loss = total / max(count, 1)
            self.loss_is_scaled_for_ga = False
        return (loss, {"loss": loss.detach()}) if return_outputs else loss

    def _track_num_input_tokens(self, inputs: dict[str, Any]) -> None:
        if REAL_TOKENS in inputs and self.args.include_num_input_tokens_seen == "non_padding":
            count = torch.as_tensor(inputs[REAL_TOKENS], device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += int(self.accelerator.gather(count).sum().item())
            return
        super()._track_num_input_tokens(inputs)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if not (self.is_fsdp_enabled and self.args.use_cpu):
            return super().save_model(output_dir, _internal_call)
        # FSDP2 on CPU processes: accelerate's full state dict (cpu_offload of tensors already on the CPU) hands
        # back tensors whose storage FSDP frees when it reshards; gather each shard into a tensor of its own
        state = full_state_dict(self.model)
        if self.args.should_save:
            self._save(output_dir or self.args.output_dir, state_dict=state)
        return None


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict on every process (a collective: every rank calls it), shards gathered."""
    from torch.distributed.tensor import DTensor

    return {
        name: (value.full_tensor() if isinstance(value, DTensor) else value).detach().clone()
        for name, value in model.state_dict().items()
    }
