"""What is in the workspace: `runs`, `models`, `lineage` and the `data` verbs (`audit` is in governance.py).
Tables keep ids and paths whole (see tailorlm.output) and each listing takes `--json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tailorlm.cli import app, data_app, models_app
from tailorlm.cli.common import JsonOption, ProjectOption, WorkspaceOption, _as_dict, _project, _workspace, command
from tailorlm.lifecycle import shown_status
from tailorlm.output import console, print_json, print_table
from tailorlm.registry import DatasetMeta, DocumentMeta, ModelMeta, RunMeta

# --- lists and lineage -------------------------------------------------------------------------------


@app.command()
@command
def runs(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List training runs; a run whose process is gone (killed) shows as `interrupted`, resumable with `train --resume`.

    \b
    Example:
      tailorlm runs --workspace ws --json
    """
    ws = _workspace(workspace)
    found = ws.registry.find("run")
    for run in found:  # a run whose process is gone (killed) is shown as interrupted: resumable
        run.status = shown_status(run)
    if as_json:
        print_json([_as_dict(run) for run in found])
        return
    rows = []
    for run in found:
        meta = run.meta_as(RunMeta)
        metrics = meta.metrics
        rows.append(
            [
                run.id,
                run.status,
                meta.method,
                meta.dataset,
                _fmt(metrics.get("train_loss")),
                _fmt(metrics.get("eval_loss")),
                run.created_at,
            ]
        )
    print_table(["run", "status", "method", "dataset", "train loss", "val loss", "created"], rows)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ""


