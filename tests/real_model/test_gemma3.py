"""Gemma 3 270M, a base model whose tokenizer has no chat template: the ChatML fallback is used (and its
answers end with Gemma's own EOS, trained), and a few LoRA steps on the sample company lower the loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.real_models import acme_project, mean_loss, split_rows

pytestmark = pytest.mark.real_model

MAX_LENGTH = 128
STEPS = 8


def test_tokenizer_without_template_gets_chatml(real_workspace, gemma3, acme_dataset):
    from transformers import AutoTokenizer

    from tailorlm.dataset_splits import load_split
    from tailorlm.formats.templates import ensure_chat_template, render, tokenize_example

    directory = real_workspace.path_of(gemma3)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    assert not tokenizer.chat_template
    assert ensure_chat_template(tokenizer) == "chatml-fallback"

    example = load_split(real_workspace, acme_dataset, "train")[0]
    messages = [m.model_dump() for m in example.messages]
    assert render(tokenizer, messages).startswith("<|im_start|>system\n")
    assert render(tokenizer, messages[:-1], add_generation_prompt=True).endswith("<|im_start|>assistant\n")
    tokenized = tokenize_example(tokenizer, example, 4096)
    assert tokenizer.eos_token == "<eos>"
    assert tokenized.labels[-1] == tokenizer.eos_token_id  # appended after <|im_end|> and trained


def test_few_lora_steps_lower_loss(real_workspace, gemma3, acme_dataset):
    """Eight steps of batch 2 at a high learning rate: the base has never seen the ChatML layout, so the
    loss on the validation split (same rows, same masks, before and after) falls at once."""
    from transformers import AutoModelForCausalLM

    from tailorlm.modeling import load_tokenizer, load_trained
    from tailorlm.train import train

    directory = real_workspace.path_of(gemma3)
    project = acme_project(
        real_workspace, gemma3.name, max_steps=STEPS, batch_size=2, max_length=MAX_LENGTH, learning_rate=2e-3,
        logging_steps=1,
    )  # fmt: skip
    tokenizer = load_tokenizer(directory)
    val = split_rows(real_workspace, acme_dataset, "val", tokenizer, MAX_LENGTH)
    base = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
    before = mean_loss(base, val, tokenizer.pad_token_id)
    del base

    run = train(real_workspace, project, dataset=acme_dataset.id)
    trained, _ = load_trained(run.run_dir / "adapter", directory)
    after = mean_loss(trained, val, tokenizer.pad_token_id)

    assert Path(run.run.meta.base_model) == directory.resolve()  # `base_model: gemma3-270m` resolved to the import
    assert len([row for row in run.metrics_rows() if "loss" in row]) >= STEPS - 1
    assert after < before - 0.3, f"val loss {before:.3f} → {after:.3f} after {STEPS} LoRA steps"
