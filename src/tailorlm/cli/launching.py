"""How `tailorlm train` launches on several processes: `--gpus N` / `--processes N` [`--nodes M`] re-run
`train` under torchrun, `--slurm` writes (and with `--submit` submits) an sbatch script (see
tailorlm.train.launch)."""

from __future__ import annotations

import os
import sys

import typer

from tailorlm.cli.common import _workspace
from tailorlm.output import console

_LAUNCH_OPTIONS = {"--gpus", "--processes", "--nodes", "--partition", "--gpus-per-node", "--time", "--account"}
_LAUNCH_FLAGS = {"--slurm", "--submit", "--no-slurm", "--no-submit"}


def _train_args() -> list[str]:
    """This command's own arguments, less the launch options (each rank runs `train` with the rest)."""
    args, skip = [], False
    for arg in sys.argv[sys.argv.index("train") + 1 :]:
        name = arg.split("=", 1)[0]
        if skip:
            skip = False
        elif name in _LAUNCH_OPTIONS:
            skip = "=" not in arg
        elif name not in _LAUNCH_FLAGS:
            args.append(arg)
    return args


def launch_train(workspace, gpus, processes, nodes, slurm, submit, partition, gpus_per_node, time, account) -> None:
    """`tailorlm train --gpus/--processes/--nodes` through torchrun, or `--slurm`: an sbatch script."""
    from tailorlm.train import launch
    from tailorlm.workspace import atomic_write_text, new_id

    ws = _workspace(workspace)
    args = _without_option(_train_args(), ("--workspace", "-w"))
    if not slurm:
        per_node = launch.check_processes(gpus=gpus, processes=processes, nodes=nodes)
        endpoint = (
            f"{os.environ['MASTER_ADDR']}:{os.environ.get('MASTER_PORT', '29500')}"
            if nodes > 1 and os.environ.get("MASTER_ADDR")
            else None
        )
        code = launch.launch_local(
            ["--workspace", str(ws.root), *args], per_node=per_node, nodes=nodes, endpoint=endpoint
        )
        raise typer.Exit(code)
    options = launch.SlurmOptions(
        nodes=nodes, gpus_per_node=gpus or gpus_per_node, partition=partition, time=time, account=account
    )
    options.check()
    run_id = new_id("run")
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True)
    script = run_dir / "train.sbatch"
    atomic_write_text(script, launch.slurm_script(ws.root, run_id, run_dir, args, options))
    console.print(f"Wrote {script} (run {run_id}, {nodes} node(s) × {options.gpus_per_node} GPU(s))")
    if submit:
        console.print(f"Submitted Slurm job {launch.submit(script)}; logs in {run_dir}")


def _without_option(args: list[str], names: tuple[str, ...]) -> list[str]:
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(f"{name}=") for name in names):
            kept.append(arg)
    return kept
