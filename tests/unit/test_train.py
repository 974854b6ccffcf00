"""Training core: every method learns, QLoRA gradients survive an eval pass, resume is exact, bad input is refused."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from helpers.data import make_chat_examples, register_dataset
from helpers.train import losses, project_for
from tailorlm.config import ConfigError, parse_project
from tailorlm.modeling import add_adapters, load_base_model
from tailorlm.registry import RunMeta
from tailorlm.train import TrainError, train
from tailorlm.train.data import EmptyDatasetError
from tailorlm.train.plan import auto_epochs


@pytest.mark.parametrize("method", ["lora", "dora", "qlora", "full"])
def test_each_method_trains_and_loss_falls(method, tiny_model_dir, workspace, tmp_path):
    register_dataset(workspace, make_chat_examples(40))
    overrides = {
        "full": {"learning_rate": 3e-3, "max_steps": 30},
        # NF4-quantised random weights are noisy: a wider adapter and a higher rate to see it learn
        "qlora": {"learning_rate": 2e-2, "lora": {"r": 32, "alpha": 64, "dropout": 0.0}},
    }.get(method, {})
    result = train(workspace, project_for(tiny_model_dir, tmp_path, method=method, **overrides))
    trained = losses(result)
    # a 4-bit NF4 copy of random 64-wide weights learns slowly; the others fall by at least 8%
    assert trained[-1] < trained[0] * (0.97 if method == "qlora" else 0.92), trained
    assert result.run.status == "complete"
    artifact = result.run_dir / ("model" if method == "full" else "adapter")
    expected = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (artifact / expected).is_file() and (artifact / "tokenizer.json").is_file()
    summary = json.loads((result.run_dir / "run.json").read_text())
    assert summary["status"] == "complete" and summary["method"] == method and summary["recipe"] == "sft"
    rows = result.metrics_rows()
    assert any("val_loss" in row for row in rows)
    assert any("tokens_per_s" in row and row["tokens_per_s"] > 0 for row in rows)
    assert all({"lr", "grad_norm"} <= row.keys() for row in rows if "loss" in row)


def test_unchanged_run_is_skipped(tiny_model_dir, workspace, tmp_path):
    register_dataset(workspace, make_chat_examples(24))
    project = project_for(tiny_model_dir, tmp_path, max_steps=4)
    first = train(workspace, project)
    second = train(workspace, project)
    assert second.skipped and second.run.id == first.run.id


def _batch(tokenizer, model_dir):
    from tailorlm.formats.templates import tokenize_example
    from tailorlm.train.data import PadCollator

    rows = [tokenize_example(tokenizer, e, 128) for e in make_chat_examples(4)]
    return PadCollator(tokenizer.pad_token_id)([{"input_ids": r.input_ids, "labels": r.labels} for r in rows])


def _lora_grads(model_dir: Path, *, eval_first: bool, fix: bool) -> dict[str, torch.Tensor]:
    from tailorlm.config import LoraSettings
    from tailorlm.modeling import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    batch = _batch(tokenizer, model_dir)
    torch.manual_seed(0)
    model = load_base_model(model_dir, method="qlora", precision="fp32", device="cpu")
    model = add_adapters(model, "qlora", LoraSettings(r=8, alpha=16, dropout=0.0), gradient_checkpointing=False)
    for name, parameter in model.named_parameters():  # B starts at zero; make the update non-trivial
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    if not fix:
        import bitsandbytes as bnb

        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                module.support_avx512bf16_for_cpu = True
    if eval_first:
        model.eval()
        with torch.no_grad():
            model(**batch)
    model.train()
    model(**batch).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def test_qlora_gradient_after_eval_pass_equals_gradient_without_it(tiny_model_dir):
    """Known trap: bitsandbytes on CPU repacks 4-bit weights after a no-grad forward; without our fix the
    later backward pass runs through a kernel with no autograd and LoRA gradients are silently wrong."""
    clean = _lora_grads(tiny_model_dir, eval_first=False, fix=True)
    after_eval = _lora_grads(tiny_model_dir, eval_first=True, fix=True)
    assert clean.keys() == after_eval.keys() and clean
    for name in clean:
        torch.testing.assert_close(after_eval[name], clean[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_trap_is_real_without_the_fix(tiny_model_dir):
    from bitsandbytes.cextension import lib  # noqa: F401  (the CPU backend must be present)

    try:
        from bitsandbytes.utils import has_avx512bf16
    except ImportError:  # moved between releases
        from bitsandbytes.nn.modules import has_avx512bf16
    if not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never repacks here")
    clean = _lora_grads(tiny_model_dir, eval_first=False, fix=True)
    broken = _lora_grads(tiny_model_dir, eval_first=True, fix=False)
    assert any(not torch.allclose(broken.get(n, torch.zeros(1)), g, atol=1e-6) for n, g in clean.items())


class StopAt(TrainerCallback):
    """Interrupts training like Ctrl-C once a given step is done (after its checkpoint is saved)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt


