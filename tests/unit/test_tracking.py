"""train.report_to: TensorBoard and MLflow, offline, beside metrics.jsonl (which stays the record); W&B is
refused clearly where it is not installed."""

from __future__ import annotations

import importlib.util

import pytest

from helpers.data import make_chat_examples, register_dataset
from helpers.train import project_for
from tailorlm.train import train


@pytest.mark.skipif(
    not (importlib.util.find_spec("tensorboard") and importlib.util.find_spec("mlflow")),
    reason="tensorboard and mlflow are optional extras (pip install 'tailorlm[tracking]')",
)
def test_tensorboard_and_mlflow_get_the_run_offline(tiny_model_dir, workspace, tmp_path, one_torch_thread):
    register_dataset(workspace, make_chat_examples(24))
    project = project_for(tiny_model_dir, tmp_path, max_steps=4, logging_steps=1, report_to=["tensorboard", "mlflow"])
    result = train(workspace, project)
    assert result.run.status == "complete"
    assert len(result.metrics_rows()) >= 4  # metrics.jsonl stays the source of truth
    assert list((result.run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    from mlflow.tracking import MlflowClient  # the workspace's SQLite store: this run by name, its loss logged

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace.tracking_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tailorlm")
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_name for run in runs] == [result.run.id] and "loss" in runs[0].data.metrics


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_without_the_package_is_a_clear_error(tiny_model_dir, workspace, tmp_path, one_torch_thread):
    from tailorlm.errors import UserError

    register_dataset(workspace, make_chat_examples(24))
    project = project_for(tiny_model_dir, tmp_path, max_steps=2, report_to=["wandb"])
    with pytest.raises(UserError, match="wandb is not installed"):
        train(workspace, project)
