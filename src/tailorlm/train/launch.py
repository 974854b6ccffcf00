"""Launching `tailorlm train` on several processes: torchrun on this machine (`--gpus N`, `--processes N`
on CPU, `--nodes M`), or an sbatch script for Slurm (`--slurm`) that runs `srun torchrun` with the
rendezvous taken from Slurm's variables, logs into the run folder, and requeues on preemption or before
its time limit, resuming from the run's last checkpoint.

Every rank runs the same `tailorlm train`; `distributed.py` makes rank 0 the only writer and refuses a
launch that reached fewer processes than asked (`TAILORLM_WORLD_SIZE`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tailorlm.errors import UserError
from tailorlm.train.distributed import EXPECTED_WORLD_ENV, RUN_ID_ENV

SLURM_TIME = re.compile(r"^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$")
SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,\-]+$")


class LaunchError(UserError, ValueError):
    """A launch that can't work as asked (more GPUs than exist, a bad Slurm option)."""


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_processes(*, gpus: int | None, processes: int | None, nodes: int = 1) -> int:
    """Processes per node for this launch; refuses more GPUs than this machine has."""
    if gpus is not None and processes is not None:
        raise LaunchError("give --gpus (one process per GPU) or --processes (CPU processes), not both")
    if nodes < 1:
        raise LaunchError(f"--nodes must be ≥ 1 (got {nodes})")
    if gpus is not None:
        found = visible_gpus()
        if gpus < 1 or gpus > found:
            raise LaunchError(
                f"--gpus {gpus}: this machine has {found} GPU(s) visible to torch",
                hint="lower --gpus, check CUDA_VISIBLE_DEVICES, or use --processes N to train on CPU processes",
            )
        return gpus
    if processes is None or processes < 1:
        raise LaunchError(f"--processes must be ≥ 1 (got {processes})")
    return processes


def torchrun_args(
    per_node: int, *, nodes: int | str = 1, endpoint: str | None = None, job_id: str = "tailorlm"
) -> list[str]:
    """The torchrun options: standalone on one node, c10d rendezvous at `endpoint` across nodes."""
    args = ["-m", "torch.distributed.run", f"--nproc_per_node={per_node}"]
    if nodes == 1 and endpoint is None:
        return [*args, "--standalone"]
    return [*args, f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", f"--rdzv_id={job_id}"]


def launch_local(train_args: list[str], *, per_node: int, nodes: int = 1, endpoint: str | None = None) -> int:
    """Run `tailorlm train TRAIN_ARGS` on `per_node` × `nodes` processes through torchrun; its exit code."""
    if nodes > 1 and not endpoint:
        raise LaunchError(
            f"--nodes {nodes} needs a rendezvous: set MASTER_ADDR (and MASTER_PORT) to the first node, and run the "
            "same command on every node (or use --slurm)"
        )
    command = [sys.executable, *torchrun_args(per_node, nodes=nodes, endpoint=endpoint), "-m", "tailorlm.cli"]
    env = {**os.environ, EXPECTED_WORLD_ENV: str(per_node * nodes)}
    return subprocess.run([*command, "train", *train_args], env=env).returncode


# --- Slurm ---------------------------------------------------------------------------------------------


@dataclass
class SlurmOptions:
    nodes: int = 1
    gpus_per_node: int = 1
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    cpus_per_task: int | None = None
    port: int = 29500

    def check(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise LaunchError(f"--nodes and --gpus-per-node must be ≥ 1 (got {self.nodes}, {self.gpus_per_node})")
        if self.time is not None and not SLURM_TIME.match(self.time):
            raise LaunchError(
                f"--time {self.time!r} is not a Slurm time",
                hint="use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 12:00:00, 2-00)",
            )
        for name in ("partition", "account"):
            value = getattr(self, name)
            if value is not None and not SLURM_NAME.match(value):
                raise LaunchError(f"--{name} {value!r}: letters, digits, '_', '-', '.' and ',' only")
        if not 1024 <= self.port <= 65535:
            raise LaunchError(f"--port must be between 1024 and 65535 (got {self.port})")


def slurm_script(workspace_root: Path, run_id: str, run_dir: Path, train_args: list[str], options: SlurmOptions) -> str:
    """An sbatch script training `run_id` on `options.nodes` × `options.gpus_per_node` GPUs.

    Requeued on preemption (`--requeue`) and 5 minutes before its time limit (USR1 → SIGTERM to the ranks,
    which checkpoint, then `scontrol requeue`); each start resumes the run when it has a checkpoint."""
    options.check()
    header = [
        "#!/bin/bash",
        f"#SBATCH --job-name=tailorlm-{run_id}",
        f"#SBATCH --nodes={options.nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={options.gpus_per_node}",
        f"#SBATCH --output={run_dir}/slurm-%j.log",
        "#SBATCH --open-mode=append",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@300",
    ]
    header += [f"#SBATCH --partition={options.partition}"] if options.partition else []
    header += [f"#SBATCH --time={options.time}"] if options.time else []
    header += [f"#SBATCH --account={options.account}"] if options.account else []
    header += [f"#SBATCH --cpus-per-task={options.cpus_per_task}"] if options.cpus_per_task else []
    torchrun = [
        shlex.quote(sys.executable),
        *torchrun_args(
            options.gpus_per_node,
            nodes='"$SLURM_NNODES"',
            endpoint='"$MASTER_ADDR:$MASTER_PORT"',
            job_id='"$SLURM_JOB_ID"',
        ),
        "-m",
        "tailorlm.cli",
        "train",
        "--workspace",
        shlex.quote(str(workspace_root)),
    ]
    body = f"""
# Written by `tailorlm train --slurm`; submit with: sbatch {shlex.quote(str(run_dir / "train.sbatch"))}
set -euo pipefail
export {RUN_ID_ENV}={shlex.quote(run_id)}
export {EXPECTED_WORLD_ENV}=$((SLURM_NNODES * {options.gpus_per_node}))
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT={options.port}
export MASTER_ADDR MASTER_PORT
RUN_DIR={shlex.quote(str(run_dir))}

# a start after a preemption or a requeue continues the run from its last checkpoint
if compgen -G "$RUN_DIR/checkpoints/checkpoint-*" > /dev/null; then
  TRAIN_ARGS=(--resume "${{{RUN_ID_ENV}}}")
else
  TRAIN_ARGS=({" ".join(shlex.quote(arg) for arg in train_args)})
fi

requeue() {{
  echo "time limit near: checkpointing and requeueing job $SLURM_JOB_ID"
  kill -TERM "$TRAIN_PID" 2> /dev/null || true
  wait "$TRAIN_PID" || true
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
}}
trap requeue USR1

TORCHRUN=({" ".join(torchrun)})
srun --kill-on-bad-exit=1 "${{TORCHRUN[@]}}" "${{TRAIN_ARGS[@]}}" &
TRAIN_PID=$!
wait "$TRAIN_PID"
"""
    return "\n".join(header) + "\n" + body


def submit(script: Path) -> str:
    """`sbatch SCRIPT`; the job id."""
    try:
        done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LaunchError(
            "sbatch not found: this machine is not a Slurm login node", hint=f"copy and submit {script}"
        ) from None
    if done.returncode != 0:
        raise LaunchError(f"sbatch refused {script}: {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]
