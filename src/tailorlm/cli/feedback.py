"""`tailorlm feedback import|list|export`: reviewers' ratings and corrections in and out of the registry."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tailorlm.cli import app
from tailorlm.cli.common import JsonOption, WorkspaceOption, _workspace, command
from tailorlm.output import console, print_json, print_table

feedback_app = typer.Typer(
    help="Reviewers' feedback on answers: import files, list, export for training or other tools.",
    no_args_is_help=True,
)
app.add_typer(feedback_app, name="feedback")

Format = Enum("Format", {name: name for name in ("records", "openai", "trl", "kto")}, type=str)  # type: ignore[misc]


@feedback_app.command("import")
@command
def import_feedback(
    file: Annotated[Path, typer.Argument(help="A JSONL file: OpenAI preference, TRL preference or KTO, or records.")],
    reviewer: Annotated[str | None, typer.Option(help="Who reviewed (recorded on every item without one).")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a feedback file; a file with any bad line is refused whole, each bad line named file:line.

    \b
    Example:
      tailorlm feedback import reviews.jsonl --reviewer support-team
    """
    from tailorlm.feedback import read_feedback, record_many

    ws = _workspace(workspace)
    records = read_feedback(file, reviewer=reviewer)
    stored = record_many(ws, records, origin=str(file))
    result = {"file": str(file), "records": len(records), "added": len(stored.added), "already": len(stored.already)}
    if as_json:
        print_json(result)
        return
    console.print(
        f"imported {len(stored.added)} feedback record(s) from {file}"
        + (f" ({len(stored.already)} already there)" if stored.already else "")
    )


@feedback_app.command("list")
@command
def list_command(
    model: Annotated[str | None, typer.Option(help="Only feedback on answers of this model.")] = None,
    source: Annotated[str | None, typer.Option(help="Only from: api, file, evaluation, playground.")] = None,
    since: Annotated[str | None, typer.Option(help="Only given at or after this ISO date or time.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List stored feedback, oldest first.

    \b
    Example:
      tailorlm feedback list --model acme-support@v2 --since 2026-12-01
    """
    from tailorlm.feedback import list_feedback

    found = list_feedback(_workspace(workspace), model=model, source=source, since=since, limit=limit)
    if as_json:
        print_json([item.model_dump(mode="json") for item in found])
        return
    rows = [
        [
            item.id,
            item.time,
            item.source,
            item.reviewer or "",
            item.model or "",
            "" if item.rating is None else str(item.rating),
            "yes" if item.corrected else "",
            _short(item.messages[-1].content),
        ]
        for item in found
    ]
    print_table(["id", "time", "source", "reviewer", "model", "rating", "corrected", "prompt"], rows)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@feedback_app.command("export")
@command
def export_command(
    out: Annotated[Path, typer.Argument(help="The JSONL file to write.")],
    format: Annotated[Format, typer.Option("--format", help="records, openai, trl (pairs) or kto.")] = Format.records,  # type: ignore[attr-defined]
    model: Annotated[str | None, typer.Option(help="Only feedback on answers of this model.")] = None,
    since: Annotated[str | None, typer.Option(help="Only given at or after this ISO date or time.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write stored feedback as JSONL: records, or preference pairs (openai, trl) or KTO rows.

    \b
    Example:
      tailorlm feedback export prefs.jsonl --format trl
    """
    from tailorlm.feedback import list_feedback, write_feedback

    found = list_feedback(_workspace(workspace), model=model, since=since)
    lines = write_feedback(out, found, format.value)
    if as_json:
        print_json({"file": str(out), "format": format.value, "records": len(found), "lines": lines})
        return
    console.print(f"wrote {lines} line(s) ({format.value}) from {len(found)} feedback record(s) to {out}")


@feedback_app.command("rate")
@command
def rate_command(
    evaluation: Annotated[str, typer.Argument(help="The evaluation id (eval-…).")],
    case: Annotated[str, typer.Argument(help="The case id, as the report and results.jsonl show it.")],
    rating: Annotated[str | None, typer.Option(help="up or down, or 1 (bad) to 5 (good).")] = None,
    corrected: Annotated[str | None, typer.Option(help="The answer that should have been given.")] = None,
    candidate: Annotated[str | None, typer.Option(help="Whose answer (default: the fine-tuned run's).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why, in a few words.")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Who reviews.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rate or correct one answer of an evaluation report (stored as feedback from `evaluation`).

    \b
    Example:
      tailorlm feedback rate eval-20261204-101500-a1b2c3 5f3e9c0d1a2b3c4d --rating down --corrected "We ..."
    """
    from tailorlm.feedback import from_evaluation

    value: str | int | None = int(rating) if rating is not None and rating.isdigit() else rating
    item = from_evaluation(
        _workspace(workspace),
        evaluation,
        case,
        candidate=candidate,
        rating=value,  # type: ignore[arg-type]
        corrected=corrected,
        reason=reason,
        reviewer=reviewer,
    )
    if as_json:
        print_json(item.model_dump(mode="json"))
        return
    console.print(f"stored {item.id} on {item.model}'s answer to case {case}")
