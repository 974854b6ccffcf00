"""`tailorlm train` killed again and again (SIGKILL and SIGTERM, mid-checkpoint, mid-registry-write,
between steps, at seeded random times), each time continued with `--resume` (or started afresh when
the kill came before the first checkpoint), ends with the adapter and the losses of an uninterrupted
run, a sound registry and no half checkpoint left."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers.chaos import STOPPED, Chaos, Kill, assert_sound, listed, random_kills
from helpers.data import make_chat_examples, register_dataset
from tailorlm.lifecycle import shown_status
from tailorlm.train.checkpoints import last_checkpoint
from tailorlm.workspace import Workspace

pytestmark = pytest.mark.chaos
KILLS = 20

TRAIN = {
    "method": "lora",
    "max_steps": 12,
    "save_steps": 2,
    "eval_steps": 6,
    "logging_steps": 2,
    "batch_size": 4,
    "learning_rate": 1e-2,
    "warmup_ratio": 0.0,
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
    "precision": "fp32",  # the uninterrupted reference and the killed runs must not differ in precision
}


def make_workspace(root: Path, model_dir: Path) -> Path:
    workspace = Workspace(root)
    (root / "tailorlm.yaml").write_text(
        yaml.safe_dump({"project": "tiny", "base_model": str(model_dir), "train": TRAIN}), encoding="utf-8"
    )
    register_dataset(workspace, make_chat_examples(64))  # 56 to train on: the 12 steps stay in one epoch
    workspace.close()
    return root


def next_step(root: Path) -> list[str]:
    """`train --resume RUN` for an unfinished run with a complete checkpoint, else a fresh `train`."""
    workspace = Workspace(root)
    try:
        for run in workspace.registry.find("run"):
            if run.status != "complete" and last_checkpoint(workspace.path_of(run)) is not None:
                return ["train", "--workspace", str(root), "--resume", run.id]
        return ["train", "--workspace", str(root)]
    finally:
        workspace.close()


def shown_statuses(root: Path) -> set[str]:
    """The statuses `tailorlm runs` shows (a run whose process is gone is `interrupted`)."""
    workspace = Workspace(root)
    try:
        return {shown_status(run) for run in workspace.registry.find("run")}
    finally:
        workspace.close()


def complete_run(root: Path) -> tuple[dict[str, torch.Tensor], dict[str, float], Path]:
    workspace = Workspace(root)
    try:
        [run] = workspace.registry.find("run", status="complete")
        folder = workspace.path_of(run)
        return load_file(folder / "adapter" / "adapter_model.safetensors"), run.meta.metrics, folder
    finally:
        workspace.close()


def assert_same_run(root: Path, reference: Path) -> None:
    adapter, metrics, folder = complete_run(root)
    expected, expected_metrics, _ = complete_run(reference)
    assert adapter.keys() == expected.keys()
    for name in adapter:
        torch.testing.assert_close(adapter[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)
    for key in ("train_loss", "eval_loss"):
        assert metrics[key] == pytest.approx(expected_metrics[key], rel=1e-4), key
    assert not list((folder / "checkpoints").glob(".*")), "a half checkpoint was left"
    assert_sound(root)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory) -> tuple[Path, float]:
    """An uninterrupted run's workspace, and how long it took."""
    root = make_workspace(tmp_path_factory.mktemp("reference") / "ws", tiny_model_dir)
    chaos = Chaos(tmp_path_factory.mktemp("reference-logs"))
    attempt = chaos.run(["train", "--workspace", str(root)])
    assert attempt.exit_code == 0, attempt.log
    return root, attempt.seconds


def test_sigterm_checkpoints_now_marks_interrupted_and_resume_finishes(reference, tiny_model_dir, tmp_path):
    reference, _ = reference
    root = make_workspace(tmp_path / "ws", tiny_model_dir)
    chaos = Chaos(tmp_path / "logs")
    stopped = chaos.run(["train", "--workspace", str(root)], Kill(signal.SIGTERM, point="train.step", count=3))
    assert stopped.exit_code == 128 + signal.SIGTERM, stopped.log
    assert "interrupted (SIGTERM). Resume with: tailorlm train --resume run-" in " ".join(stopped.log.split())
    workspace = Workspace(root)
    [run] = workspace.registry.find("run")
    assert run.status == "interrupted" and run.meta.owner is None
    assert last_checkpoint(workspace.path_of(run)).name == "checkpoint-3"  # saved at the step it stopped on
    event = workspace.audit.events()[-1]
    assert event["action"] == "train.interrupted" and event["details"]["signal"] == "SIGTERM"
    workspace.close()

    resumed = chaos.run(next_step(root))
    assert resumed.exit_code == 0, resumed.log
    assert_same_run(root, reference)


def test_killed_at_random_points_train_resumes_to_the_same_run(reference, tiny_model_dir, tmp_path):
    reference, reference_seconds = reference
    root = make_workspace(tmp_path / "ws", tiny_model_dir)
    chaos = Chaos(tmp_path / "logs")
    points = [("train.checkpoint", 2), ("registry.write", 2), ("train.step", 4)]
    for kill in random_kills(10, points=points, longest=reference_seconds):
        if chaos.kills >= KILLS:
            break
        attempt = chaos.run(next_step(root), kill)
        if attempt.exit_code == 0:  # it finished before the kill: the run is complete, start over
            assert_same_run(root, reference)
            root = make_workspace(tmp_path / f"ws-{len(chaos.attempts)}", tiny_model_dir)
            continue
        assert attempt.exit_code in STOPPED, f"{kill}: {attempt.log}"
        assert "Traceback" not in attempt.log, f"{kill}: {attempt.log}"
        assert shown_statuses(root) <= {"interrupted"}, kill  # none looks alive, none failed
    rows = listed(chaos.run(["runs", "--workspace", str(root), "--json"]))
    assert {row["status"] for row in rows} <= {"interrupted"}, rows  # what `tailorlm runs` shows
    final = chaos.run(next_step(root))
    assert final.exit_code == 0, final.log
    assert_same_run(root, reference)
    kills = sum(a.killed for a in chaos.attempts)
    print(f"train: {kills} kill points survived")
    assert kills >= KILLS
