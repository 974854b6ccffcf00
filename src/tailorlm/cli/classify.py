"""`tailorlm classify MODEL FILE`: a CSV or JSONL file labelled by a classification run, written beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailorlm.cli import app
from tailorlm.cli.common import JsonOption, WorkspaceOption, _progress, _workspace, command
from tailorlm.output import console, print_json, print_table


@app.command("classify")
@command
def classify(
    model: Annotated[str, typer.Argument(help="A registered model (name or name@vN) or a run id of task classify.")],
    file: Annotated[Path, typer.Argument(help="A .csv or .jsonl file; results go to FILE.classified.csv/.jsonl.")],
    workspace: WorkspaceOption = None,
    column: Annotated[
        str | None, typer.Option(help="The column holding the text (default: text, input, body, message or content).")
    ] = None,
    min_confidence: Annotated[
        float | None, typer.Option(help="Abstain below this confidence instead of the model's own threshold.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 32,
    as_json: JsonOption = False,
) -> None:
    """Label every row of a file; rows the model is unsure of are marked abstained (route them to a person).

    \b
    Example:
      tailorlm classify acme-tickets tickets.csv --column body --workspace ws
    """
    from tailorlm.batch_classify import classify_file

    result = classify_file(
        _workspace(workspace),
        model,
        file,
        column=column,
        min_confidence=min_confidence,
        batch_size=batch_size,
        progress=_progress(to_stderr=as_json),
    )
    if as_json:
        print_json(result.to_json())
        return
    print_table(["label", "rows"], [[label, str(n)] for label, n in result.labels.items()])
    note = f", {result.empty} without text" if result.empty else ""
    console.print(f"{result.rows} rows → {result.output} ({result.abstained} need a person{note})")
