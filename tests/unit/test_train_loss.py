"""The lean training loss equals the naive one: same value, same gradients, on a tiny model (full and LoRA,
fp32 and bf16 autocast, tied and untied heads, a soft-capped head, a LoRA-adapted head).

Issue 11's Done-when: the `*_equal_the_naive_loss` tests are "chunked-loss-equals-naive"; the
`test_equal_loss_*` test is "equal loss" (a whole run with the lean loss trains as one with the model's own)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tailorlm.config import LoraSettings
from tailorlm.modeling import add_adapters, load_base_model
from tailorlm.train import loss as lean


def _batch(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Three right-padded rows of different lengths; labels: -100 on the 'prompt' and the padding."""
    generator = torch.Generator().manual_seed(seed)
    width, lengths, prompts = 24, (24, 17, 9), (10, 5, 3)
    input_ids = torch.randint(3, vocab, (3, width), generator=generator)
    attention = torch.zeros(3, width, dtype=torch.long)
    labels = torch.full((3, width), -100)
    for row, (n, p) in enumerate(zip(lengths, prompts, strict=True)):
        attention[row, :n] = 1
        labels[row, p:n] = input_ids[row, p:n]
        input_ids[row, n:] = 0
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def _naive(model, batch) -> torch.Tensor:
    """The textbook loss: every position's logits, shifted, mean over the trained tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100)


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _compare(model, batch, *, bf16: bool = False, chunk_elements: int | None = None, monkeypatch=None) -> None:
    if chunk_elements is not None and monkeypatch is not None:
        monkeypatch.setattr(lean, "CHUNK_ELEMENTS", chunk_elements)  # several chunks on a tiny vocabulary
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        naive = _naive(model, batch)
    naive.backward()
    expected = _grads(model)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        total, count = lean.causal_lm_loss(model, batch)
        assert lean.model_parts(model) is not None  # the lean path, not the fallback
        mean = total / count
    mean.backward()
    got = _grads(model)
    assert count == int((batch["labels"][:, 1:] != -100).sum())
    tolerance = 2e-2 if bf16 else 1e-5
    assert mean.item() == pytest.approx(naive.item(), rel=tolerance, abs=tolerance)
    assert expected.keys() == got.keys() and expected
    for name, grad in expected.items():
        scale = grad.abs().max().item() + 1e-12
        error = (got[name] - grad).abs().max().item() / scale
        assert error < (5e-2 if bf16 else 1e-4), f"{name}: relative gradient error {error:.2e}"


@pytest.fixture
def full_model(tiny_model_dir: Path):
    torch.manual_seed(0)
    return load_base_model(tiny_model_dir, method="full", precision="fp32", device="cpu").train()


def test_full_model_loss_and_gradients_equal_the_naive_loss(full_model, monkeypatch):
    """Full fine-tuning: the head's weight is tied to the embeddings and trains (grad through both uses)."""
    assert full_model.get_output_embeddings().weight.requires_grad
    _compare(full_model, _batch(full_model.config.vocab_size), chunk_elements=512 * 8, monkeypatch=monkeypatch)


def test_lora_loss_and_gradients_equal_the_naive_loss(tiny_model_dir, monkeypatch):
    torch.manual_seed(0)
    model = load_base_model(tiny_model_dir, method="lora", precision="fp32", device="cpu")
    model = add_adapters(model, "lora", LoraSettings(r=4, alpha=8, dropout=0.0), gradient_checkpointing=False)
    for name, parameter in model.named_parameters():  # non-zero B so every LoRA weight gets a gradient
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    model.train()
    _compare(model, _batch(model.config.vocab_size, seed=1), chunk_elements=512 * 5, monkeypatch=monkeypatch)


def test_bf16_autocast_matches_within_tolerance(full_model):
    _compare(full_model, _batch(full_model.config.vocab_size, seed=2), bf16=True)


def test_untied_head_with_bias_and_softcap(full_model, monkeypatch):
    """A separate head weight with a bias and a Gemma-2-style logit soft-cap: the fused path handles both."""
    hidden, vocab = full_model.config.hidden_size, full_model.config.vocab_size
    torch.manual_seed(3)
    head = torch.nn.Linear(hidden, vocab, bias=True)
    full_model.lm_head = head
    full_model.config.tie_word_embeddings = False
    full_model.config.final_logit_softcapping = 3.0
    original = full_model.forward

    def capped_forward(*args, **kwargs):
        out = original(*args, **kwargs)
        out.logits = 3.0 * torch.tanh(out.logits / 3.0)
        return out

    monkeypatch.setattr(full_model, "forward", capped_forward)
    parts = lean.model_parts(full_model)
    assert parts is not None and parts.softcap == 3.0 and parts.head is head
    _compare(full_model, _batch(vocab, seed=4), chunk_elements=512 * 7, monkeypatch=monkeypatch)


