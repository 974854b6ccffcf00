"""SmolLM2-135M-Instruct on the sample company: a short LoRA run lowers the held-out loss, and training
sees the model's own ChatML template with loss on the assistant's answer and its `<|im_end|>` only."""

from __future__ import annotations

import pytest
import torch

from helpers.real_models import MAX_LENGTH, TRAIN_STEPS, mean_loss, split_rows, tailorlm

pytestmark = pytest.mark.real_model


def test_lora_lowers_held_out_loss(real_workspace, smollm2_dir, acme_dataset, smollm2_run):
    """The base and the trained adapter scored on the same validation split with the same masks."""
    from transformers import AutoModelForCausalLM

    from tailorlm.modeling import load_tokenizer, load_trained

    tokenizer = load_tokenizer(smollm2_dir)
    val = split_rows(real_workspace, acme_dataset, "val", tokenizer)
    assert len(val) >= 8
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir, local_files_only=True, dtype=torch.float32)
    before = mean_loss(base, val, tokenizer.pad_token_id)
    del base
    trained, _ = load_trained(smollm2_run.run_dir / "adapter", smollm2_dir)
    after = mean_loss(trained, val, tokenizer.pad_token_id)

    assert smollm2_run.plan.total_steps == TRAIN_STEPS
    assert after < before - 0.3, f"held-out loss {before:.3f} → {after:.3f} after {TRAIN_STEPS} LoRA steps"
    # the run's own validation pass measured the same thing (it averages per batch, so only roughly)
    assert smollm2_run.metrics["eval_loss"] == pytest.approx(after, abs=0.25)


def test_inspect_shows_smollm2_template_and_trained_tokens(real_workspace, smollm2_dir, acme_dataset):
    from tailorlm.dataset_splits import load_split
    from tailorlm.formats.templates import inspect_segments, tokenize_example
    from tailorlm.modeling import load_tokenizer

    shown = tailorlm(
        "data", "inspect", acme_dataset.id, "--workspace", real_workspace.root, "--base-model", smollm2_dir,
        "--max-length", MAX_LENGTH, "--split", "val", "-n", "2",
    )  # fmt: skip
    assert "<|im_start|>system" in shown.stdout
    assert "<|im_start|>assistant" in shown.stdout
    assert "<|im_end|>" in shown.stdout

    tokenizer = load_tokenizer(smollm2_dir)
    assert tokenizer.eos_token == "<|im_end|>"
    examples = [e for e in load_split(real_workspace, acme_dataset, "val") if e.messages and len(e.messages) == 3]
    checked = 0
    for example in examples:
        tokenized = tokenize_example(tokenizer, example, MAX_LENGTH)
        if tokenized.truncated:
            continue
        answer = example.messages[-1].content
        segments = inspect_segments(tokenizer, example, MAX_LENGTH)
        trained = [text for text, is_trained in segments if is_trained]
        masked = "".join(text for text, is_trained in segments if not is_trained)
        # one trained stretch: the answer and the end-of-turn marker, nothing of the system or user turns
        assert len(trained) == 1, trained
        assert trained[0].rstrip("\n") == answer + "<|im_end|>"
        assert masked.endswith("<|im_start|>assistant\n")
        assert example.messages[1].content in masked and "<|im_start|>user" in masked
        # the last trained token is EOS itself, so the model learns to stop
        start = next(i for i, label in enumerate(tokenized.labels) if label != -100)
        assert all(label != -100 for label in tokenized.labels[start:])
        assert tokenizer.eos_token_id in tokenized.labels[-2:]
        checked += 1
    assert checked >= 5
