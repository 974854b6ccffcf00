"""Launching: the Slurm script is valid bash (and shellcheck-clean where shellcheck is installed), takes its
rendezvous from Slurm's variables, logs into the run folder, requeues and resumes; its torchrun line trains
with 2 CPU processes here; bad options are refused with a clear message."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.data import make_chat_examples, register_dataset
from helpers.processes import run_group
from tailorlm.train import launch
from tailorlm.workspace import Workspace

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **(env or {})},
        timeout=600,
    )


@pytest.fixture
def train_ws(tmp_path: Path, tiny_model_dir: Path) -> Path:
    ws = Workspace(tmp_path / "ws")
    register_dataset(ws, make_chat_examples(40))
    train = {"method": "lora", "batch_size": 4, "max_steps": 4, "logging_steps": 1, "lora": {"r": 4, "alpha": 8}}
    ws.project_file.write_text(yaml.safe_dump({"project": "tiny", "base_model": str(tiny_model_dir), "train": train}))
    ws.close()
    return ws.root


def _script(ws_root: Path, *extra: str) -> tuple[str, Path]:
    result = _cli("train", "--workspace", str(ws_root), "--slurm", "--gpus-per-node", "2", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    script = Path(re.search(r"Wrote (\S+)", result.stdout)[1])
    return script.read_text(), script


def test_the_slurm_script_is_valid_and_says_what_slurm_needs(train_ws):
    text, script = _script(train_ws, "--nodes", "2", "--partition", "gpu", "--time", "12:00:00", "--max-steps", "4")
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "--severity=warning", str(script)], check=True)
    run_dir = script.parent
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=12:00:00",
        "#SBATCH --requeue",
        f"#SBATCH --output={run_dir}/slurm-%j.log",
    ):
        assert line in text
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in text and "scontrol requeue" in text
    assert '--nnodes="$SLURM_NNODES"' in text and '--rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT"' in text
    assert 'srun --kill-on-bad-exit=1 "${TORCHRUN[@]}"' in text
    assert '--resume "${TAILORLM_RUN_ID}"' in text and "TRAIN_ARGS=(--max-steps 4)" in text


@pytest.mark.integration  # trains with 2 processes: about 40 s
def test_the_scripts_torchrun_line_trains_its_run_with_two_cpu_processes(train_ws):
    text, script = _script(train_ws)
    run_id = script.parent.name
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torchrun = next(line for line in text.splitlines() if line.startswith("TORCHRUN=("))
    train_args = next(
        line for line in text.splitlines() if line.strip().startswith("TRAIN_ARGS=(") and "--resume" not in line
    )
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "OMP_NUM_THREADS": "1",
        "SLURM_NNODES": "1",
        "SLURM_JOB_ID": "4242",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TAILORLM_RUN_ID": run_id,
        "TAILORLM_WORLD_SIZE": "2",
    }
    script_line = f'set -euo pipefail\n{torchrun}\n{train_args.strip()}\n"${{TORCHRUN[@]}}" "${{TRAIN_ARGS[@]}}"'
    done = run_group(["bash", "-c", script_line], env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ws = Workspace(train_ws)
    runs = ws.registry.find("run")
    assert [(run.id, run.status) for run in runs] == [(run_id, "complete")]  # the script's run, once
    assert (script.parent / "adapter" / "adapter_model.safetensors").is_file()


def test_bad_launch_options_are_refused_clearly(train_ws):
    typo = _cli("train", "--workspace", str(train_ws), "--slurm", "--partiton", "gpu")
    assert typo.returncode == 2 and "No such option: --partiton" in typo.stderr
    for options, message in (
        (["--slurm", "--time", "12h"], "--time '12h' is not a Slurm time"),
        (["--slurm", "--partition", "gpu;rm"], "--partition 'gpu;rm'"),
        (["--gpus", "1", "--processes", "2"], "not both"),
        (["--submit"], "go with --slurm"),
    ):
        result = _cli("train", "--workspace", str(train_ws), *options)
        assert result.returncode == 1 and message in result.stdout + result.stderr, (options, result.stderr)
        assert "Traceback" not in result.stderr
    if launch.visible_gpus() == 0:
        result = _cli("train", "--workspace", str(train_ws), "--gpus", "2")
        assert result.returncode == 1 and "--gpus 2: this machine has 0 GPU(s)" in result.stdout + result.stderr
