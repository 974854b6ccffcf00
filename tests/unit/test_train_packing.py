"""Packing (train/packing.py): issue 11's Done-when "no-leak" test, and packing's other promises.

A packed row's logits equal each example's logits alone, and the test's deliberately broken variants (positions
not reset; a mask that lets examples see each other) differ, so it fails when either leaks; no example's first
token is trained on the previous one's last; the lean loss on packed rows equals the padded batch's (value and
gradients); a run with packing trains exactly like one without (same examples per step) and counts the same
tokens; a model whose attention ignores packed positions is caught before training.
"""

from __future__ import annotations

import pytest
import torch

from helpers.data import register_dataset
from helpers.train import losses, project_for
from tailorlm.errors import UserError
from tailorlm.modeling import load_base_model
from tailorlm.train import loss as lean
from tailorlm.train.data import PadCollator
from tailorlm.train.packing import REAL_TOKENS, PackCollator, keeps_examples_apart, pack_rows

PAD = 0


def _examples(vocab: int, lengths=(30, 9, 12, 20, 7), seed: int = 0) -> list[dict[str, list[int]]]:
    """Rows of the given lengths; the first third of each is 'prompt' (-100), the rest trained."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=generator).tolist()
        prompt = n // 3
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    torch.manual_seed(0)
    return load_base_model(tiny_model_dir, method="full", precision="fp32", device="cpu").eval()


def _alone(model, row: dict[str, list[int]]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([row["input_ids"]]), use_cache=False).logits[0]


def _packed_logits(model, batch: dict[str, torch.Tensor], **override) -> torch.Tensor:
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], **override}
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits  # a cache turns packed-sequence detection off


def _max_error_per_example(model, rows, batch, logits) -> float:
    """Largest difference between an example's logits inside the packed batch and its logits alone."""
    worst = 0.0
    for r, group in enumerate(pack_rows([len(row["input_ids"]) for row in rows], batch["input_ids"].shape[1])):
        start = 0
        for i in group:
            n = len(rows[i]["input_ids"])
            assert batch["input_ids"][r, start : start + n].tolist() == rows[i]["input_ids"]
            worst = max(worst, float((logits[r, start : start + n] - _alone(model, rows[i])).abs().max()))
            start += n
    return worst


def test_no_leak_a_packed_row_equals_each_example_alone_and_the_broken_variants_differ(model):
    """Done-when (issue 11): the no-leak test. Each example of a packed row has the logits it has alone (so
    positions restart and attention stays inside the example); resetting no positions, or giving a mask that lets
    examples see each other, changes the logits of every example after the first in its row."""
    rows = _examples(model.config.vocab_size)
    batch = PackCollator(PAD)(rows)
    assert batch["input_ids"].shape[0] < len(rows)  # something was packed: 5 examples in fewer rows
    assert max(len(group) for group in pack_rows([len(r["input_ids"]) for r in rows], 32)) >= 2

    assert _max_error_per_example(model, rows, batch, _packed_logits(model, batch)) < 1e-4

    # broken 1: positions run on through the row (not reset per example): transformers sees one long sequence
    running = torch.arange(batch["input_ids"].shape[1]).repeat(batch["input_ids"].shape[0], 1)
    broken = _packed_logits(model, batch, position_ids=running)
    assert _max_error_per_example(model, rows, batch, broken) > 1e-2
    # broken 2: positions reset, but a plain padding mask lets each example attend to the ones before it
    mask = torch.ones_like(batch["input_ids"])
    broken = _packed_logits(model, batch, attention_mask=mask)
    assert _max_error_per_example(model, rows, batch, broken) > 1e-2


def test_no_example_is_trained_on_the_previous_examples_last_token(model):
    rows = _examples(model.config.vocab_size, lengths=(8, 8, 8, 30))
    rows[1]["labels"] = list(rows[1]["input_ids"])  # an example trained from its very first token (cpt)
    batch = PackCollator(PAD)(rows)
    starts = (batch["position_ids"] == 0).nonzero().tolist()
    for r, column in starts:
        assert batch["labels"][r, column] == -100  # the target predicted from the token before: never trained
    # every trained token is still there: the same count as the padded batch (whose rows drop their first label)
    padded = PadCollator(PAD)(rows)
    assert int((batch["labels"][:, 1:] != -100).sum()) == int((padded["labels"][:, 1:] != -100).sum())
    assert int(batch[REAL_TOKENS]) == sum(len(r["input_ids"]) for r in rows) == int(padded["attention_mask"].sum())


