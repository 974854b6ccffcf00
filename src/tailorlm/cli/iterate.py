"""`tailorlm iterate`: rounds of feedback → dataset → retrain → evaluate against the parent → register."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import typer

from tailorlm.cli import app
from tailorlm.cli.common import (
    JsonOption,
    ProjectOption,
    WorkspaceOption,
    _choices,
    _progress,
    _project,
    _workspace,
    command,
)
from tailorlm.output import console, print_json

IterateMethod = Literal["dpo", "kto", "orpo", "sft"]


@app.command()
@command
def iterate(
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="Override iterate.rounds.")] = None,
    method: Annotated[
        _choices("iterate_method", get_args(IterateMethod)) | None,  # type: ignore[valid-type]
        typer.Option(help="Override iterate.method."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain the project's model on reviewers' feedback until the objectives are met (see docs/iterate.md).

    Each round builds a dataset from the stored feedback, retrains (DPO by default, from the current model),
    evaluates the new run against its parent on the same cases with paired confidence intervals, and
    registers it when the gate passes and the gain is significant. Stops when the objectives are met, when
    a round brings no significant gain, or after the rounds.

    \b
    Example:
      tailorlm iterate --rounds 2 --workspace ws
    """
    from tailorlm.ingest import ingest
    from tailorlm.iterate import iterate as run_iterate
    from tailorlm.iterate import report_markdown

    ws = _workspace(workspace)
    result = run_iterate(
        ws,
        _project(ws, project),
        rounds=rounds,
        method=method.value if method is not None else None,
        ingest=ingest,
        progress=_progress(to_stderr=as_json),
    )
    if as_json:
        print_json(result.to_json())
        return
    console.print(report_markdown(result), markup=False, highlight=False)
    console.print(f"report: {result.path / 'report.md'}")