@models_app.callback()
@command
def models(ctx: typer.Context, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List registered models (or: tailorlm models deploy NAME).

    \b
    Example:
      tailorlm models --workspace ws --json
    """
    if ctx.invoked_subcommand:
        return
    ws = _workspace(workspace)
    found = ws.registry.find("model")
    if as_json:
        print_json([_as_dict(model) for model in found])
        return
    rows = [
        [
            f"{model.name}@{model.version}",
            meta.run,
            meta.method,
            meta.base_model,
            meta.evaluation or "",
            model.created_at,
        ]
        for model, meta in ((m, m.meta_as(ModelMeta)) for m in found)
    ]
    print_table(["model", "run", "method", "base model", "evaluation", "created"], rows)


@app.command()
@command
def lineage(
    artifact: Annotated[
        str,
        typer.Argument(
            help="`model` or `source` followed by NAME / PATH; or an artifact id (model-…, run-…, dataset-…, eval-…) "
            "or a model/dataset name@version."
        ),
    ],
    reference: Annotated[
        str | None, typer.Argument(help="After `model`: NAME[@VERSION] or id; after `source`: a source file.")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trace a model back to its source files (with hashes and rows/pages), or a source file forward.

    \b
    Example:
      tailorlm lineage model acme-support@v1 --workspace ws
      tailorlm lineage source examples/acme/faq.csv --workspace ws --json
      tailorlm lineage acme-support@v1 --workspace ws
    """
    from tailorlm.lineage import model_lineage, source_lineage

    ws = _workspace(workspace)
    if artifact in ("model", "source") and reference is not None:
        found = model_lineage(ws, reference) if artifact == "model" else source_lineage(ws, reference)
        if as_json:
            print_json(found.to_json())
            return
        shown = [a for a in found.chain if a["kind"] != "document"]
        print_table(["kind", "id", "name", "hash"], [[a["kind"], a["id"], a["name"], a["hash"][:16]] for a in shown])
        console.print()
        rows = [
            [
                use.path,
                use.recipe or "",
                (use.sha256 or "?")[:16],
                ", ".join(f"{split} {count}" for split, count in use.examples.items())
                or "none (retrieval chunks only)",
                _span(use.locators),
            ]
            for use in found.sources
        ]
        print_table(["source file", "kind", "sha256", "examples", "rows/pages/messages"], rows)
        if found.deployments:
            console.print()
            print_table(
                ["deployment", "time", "user", "where"],
                [[d["action"], d["time"], d["user"], d["where"]] for d in found.deployments],
            )
        return
    if reference is not None:
        raise typer.BadParameter(f"a second argument goes with `model` or `source`, not {artifact!r}")
    start = ws.lookup(artifact)
    chain = [start, *ws.registry.lineage(start.id)]
    if as_json:
        print_json([_as_dict(item) for item in chain])
        return
    rows = [
        [
            item.kind,
            item.id,
            item.meta.source_path or item.name if isinstance(item.meta, DocumentMeta) else item.name,
            item.hash[:16],
        ]
        for item in chain
    ]
    print_table(["kind", "id", "name", "hash"], rows)


def _span(locators: list[str], shown: int = 3) -> str:
    """`row 2, row 3, … (104 in all)`: the first rows/pages, and how many."""
    if len(locators) <= shown:
        return ", ".join(locators)
    return ", ".join(locators[:shown]) + f", … ({len(locators)} in all)"


# --- data --------------------------------------------------------------------------------------------

TRAINED_MARKS = ("{+", "+}")  # around trained tokens when colours can't show (a pipe, a log)


@data_app.command("inspect")
@command
def data_inspect(
    dataset: Annotated[str, typer.Argument(help="Dataset name, name@version, id, or a JSONL file.")],
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "train",
    n: Annotated[int, typer.Option("-n", help="How many examples.")] = 3,
    base_model: Annotated[
        Path | None, typer.Option(help="Tokenizer to render with (default: the project's base model).")
    ] = None,
    max_length: Annotated[int | None, typer.Option(help="Truncation length (default: train.max_length).")] = None,
) -> None:
    """Render examples exactly as training sees them: trained tokens highlighted, masked tokens dim.

    Not on a terminal (a pipe, a log), trained tokens are marked {+like this+} instead.

    \b
    Example:
      tailorlm data inspect acme-support@v1 --workspace ws -n 1
    """
    from tailorlm.dataset_splits import load_examples
    from tailorlm.formats.templates import inspect_segments
    from tailorlm.modeling import check_model_dir, load_tokenizer

    ws = _workspace(workspace)
    if base_model is None or max_length is None:
        proj = _project(ws, project)
        base_model = base_model or proj.resolve(proj.base_model)
        max_length = max_length or proj.train.max_length
    tokenizer = load_tokenizer(check_model_dir(base_model))
    limit = max_length
    examples = load_examples(ws, dataset, split)
    colours = console.is_terminal
    if colours:
        console.print("[dim]legend:[/] [dim]masked (no loss)[/] [bold green on grey15]trained (loss)[/]")
    else:
        console.print(f"legend: masked (no loss) as is, {TRAINED_MARKS[0]}trained (loss){TRAINED_MARKS[1]}")
    for example in examples[:n]:
        if colours:
            console.rule(f"{example.id}  source {example.source or '-'}")
        else:
            console.print(f"--- {example.id}  source {example.source or '-'}", markup=False, highlight=False)
        for text, trained in inspect_segments(tokenizer, example, limit):
            if not colours:
                text = f"{TRAINED_MARKS[0]}{text}{TRAINED_MARKS[1]}" if trained else text
            style = ("bold green on grey15" if trained else "dim") if colours else None
            console.print(text, style=style, end="", markup=False, highlight=False, soft_wrap=True)
        console.print()


@data_app.command("show")
@command
def data_show(
    dataset: Annotated[str, typer.Argument(help="Dataset name, name@version or id.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a dataset's card.

    \b
    Example:
      tailorlm data show acme-support@v1 --workspace ws --json
    """
    from rich.markdown import Markdown

    ws = _workspace(workspace)
    artifact = ws.resolve("dataset", dataset)
    folder = ws.path_of(artifact)
    if as_json:
        card = folder / "card.json"
        print_json(
            {"dataset": _as_dict(artifact), "card": json.loads(card.read_text("utf-8")) if card.is_file() else None}
        )
    elif (folder / "card.md").is_file():
        card = (folder / "card.md").read_text(encoding="utf-8")
        if console.is_terminal:
            console.print(Markdown(card), soft_wrap=False)
        else:  # rich's Markdown tables cut long cells; the Markdown source is readable as it is
            console.print(card, markup=False, highlight=False, end="")
    else:
        print_json(artifact.meta)


@data_app.command("import")
@command
def data_import(
    file: Annotated[
        Path, typer.Argument(help="JSONL in messages, alpaca, sharegpt, prompt/completion or text format.")
    ],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the project's dataset).")] = None,
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip invalid lines (counted and recorded) instead of refusing.")
    ] = False,
) -> None:
    """Import an existing JSONL dataset as a new dataset version (split into train/val/test).

    \b
    Example:
      tailorlm data import tickets.jsonl --name tickets --workspace ws --skip-invalid
    """
    from tailorlm.dataset_import import import_dataset

    ws = _workspace(workspace)
    if not file.is_file():
        raise FileNotFoundError(f"dataset file not found: {file}")
    artifact = import_dataset(ws, file, project=_project(ws, project), name=name, skip_invalid=skip_invalid)
    meta = artifact.meta_as(DatasetMeta)
    console.print(f"Imported [bold]{artifact.name}@{artifact.version}[/]: {meta.counts}")
    if skipped := meta.skipped.get("dataset: invalid line"):
        console.print(f"[yellow]skipped {skipped} invalid line(s) (recorded in the dataset card)[/]")