def test_resume_matches_an_uninterrupted_run(tiny_model_dir, workspace, tmp_path):
    from safetensors.torch import load_file

    register_dataset(workspace, make_chat_examples(40))
    project = project_for(
        tiny_model_dir,
        tmp_path,
        max_steps=12,
        save_steps=6,
        eval_steps=6,
        logging_steps=4,  # the checkpoint at step 6 falls between two logs
        lora={"r": 8, "alpha": 16, "dropout": 0.1},
    )
    whole = train(workspace, project)
    with pytest.raises(KeyboardInterrupt):
        train(workspace, project, force=True, callbacks=[StopAt(6)])
    interrupted = next(r for r in workspace.registry.find("run") if r.status == "interrupted")
    time.sleep(1.1)  # a resume that rewrote `created` would show it
    resumed = train(workspace, project, resume=interrupted.id)
    assert resumed.run.id == interrupted.id and resumed.run.status == "complete"
    assert resumed.run.created_at == interrupted.created_at
    # The whole run's mean loss, as the uninterrupted run reports it (not the mean after the resume).
    assert resumed.metrics["train_loss"] == pytest.approx(whole.metrics["train_loss"], rel=1e-4)
    mean = lambda result: [r["train_loss_mean"] for r in result.metrics_rows() if "train_loss_mean" in r]  # noqa: E731
    assert mean(resumed)[-1] == pytest.approx(whole.metrics["train_loss"], rel=1e-4)
    a = load_file(whole.run_dir / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed.run_dir / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    final = lambda result: [r["loss"] for r in result.metrics_rows() if "loss" in r][-1]  # noqa: E731
    assert final(resumed) == pytest.approx(final(whole), rel=1e-4)
    with pytest.raises(TrainError, match="already complete"):
        train(workspace, project, resume=resumed.run.id)


def test_missing_model_dir_is_named(workspace, tmp_path):
    register_dataset(workspace, make_chat_examples(12))
    with pytest.raises(TrainError, match="base_model: base model directory not found"):
        train(workspace, project_for(tmp_path / "nowhere", tmp_path))


def test_model_dir_without_tokenizer_is_named(tiny_model_dir, workspace, tmp_path):
    register_dataset(workspace, make_chat_examples(12))
    broken = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model_dir, broken)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / name).unlink()
    with pytest.raises(TrainError, match=r"base_model: .* missing a tokenizer"):
        train(workspace, project_for(broken, tmp_path))


def test_every_answer_cut_by_max_length_is_refused(tiny_model_dir, workspace, tmp_path):
    register_dataset(workspace, make_chat_examples(12))
    with pytest.raises(EmptyDatasetError, match="max_length 12"):
        train(workspace, project_for(tiny_model_dir, tmp_path, max_length=12))
    assert not any(r.status == "complete" for r in workspace.registry.find("run"))


def test_long_sequences_are_truncated_and_counted(tiny_model_dir, workspace, tmp_path):
    from tailorlm.formats.examples import Example

    long_answer = Example.chat(user="Tell me everything.", assistant="Acme thermostats save energy. " * 60)
    register_dataset(workspace, [*make_chat_examples(16), long_answer])
    result = train(workspace, project_for(tiny_model_dir, tmp_path, max_length=128, max_steps=2))
    assert result.data["train"]["truncated"] == 1
    assert result.run.meta_as(RunMeta).data["train"]["truncated"] == 1


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"method": "sft"}, "train.method"),
        ({"lora": {"r": 0}}, "train.lora.r"),
        ({"batch_size": -1}, "train.batch_size"),
    ],
)
def test_bad_settings_name_the_field(settings, field, tmp_path):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_project({"project": "p", "base_model": "m", "train": settings}, root=tmp_path)


def test_auto_epochs():
    assert auto_epochs(10) == 10 and auto_epochs(200) == 3 and auto_epochs(100_000) == 1


def test_a_recipe_listed_before_sft_takes_the_runs_it_handles(tmp_path, monkeypatch):
    from tailorlm.config import TrainSettings
    from tailorlm.train import recipes

    (tmp_path / "ranking_recipe.py").write_text(
        "def handles(settings, task):\n    return task == 'classify'\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(recipes, "RECIPES", ["ranking_recipe", *recipes.RECIPES])
    assert recipes.recipe_for(TrainSettings(), "classify")[0] == "ranking_recipe"
    assert recipes.recipe_for(TrainSettings(), "chat")[0] == "sft"