def test_the_lean_loss_on_packed_rows_equals_the_padded_batch(tiny_model_dir):
    """Same examples, packed or padded: the same summed loss, the same trained-token count, the same gradients."""
    torch.manual_seed(0)
    model = load_base_model(tiny_model_dir, method="full", precision="fp32", device="cpu").train()
    rows = _examples(model.config.vocab_size, seed=3)
    results = []
    for collate in (PadCollator(PAD), PackCollator(PAD)):
        batch = collate(rows)
        batch.pop(REAL_TOKENS, None)
        total, count = lean.causal_lm_loss(model, batch)
        total.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        results.append((float(total.detach()), count, grads))
    (padded_total, padded_count, padded_grads), (packed_total, packed_count, packed_grads) = results
    assert packed_count == padded_count > 0
    assert packed_total == pytest.approx(padded_total, rel=1e-5)
    for name, grad in padded_grads.items():
        error = float((packed_grads[name] - grad).abs().max()) / (float(grad.abs().max()) + 1e-12)
        assert error < 1e-4, f"{name}: relative gradient error {error:.2e}"


def test_rows_are_never_wider_than_the_longest_example_and_unpackable_batches_stay_padded():
    assert pack_rows([30, 9, 12, 20, 7], 32) == [[0], [2, 3], [1, 4]]  # first fit, longest first
    # lengths that can't share a row: a plain padded batch with its attention mask
    rows = _examples(512, lengths=(20, 18, 17))
    assert set(PackCollator(PAD)(rows)) == {"input_ids", "labels", "attention_mask"}
    packed = PackCollator(PAD)(_examples(512))
    assert packed["input_ids"].shape[1] == 32  # the longest (30) rounded up to 8, as padding would


def _leaky_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """An attention kernel that ignores any mask and position layout: plain causal attention over the row."""
    key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
    value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


@pytest.fixture
def leaky_model(tiny_model_dir):
    from transformers import AttentionInterface

    AttentionInterface.register("tailorlm_test_leaky", _leaky_attention)
    model = load_base_model(tiny_model_dir, method="full", precision="fp32", device="cpu")
    model.set_attn_implementation("tailorlm_test_leaky")
    return model


def test_the_probe_passes_sdpa_and_catches_an_attention_that_ignores_packing(model, leaky_model):
    assert keeps_examples_apart(model)
    assert not keeps_examples_apart(leaky_model)


def _varied_chats(n: int):
    """Chats whose answers differ a lot in length, so that short ones share rows with long ones."""
    from tailorlm.formats.examples import Example

    short, long = "Yes, it ships today.", " ".join(["Please restart the hub and hold the pairing button."] * 6)
    return [
        Example.chat(user=f"Question {i}?", assistant=long if i % 3 == 0 else short, source=f"doc-{i}")
        for i in range(n)
    ]


def test_a_packed_run_trains_like_a_padded_one_and_counts_the_same_tokens(
    tiny_model_dir, workspace, tmp_path, monkeypatch
):
    """Packing keeps the examples of each step, so the loss curve is the padded run's (to float rounding);
    tokens seen count real tokens, not the pad (here the end-of-turn token) nor the rows' padding."""
    register_dataset(workspace, _varied_chats(24))
    packed_batches = []
    original = PackCollator.__call__

    def counting(self, rows):  # the real collator, counting how many batches it packed
        batch = original(self, rows)
        packed_batches.append(REAL_TOKENS in batch)
        return batch

    monkeypatch.setattr(PackCollator, "__call__", counting)
    from tailorlm.train import train

    runs = {}
    for packing in (False, True):
        project = project_for(
            tiny_model_dir, tmp_path, packing=packing, group_by_length=False, max_steps=8, logging_steps=1
        )
        runs[packing] = train(workspace, project, force=True)
    assert runs[True].plan.packing and not runs[False].plan.packing
    assert sum(packed_batches) >= 4  # most batches of the packed run shared rows
    padded, packed = losses(runs[False]), losses(runs[True])
    assert len(padded) == len(packed) == 8
    assert packed == pytest.approx(padded, rel=2e-3)
    seen = [r.metrics_rows()[-1]["tokens_seen"] for r in (runs[False], runs[True])]
    assert seen[0] == seen[1] > 0


def test_packing_true_refuses_a_model_that_leaks_and_auto_falls_back(leaky_model, tiny_model_dir):
    from tailorlm.config import TrainSettings
    from tailorlm.modeling import load_tokenizer
    from tailorlm.progress import SILENT
    from tailorlm.train.plan import make_plan
    from tailorlm.train.sft import batch_collator

    tokenizer = load_tokenizer(tiny_model_dir)
    settings = TrainSettings(packing=True)
    with pytest.raises(UserError, match=r"train\.packing: .*lets packed examples see each other"):
        batch_collator(leaky_model, tokenizer, settings, make_plan(settings, 8, device="cpu"), SILENT)
    auto = TrainSettings()
    plan = make_plan(auto, 8, device="cpu")
    assert plan.packing
    assert isinstance(batch_collator(leaky_model, tokenizer, auto, plan, SILENT), PadCollator)
    assert not plan.packing and any(note.startswith("packing off:") for note in plan.notes)
    assert make_plan(TrainSettings(packing=True), 8, device="cpu", recipe="classify").packing is False
