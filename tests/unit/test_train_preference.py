"""Preference training on the tiny model: DPO, KTO and ORPO each raise the chosen-vs-rejected margin
(measured here, independently of TRL's own metrics, which the run records too); DPO starts from a registered
SFT model's adapter with it as the reference, and the lineage runs feedback file → dataset → run (and the
start model) → model; a resumed run equals an uninterrupted one; a dataset without pairs is refused."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from helpers.feedback import feedback_project, preference_margin, style_feedback, write_records
from tailorlm.dataset_splits import load_split
from tailorlm.prepare import prepare
from tailorlm.train import train


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp("fb") / "pairs.jsonl", style_feedback(24, "pairs"))


def prepared(workspace, tiny_model_dir, tmp_path, path, **train_settings):
    project = feedback_project(tiny_model_dir, tmp_path, path, **train_settings)
    dataset = prepare(workspace, project).dataset
    return project, dataset


@pytest.mark.parametrize("method", ["dpo", "kto", "orpo"])
def test_preference_training_raises_the_margin(
    method, workspace, tiny_model_dir, tmp_path, pairs_file, one_torch_thread
):
    project, dataset = prepared(workspace, tiny_model_dir, tmp_path, pairs_file, method=method, max_steps=12)
    pairs = load_split(workspace, dataset, "train")
    before = preference_margin(None, tiny_model_dir, pairs)
    result = train(workspace, project)
    after = preference_margin(result.run_dir / "adapter", tiny_model_dir, pairs)
    assert result.run.status == "complete" and result.run.meta.recipe == "preference"
    assert after > before + 1.0, (before, after)
    rows = result.metrics_rows()
    assert any("rewards_margins" in row or "rewards_chosen" in row for row in rows), rows[:2]
    assert [p.id for p in workspace.registry.parents(result.run.id)] == [dataset.id]


def test_dpo_from_a_registered_sft_model_keeps_it_as_start_and_reference(
    workspace, tiny_model_dir, tmp_path, pairs_file, one_torch_thread
):
    from tailorlm.register import register

    sft_project, dataset = prepared(workspace, tiny_model_dir, tmp_path, pairs_file, method="lora", max_steps=6)
    sft = train(workspace, sft_project)
    model = register(workspace, sft.run.id, name="fb")
    project = feedback_project(
        tiny_model_dir, tmp_path, pairs_file, method="dpo", max_steps=8, preference={"start_from": "fb"}
    )
    pairs = load_split(workspace, dataset, "train")
    before = preference_margin(sft.run_dir / "adapter", tiny_model_dir, pairs)
    result = train(workspace, project)
    after = preference_margin(result.run_dir / "adapter", tiny_model_dir, pairs)
    assert after > before, (before, after)
    assert {p.id for p in workspace.registry.parents(result.run.id)} == {dataset.id, model.id}
    saved = load_file(result.run_dir / "adapter" / "adapter_model.safetensors")
    assert saved and not any(".ref." in name for name in saved)  # TRL's frozen copy is not the result


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_a_resumed_dpo_run_equals_an_uninterrupted_one(
    workspace, tiny_model_dir, tmp_path, pairs_file, one_torch_thread
):
    project, _ = prepared(
        workspace, tiny_model_dir, tmp_path, pairs_file, method="dpo", max_steps=6, save_steps=3, seed=7
    )
    whole = train(workspace, project)
    with pytest.raises(KeyboardInterrupt):
        train(workspace, project, force=True, callbacks=[StopAt(4)])
    interrupted = workspace.registry.find("run", status="interrupted")[0]
    resumed = train(workspace, project, resume=interrupted.id)
    a = load_file(whole.run_dir / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed.run_dir / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max() < 1e-5, name


def test_a_dataset_without_pairs_is_refused_naming_what_it_needs(workspace, tiny_model_dir, tmp_path, one_torch_thread):
    from tailorlm.train.preference import PreferenceError

    path = write_records(tmp_path / "singles.jsonl", style_feedback(20, "singles"))
    project, _ = prepared(workspace, tiny_model_dir, tmp_path, path, method="dpo")
    with pytest.raises(PreferenceError, match="no pairs"):
        train(workspace, project)


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_trl_dataset_preparation_prints_nothing_of_its_own(
    method, workspace, tiny_model_dir, tmp_path, pairs_file, one_torch_thread, capfd
):
    """TRL maps the datasets ("Adding EOS to train dataset", "Tokenizing train dataset", KTO's KL dataset)
    with `datasets`' own progress bars; our progress is the only one a user sees."""
    import datasets

    project, _ = prepared(workspace, tiny_model_dir, tmp_path, pairs_file, method=method, max_steps=1)
    capfd.readouterr()
    train(workspace, project)
    out, err = capfd.readouterr()
    said = out + err
    for leaked in ("Adding EOS", "Tokenizing", "Extracting prompt", "Map", "examples/s"):
        assert leaked not in said, said[-2000:]
    assert datasets.is_progress_bar_enabled()  # silenced for the run only
