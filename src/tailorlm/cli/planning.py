"""`tailorlm plan` (memory and time → the setup that fits the GPUs) and `tailorlm assess` (the consultant's
decision from the project and its data)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated

import typer

from tailorlm.cli import app
from tailorlm.cli.common import (
    JsonOption,
    ProjectOption,
    WorkspaceOption,
    _choices,
    _project,
    _value,
    _workspace,
    command,
)
from tailorlm.config import Method
from tailorlm.errors import UserError
from tailorlm.output import console, print_json, print_table


@app.command()
@command
def plan(
    model: Annotated[Path, typer.Option(help="Base model directory (a config.json alone is enough).")],
    method: Annotated[
        _choices("method", typing.get_args(Method)) | None,  # type: ignore[valid-type]
        typer.Option(help="Method to plan (default: the cheapest that fits, LoRA then QLoRA)."),
    ] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs to plan for (default: those detected).")] = None,
    gpu_memory: Annotated[float | None, typer.Option(help="Memory of each GPU in GB (default: detected).")] = None,
    cpu: Annotated[bool, typer.Option(help="Plan a CPU run: --gpu-memory is then the RAM to use.")] = False,
    seq_len: Annotated[int, typer.Option(help="Tokens per example.")] = 1024,
    micro_batch: Annotated[
        int | None, typer.Option(help="Examples per GPU per step (default: the largest that fits).")
    ] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    global_batch: Annotated[int, typer.Option(help="Examples per optimizer step, reached by accumulation.")] = 16,
    tokens: Annotated[int | None, typer.Option(help="Training tokens per epoch, for the time estimate.")] = None,
    tokens_per_s: Annotated[float | None, typer.Option(help="Measured or stated training throughput.")] = None,
    tflops: Annotated[float | None, typer.Option(help="Achieved TFLOP/s per GPU (default 100, assumed).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Estimate per-GPU memory and time, and pick the cheapest setup that fits (exit 1 when none does).

    \b
    Example:
      tailorlm plan --model /models/Llama-3.1-8B --gpus 1 --gpu-memory 16
    """
    from tailorlm.train.memory import ModelShape
    from tailorlm.train.plan import plan_hardware

    shape = ModelShape.from_config(model)
    device = "cpu" if cpu else "cuda"
    gpus, gpu_memory = _hardware(gpus, gpu_memory, cpu)
    result = plan_hardware(
        shape,
        gpus=gpus,
        gpu_memory_gib=gpu_memory,
        method=_value(method),
        rank=rank,
        seq_len=seq_len,
        micro_batch=micro_batch,
        global_batch=global_batch,
        device=device,
        tokens=tokens,
        tokens_per_s=tokens_per_s,
        tflops=tflops,
    )
    if as_json:
        print_json(result.to_json())
    else:
        _print_plan(result)
    if not result.fits:
        raise typer.Exit(1)


def _hardware(gpus: int | None, gpu_memory: float | None, cpu: bool) -> tuple[int, float]:
    if cpu:
        if gpu_memory is None:
            raise UserError("--cpu needs --gpu-memory: the RAM (GB) the run may use")
        return 1, gpu_memory
    if gpus is not None and gpus < 1:
        raise UserError(f"--gpus must be ≥ 1 (got {gpus})")
    if gpu_memory is not None and gpu_memory <= 0:
        raise UserError(f"--gpu-memory must be > 0 (got {gpu_memory:g})")
    if gpus is None or gpu_memory is None:
        import torch

        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not found:
            raise UserError(
                "no GPU detected here", hint="give the GPUs you will train on: --gpus N --gpu-memory GB (or --cpu)"
            )
        gpus = gpus or found
        gpu_memory = gpu_memory or torch.cuda.get_device_properties(0).total_memory / 1024**3
    return gpus, gpu_memory


def _print_plan(result) -> None:
    console.print(("[green]fits[/]: " if result.fits else "[red]cannot fit[/]: ") + result.summary(), highlight=False)
    if result.chosen is not None:
        breakdown = result.chosen.breakdown_gib()
        print_table(["per GPU", "GB"], [[term, f"{value:.2f}"] for term, value in breakdown.items()])
        console.print(f"strategy: {result.strategy}; throughput: {result.throughput}", highlight=False)
        if result.seconds_per_epoch is not None:
            console.print(f"time per epoch: {result.seconds_per_epoch / 3600:.2f} h", highlight=False)
    for note in [*result.notes, *(result.chosen.notes if result.chosen else [])]:
        console.print(f"  {note}", highlight=False)


@app.command()
@command
def assess(workspace: WorkspaceOption = None, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """The consultant's decision from the project and its data: task, volume, fine-tune or RAG, what to try
    first, the method for the hardware, cost, baselines. Saved as <workspace>/assessment.md and .json.

    \b
    Example:
      tailorlm assess --workspace ws
    """
    from tailorlm.assess import assess as run_assess

    ws = _workspace(workspace)
    result = run_assess(ws, _project(ws, project))
    if as_json:
        print_json(result.to_json())
    else:
        console.print(result.markdown(), markup=False, highlight=False)
        console.print(f"Saved {ws.root / 'assessment.md'}")