def test_adapted_head_goes_through_the_checkpointed_chunks(tiny_model_dir, monkeypatch):
    """A LoRA on lm_head is not a plain Linear: the chunked path with recompute must still be exact."""
    torch.manual_seed(0)
    model = load_base_model(tiny_model_dir, method="lora", precision="fp32", device="cpu")
    model = add_adapters(
        model,
        "lora",
        LoraSettings(r=4, alpha=8, dropout=0.0, targets=["q_proj", "lm_head"]),
        gradient_checkpointing=False,
    )
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    parts = lean.model_parts(model)
    assert parts is not None and type(parts.head) is not torch.nn.Linear
    model.train()
    _compare(model, _batch(model.config.vocab_size, seed=5), chunk_elements=512 * 6, monkeypatch=monkeypatch)


def test_a_batch_with_nothing_to_train_gives_zero_with_a_graph(full_model):
    batch = _batch(full_model.config.vocab_size)
    batch["labels"][:] = -100
    total, count = lean.causal_lm_loss(full_model, batch)
    assert count == 0 and total.item() == 0.0
    total.backward()  # no error: the graph exists


def test_the_training_path_never_builds_full_logits(tiny_model_dir, workspace, tmp_path, monkeypatch):
    """`tailorlm train` (training steps and validation passes) goes through the lean loss: the model's own
    forward, which computes `[batch, seq, vocab]` logits, is never called."""
    from transformers import LlamaForCausalLM

    from helpers.data import make_chat_examples, register_dataset
    from helpers.train import losses, project_for
    from tailorlm.train import train

    def full_logits(*args, **kwargs):
        raise AssertionError("the full-logits forward was called during training")

    monkeypatch.setattr(LlamaForCausalLM, "forward", full_logits)
    register_dataset(workspace, make_chat_examples(16))
    result = train(workspace, project_for(tiny_model_dir, tmp_path, max_steps=4, eval_steps=2, logging_steps=1))
    assert len(losses(result)) == 4 and "eval_loss" in result.metrics


@pytest.mark.parametrize("architecture", ["gemma3", "qwen2"])
def test_other_architectures_equal_the_naive_loss(architecture, monkeypatch):
    """The real bases TailorLM imports besides Llama (Gemma 3; Qwen-style): random weights, tiny config."""
    from transformers import AutoConfig, AutoModelForCausalLM

    common = dict(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=128,
    )
    extra = {"final_logit_softcapping": 5.0, "sliding_window": 8} if architecture == "gemma3" else {}
    config = AutoConfig.for_model("gemma3_text" if architecture == "gemma3" else architecture, **common, **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).train()
    parts = lean.model_parts(model)
    assert parts is not None and parts.softcap == extra.get("final_logit_softcapping")
    _compare(model, _batch(300, seed=6), chunk_elements=300 * 7, monkeypatch=monkeypatch)


def test_equal_loss_a_run_with_the_lean_loss_trains_like_one_with_the_models_own_loss(
    tiny_model_dir, workspace, tmp_path, monkeypatch
):
    """Done-when (issue 11): equal loss. Same data, seed and steps through `tailorlm train`; the reference run
    takes the lean loss's own fallback (the model's forward with labels: full logits, transformers' loss)."""
    from helpers.data import make_chat_examples, register_dataset
    from helpers.train import losses, project_for
    from tailorlm.train import train

    register_dataset(workspace, make_chat_examples(24))
    project = project_for(tiny_model_dir, tmp_path, max_steps=10, logging_steps=2, eval_steps=5)
    ours = train(workspace, project)
    monkeypatch.setattr(lean, "model_parts", lambda model: None)  # the naive path: the model's own loss
    naive = train(workspace, project, force=True)
    assert losses(ours) == pytest.approx(losses(naive), rel=1e-3) and len(losses(ours)) >= 5
    assert ours.metrics["eval_loss"] == pytest.approx(naive.metrics["eval_loss"], rel=1e-3)
