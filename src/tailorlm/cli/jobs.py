"""The job queue's verbs: `tailorlm jobs submit|list|show|cancel|logs` and `tailorlm worker` (see tailorlm.jobs)."""

from __future__ import annotations

from typing import Annotated

import typer

from tailorlm.cli import app
from tailorlm.cli.common import JsonOption, WorkspaceOption, _workspace, command
from tailorlm.output import console, err, print_json, print_table

jobs_app = typer.Typer(
    help="A durable queue of train, prepare, eval and export jobs, run by `tailorlm worker`.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@command
def submit(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Argument(help="The verb: train, prepare, eval or export (target first: export -- gguf MODEL)."),
    ],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a verb with its options (after `--`); a worker runs it, its output goes to the job's log.

    \b
    Example:
      tailorlm jobs submit train --workspace ws -- --method lora --max-steps 200
    """
    from tailorlm import jobs

    job = jobs.submit(_workspace(workspace), kind, ctx.args)
    if as_json:
        print_json(job.to_json())
    else:
        console.print(f"Queued [bold]{job.id}[/]: tailorlm {job.kind} {' '.join(job.args)}".rstrip())


@jobs_app.command("list")
@command
def list_(
    workspace: WorkspaceOption = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first.

    \b
    Example:
      tailorlm jobs list --workspace ws --status running
    """
    from tailorlm import jobs

    found = jobs.list_jobs(_workspace(workspace), status)
    if as_json:
        print_json([job.to_json() for job in found])
        return
    rows = [
        [job.id, job.kind, job.status, " ".join(job.args), job.attempts, ", ".join(job.outputs), job.created_at]
        for job in found
    ]
    print_table(["job", "kind", "status", "arguments", "attempts", "outputs", "created"], rows)


@jobs_app.command()
@command
def show(
    job: Annotated[str, typer.Argument(help="Job id.")], workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Show one job: status, attempts, worker, what it made.

    \b
    Example:
      tailorlm jobs show job-20261204-221500-1a2b3c --workspace ws
    """
    from tailorlm import jobs

    ws = _workspace(workspace)
    found = jobs.get(ws, job)
    if as_json:
        print_json(found.to_json())
        return
    for key, value in found.to_json().items():
        if value not in (None, [], False):
            console.print(f"{key}: {value}", markup=False, highlight=False)
    console.print(f"log: {jobs.log_path(ws, found)}", markup=False, highlight=False)


@jobs_app.command()
@command
def cancel(job: Annotated[str, typer.Argument(help="Job id.")], workspace: WorkspaceOption = None) -> None:
    """Cancel a job: a queued one at once, a running one is stopped (its whole process tree).

    \b
    Example:
      tailorlm jobs cancel job-20261204-221500-1a2b3c --workspace ws
    """
    from tailorlm import jobs

    found = jobs.cancel(_workspace(workspace), job)
    state = "cancelled" if found.status == "cancelled" else "stopping (its worker records the cancel)"
    console.print(f"{found.id}: {state}")


@jobs_app.command()
@command
def logs(job: Annotated[str, typer.Argument(help="Job id.")], workspace: WorkspaceOption = None) -> None:
    """Print what a job printed so far (every attempt).

    \b
    Example:
      tailorlm jobs logs job-20261204-221500-1a2b3c --workspace ws
    """
    from tailorlm import jobs

    typer.echo(jobs.logs(_workspace(workspace), job), nl=False)


@app.command()
@command
def worker(
    workspace: WorkspaceOption = None,
    gpus: Annotated[
        str | None, typer.Option(help="The GPU set its jobs see (CUDA_VISIBLE_DEVICES, e.g. 0,1); one worker per set.")
    ] = None,
    until_empty: Annotated[bool, typer.Option(help="Exit when the queue is empty instead of waiting.")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between looks at an empty queue.")] = 2.0,
) -> None:
    """Run queued jobs one at a time; resumes jobs whose worker died. Stop it with Ctrl-C or SIGTERM
    (the running job is checkpointed and left for the next worker).

    \b
    Example:
      tailorlm worker --workspace ws --gpus 0,1
    """
    from tailorlm import jobs

    ws = _workspace(workspace)
    ran = jobs.work(ws, gpus=gpus, until_empty=until_empty, poll_s=poll, say=lambda line: err.print(line, markup=False))
    err.print(f"worker stopped after {ran} job(s)")
