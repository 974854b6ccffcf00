"""Distributed training on CPU with real processes: `torchrun --nproc_per_node 2` (gloo, DDP) makes one run,
one set of artifacts and one audit event per step, with the loss curve of one process at the same global
batch; a checkpoint written by 2 processes resumes on 1; FSDP2 (`train.strategy: fsdp`) runs under gloo too,
with the same loss curve and adapter and its config in the run folder (its checkpoints resume under FSDP
on GPUs only: on CPU processes accelerate's FSDP2 checkpoint load hangs under gloo, so that is refused);
a launch that reached fewer processes than it asked for is refused.

FSDP2 on CPU: gloo runs `fully_shard` (all-gather / reduce-scatter) fine, but accelerate turns FSDP on only for
GPU-like devices, so the Trainer's `fsdp=` on CPU processes silently trains DDP; train/strategy.py hands the
Trainer's FSDP2 plugin to accelerate there and refuses a Trainer that built anything else than planned."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.data import make_chat_examples
from helpers.processes import run_group
from tailorlm.train import distributed
from tailorlm.workspace import Workspace

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _workspace(root: Path, model: Path, batch_size: int, **train) -> Path:
    ws = Workspace(root)
    settings = {
        "method": "lora",
        "batch_size": batch_size,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "warmup_ratio": 0.0,
        "group_by_length": False,  # its mega-batches depend on the per-device batch
        "max_steps": 6,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        **train,
    }
    ws.project_file.write_text(yaml.safe_dump({"project": "tiny", "base_model": str(model), "train": settings}))
    ws.close()
    return root


def _train(root: Path, processes: int, *args: str) -> subprocess.CompletedProcess[str]:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes else []
    command = [sys.executable, *launcher, "-m", "tailorlm.cli", "train", "--workspace", str(root), *args]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return run_group(command, env=env, timeout=600)


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


@pytest.mark.integration  # two torchrun launches: about a minute
def test_two_processes_make_one_run_with_the_loss_curve_of_one_process(tmp_path, tiny_model_dir):
    one = _workspace(tmp_path / "one", tiny_model_dir, batch_size=8)
    two = _workspace(tmp_path / "two", tiny_model_dir, batch_size=4, save_steps=3)
    data = tmp_path / "data.jsonl"  # `--data`: rank 0 imports it, the ranks train on its id
    data.write_text("".join(json.dumps({"messages": e.to_json()["messages"]}) + "\n" for e in make_chat_examples(40)))
    assert _train(one, 1, "--data", str(data)).returncode == 0
    result = _train(two, 2, "--data", str(data))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Run run-") == 1  # rank 1 prints nothing of its own

    ws = Workspace(two)
    assert len(ws.registry.find("dataset")) == 1  # imported once, not once per rank
    runs = ws.registry.find("run")
    assert len(runs) == 1 and runs[0].status == "complete"
    assert [path.name for path in (two / "runs").iterdir()] == [runs[0].id]  # one set of artifacts
    assert (ws.path_of(runs[0]) / "adapter" / "adapter_model.safetensors").is_file()
    actions = [event["action"] for event in ws.audit.events()]
    assert actions == ["prepare", "train.start", "train.complete"]  # the import once, the run once
    assert ws.audit.verify()[0]

    assert runs[0].meta.plan["strategy"] == "ddp" and "fits on one device" in runs[0].meta.plan["strategy_reason"]
    assert "strategy ddp (auto: fits on one device" in result.stdout  # printed before the first step
    single = Workspace(one).registry.find("run")[0]
    expected, got = _losses(Workspace(one).path_of(single)), _losses(ws.path_of(runs[0]))
    assert sorted(got) == list(range(1, 7))
    assert got == pytest.approx(expected, rel=1e-4)  # the same global batch learns the same

    # a checkpoint written by 2 processes resumes on 1: the run as a crash after step 3 would leave it
    run_dir = ws.path_of(runs[0])
    shutil.rmtree(run_dir / "checkpoints" / "checkpoint-6")
    shutil.rmtree(run_dir / "adapter")
    (run_dir / "metrics.jsonl").write_text(
        "".join(
            line + "\n"
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["step"] <= 3
        )
    )
    ws.registry.update(runs[0].id, status="interrupted")
    resumed = _train(two, 0, "--resume", runs[0].id)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ws.registry.get(runs[0].id).status == "complete"
    assert sorted(_losses(run_dir)) == list(range(1, 7))
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_a_launch_that_reached_fewer_processes_is_refused(monkeypatch):
    monkeypatch.setenv(distributed.EXPECTED_WORLD_ENV, "2")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(distributed.DistributedError, match="asked for 2 training processes but 1 started"):
        distributed.check_world()
    monkeypatch.setenv(distributed.EXPECTED_WORLD_ENV, "1")
    distributed.check_world()


@pytest.mark.integration  # two torchrun launches of the tiny model and a refused one: about a minute
def test_fsdp2_under_gloo_learns_what_one_process_learns(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    one = _workspace(tmp_path / "one", tiny_model_dir, batch_size=8)
    two = _workspace(tmp_path / "fsdp", tiny_model_dir, batch_size=4, save_steps=3, strategy="fsdp")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": e.to_json()["messages"]}) + "\n" for e in make_chat_examples(40)))
    assert _train(one, 1, "--data", str(data)).returncode == 0
    result = _train(two, 2, "--data", str(data))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "strategy fsdp (train.strategy fsdp over 2 processes)" in result.stdout

    ws = Workspace(two)
    (run,) = ws.registry.find("run")
    run_dir = ws.path_of(run)
    assert run.status == "complete" and run.meta.plan["strategy"] == "fsdp"
    assert json.loads((run_dir / "fsdp.json").read_text())["version"] == 2  # the generated config, kept
    single = Workspace(one).registry.find("run")[0]
    expected = _losses(Workspace(one).path_of(single))
    assert _losses(run_dir) == pytest.approx(expected, rel=1e-4)
    mine = load_file(run_dir / "adapter" / "adapter_model.safetensors")  # gathered whole from the shards
    theirs = load_file(Workspace(one).path_of(single) / "adapter" / "adapter_model.safetensors")
    assert sorted(mine) == sorted(theirs)
    assert all(mine[name].shape == theirs[name].shape for name in mine)
    assert max(float((mine[name] - theirs[name]).abs().max()) for name in mine) < 1e-4

    # as a crash after step 3 would leave it: FSDP checkpoints resume on GPUs only; here both counts refuse
    shutil.rmtree(run_dir / "checkpoints" / "checkpoint-6")
    ws.registry.update(run.id, status="interrupted")
    alone = _train(two, 0, "--resume", run.id)
    assert alone.returncode == 1 and f"run {run.id} was checkpointed by FSDP" in alone.stdout + alone.stderr
    assert "Traceback" not in alone.stderr
    again = _train(two, 2, "--resume", run.id)
    assert again.returncode != 0 and "resuming FSDP on CPU processes is not supported" in again.stdout + again.stderr


def test_accelerate_launch_cpu_with_two_processes_is_refused_not_run_alone(tmp_path, tiny_model_dir):
    """`accelerate launch --cpu --num_processes 2` starts one process (its simple launcher), with the
    rendezvous of a multi-process launch set: refused before training, nothing registered."""
    root = _workspace(tmp_path / "ws", tiny_model_dir, batch_size=4)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": e.to_json()["messages"]}) + "\n" for e in make_chat_examples(8)))
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "tailorlm.cli", "train"]
    command += ["--workspace", str(root), "--data", str(data)]
    result = run_group(command, env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode != 0
    assert "accelerate launch was asked for several processes but started one" in result.stdout + result.stderr
    assert Workspace(root).registry.find("run") == []


@pytest.mark.integration  # one torchrun launch: under a minute
def test_a_classification_run_under_two_processes_is_saved_once(tmp_path, tiny_model_dir):
    """The classification recipe writes its weights and `classifier.json` on rank 0 only, like sft and dpo:
    one run, one set of artifacts, calibrated, registered once."""
    from helpers.classify import ticket_examples
    from helpers.data import register_dataset
    from tailorlm.classifier import read_info

    root = tmp_path / "ws"
    ws = Workspace(root)
    register_dataset(ws, ticket_examples(64), name="tickets", val=16, test=0)
    train = {"method": "lora", "batch_size": 4, "max_steps": 6, "learning_rate": 3e-3, "warmup_ratio": 0.0}
    project = {"project": "tickets", "base_model": str(tiny_model_dir), "task": "classify", "train": train}
    ws.project_file.write_text(yaml.safe_dump(project))
    ws.close()
    result = _train(root, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Run run-") == 1

    ws = Workspace(root)
    [run] = ws.registry.find("run")
    assert run.status == "complete" and run.meta.recipe == "classify"
    assert [path.name for path in (root / "runs").iterdir()] == [run.id]
    adapter = ws.path_of(run) / "adapter"
    info = read_info(adapter)
    assert info.labels == ["billing", "shipping", "technical"] and info.calibration["val_examples"] == 16
    assert (adapter / "adapter_model.safetensors").is_file()
    assert [e["action"] for e in ws.audit.events()].count("train.complete") == 1
