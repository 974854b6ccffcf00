"""The `tailorlm` command: one thin function per verb — parse, call the library, print.

Every command takes `--workspace` (default ./tailorlm-workspace or $TAILORLM_WORKSPACE) and, where it
reads the project, `--project` (default: the workspace's tailorlm.yaml, else ./tailorlm.yaml). Errors
the user can fix are printed in one line (the file or field named) with exit code 1; no traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tailorlm import offline
from tailorlm.pipeline import table_of
from tailorlm.progress import for_console
from tailorlm.registry import BaseMeta, BaseOrigin, DatasetMeta, DocumentMeta, ModelMeta, RunMeta

app = typer.Typer(
    help="Fine-tune open LLMs on your company's own data, on your own machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(
    help="Look at datasets: inspect as training sees them, show cards, import JSONL.", no_args_is_help=True
)
export_app = typer.Typer(
    help="Export a model for other engines (merged weights, GGUF, Ollama, vLLM).", no_args_is_help=True
)
models_app = typer.Typer(help="Registered models.", invoke_without_command=True)
keys_app = typer.Typer(help="API keys for `tailorlm serve`.", no_args_is_help=True)
base_app = typer.Typer(
    help="Base models: import a GGUF file (Ollama, llama.cpp, a model package) once, list what is registered.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")
app.add_typer(export_app, name="export")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(base_app, name="base")

console = Console()
err = Console(stderr=True)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default ./tailorlm-workspace or $TAILORLM_WORKSPACE).",
        show_default=False,
    ),
]
ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="Project file (default: <workspace>/tailorlm.yaml, else ./tailorlm.yaml).",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def command(function: F) -> F:
    """Air-gap every verb and turn the library's user-facing errors into one red line and exit 1."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        offline.enforce()
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except (OSError, ValueError, LookupError, RuntimeError) as error:
            if not _is_user_error(error):
                raise
            err.print(f"[bold red]error:[/] {error}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _is_user_error(error: BaseException) -> bool:
    return type(error).__module__.startswith("tailorlm") or isinstance(error, FileNotFoundError | PermissionError)


def _workspace(path: Path | None):
    from tailorlm.workspace import Workspace

    return Workspace.open(path)


def _project(workspace, path: Path | None):
    from tailorlm.bases import with_base_dir
    from tailorlm.config import ConfigError, load_project

    candidates = [path] if path else [workspace.project_file, Path("tailorlm.yaml")]
    for candidate in candidates:
        if candidate and candidate.is_file():
            project = load_project(candidate)
            offline.allow(project.allow_hosts)
            return with_base_dir(workspace, project, progress=for_console(console))
    raise ConfigError(f"no project file: pass --project FILE, or create {workspace.project_file} (`tailorlm init`)")


# --- project ---------------------------------------------------------------------------------------


@app.command()
@command
def init(
    workspace: WorkspaceOption = None,
    name: Annotated[str, typer.Option(help="Project name.")] = "my-project",
    base_model: Annotated[str, typer.Option(help="Local directory of the base model.")] = "/models/base",
) -> None:
    """Create a workspace with a commented tailorlm.yaml to edit."""
    from tailorlm.project_template import project_template
    from tailorlm.workspace import atomic_write_text

    ws = _workspace(workspace)
    if ws.project_file.exists():
        err.print(f"[yellow]{ws.project_file} already exists; left unchanged[/]")
        raise typer.Exit(1)
    atomic_write_text(ws.project_file, project_template(name, base_model))
    ws.audit.append("init", outputs=[str(ws.project_file)])
    console.print(f"Created {ws.project_file}. Edit its sources and base_model, then `tailorlm run`.")


@app.command()
@command
def validate(
    file: Annotated[Path, typer.Argument(help="Project file to check.")] = Path("tailorlm.yaml"),
) -> None:
    """Check a project file; name every bad field."""
    from tailorlm.config import load_project

    project = load_project(file)
    problems = [
        f"sources[{i}].path: not found: {project.resolve(s.path)}"
        for i, s in enumerate(project.sources)
        if not project.resolve(s.path).exists()
    ]
    if not project.resolve(project.base_model).is_dir():
        problems.append(f"base_model: directory not found: {project.resolve(project.base_model)}")
    if problems:
        raise FileNotFoundError(f"{file}: " + "; ".join(problems))
    console.print(
        f"[green]{file} is valid[/]: project {project.project}, task {project.task}, "
        f"{len(project.sources)} source(s), method {project.train.method}"
    )


# --- stages ----------------------------------------------------------------------------------------


@app.command()
@command
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    workspace: WorkspaceOption = None,
    max_file_mb: Annotated[float, typer.Option(help="Refuse files larger than this.")] = 100.0,
) -> None:
    """Read company files into documents with provenance (unchanged files are skipped)."""
    from tailorlm.ingest import ingest as run_ingest

    ws = _workspace(workspace)
    report = run_ingest(ws, paths, max_file_mb=max_file_mb, progress=for_console(console))
    table = Table("file", "status", "documents", "note")
    for result in report.files:
        style = {"failed": "red", "partial": "yellow", "unchanged": "dim"}.get(result.status, "green")
        note = result.error or "; ".join(result.warnings[:2])
        table.add_row(result.path, f"[{style}]{result.status}[/]", str(result.documents), note)
    console.print(table)
    failed = [r for r in report.files if r.status == "failed"]
    console.print(f"{report.documents} documents from {len(report.files)} files; {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@app.command()
@command
def prepare(
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    force: Annotated[bool, typer.Option(help="Build a new version even if nothing changed.")] = False,
) -> None:
    """Clean, redact, deduplicate, structure and split the project's sources into a dataset version."""
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare as run_prepare

    ws = _workspace(workspace)
    result = run_prepare(ws, _project(ws, project), ingest=ingest, force=force, progress=for_console(console))
    verb = "unchanged, reusing" if result.skipped else "built"
    console.print(f"Dataset {verb} [bold]{result.dataset.name}@{result.dataset.version}[/] at {result.path}")
    console.print("  " + ", ".join(f"{k}: {v}" for k, v in result.counts.items()))


@app.command()
@command
def train(
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name, name@version or id (default: the project's).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Train on a JSONL file (messages/alpaca/sharegpt/prompt-completion/text) instead."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="With --data: skip invalid lines (counted) instead of refusing the file.")
    ] = False,
    resume: Annotated[str | None, typer.Option(help="Continue an interrupted run from its last checkpoint.")] = None,
    method: Annotated[str | None, typer.Option(help="Override train.method: full, lora, qlora or dora.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override train.max_steps.")] = None,
    force: Annotated[bool, typer.Option(help="Train even if an identical run exists.")] = False,
) -> None:
    """Fine-tune the base model on a dataset; writes runs/<run-id>/."""
    from tailorlm.train import train as run_train

    ws = _workspace(workspace)
    proj = None if resume else _override_train(_project(ws, project), method=method, max_steps=max_steps)
    if data is not None:
        from tailorlm.dataset_import import import_dataset

        imported = import_dataset(ws, data, project=proj, skip_invalid=skip_invalid)
        dataset = imported.id
        if skipped := imported.meta_as(DatasetMeta).skipped.get("dataset: invalid line"):
            console.print(f"[yellow]skipped {skipped} invalid line(s) of {data} (recorded in the dataset card)[/]")
    try:
        result = run_train(
            ws,
            proj,  # type: ignore[arg-type]
            dataset=dataset,
            resume=resume,
            force=force,
            progress=for_console(console),
        )
    except KeyboardInterrupt:
        interrupted = ws.registry.find("run", status="interrupted")
        hint = f" Resume with: tailorlm train --resume {interrupted[0].id}" if interrupted else ""
        err.print(f"[yellow]interrupted.{hint}[/]")
        raise typer.Exit(130) from None
    if result.skipped:
        console.print(f"Run {result.run.id} already trained these inputs with these settings (use --force).")
    _print_run(result)


def _override_train(project, **overrides: Any):
    changes = {key: value for key, value in overrides.items() if value is not None}
    if changes:
        from tailorlm.config import TrainSettings

        project.train = TrainSettings.model_validate({**project.train.model_dump(), **changes})
    return project


def _print_run(result) -> None:
    data = result.data.get("train", {})
    console.print(f"Run [bold]{result.run.id}[/] {result.run.status}: {result.run_dir}")
    console.print(
        f"  {data.get('examples', '?')} examples, {data.get('truncated', 0)} truncated, "
        f"{data.get('dropped_no_target', 0)} dropped (answer cut by max_length); "
        f"device {result.plan.device}, {result.plan.precision}, {result.plan.total_steps} steps"
    )
    for key in ("train_loss", "eval_loss"):
        if key in result.metrics:
            console.print(f"  {key}: {result.metrics[key]:.4f}")


@app.command("eval")
@command
def eval_(
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    run: Annotated[
        list[str] | None, typer.Option(help="Run(s) to evaluate (default: the latest complete run).")
    ] = None,
    cases: Annotated[
        Path | None, typer.Option(help="Hand-written cases (.yaml or .jsonl) added to the test split.")
    ] = None,
    baseline: Annotated[
        list[str] | None, typer.Option(help="Override evaluate.baselines (base, few_shot, rag).")
    ] = None,
    endpoint: Annotated[
        list[str] | None, typer.Option(help="Also evaluate an OpenAI-compatible endpoint URL on the premises.")
    ] = None,
    gate: Annotated[bool, typer.Option(help="Exit 1 when evaluate.objectives are not met.")] = False,
    compare: Annotated[
        tuple[str, str] | None, typer.Option(help="Compare two evaluations instead (EVAL1 EVAL2).")
    ] = None,
) -> None:
    """Evaluate fine-tuned runs against baselines on the held-out test split (+ your cases)."""
    from tailorlm import evaluate as ev

    ws = _workspace(workspace)
    if compare:
        console.print(table_of(*ev.compare(ws, compare[0], compare[1]).table()))
        return
    result = ev.evaluate(
        ws,
        _project(ws, project),
        runs=run,
        cases_file=cases,
        baselines=baseline,
        endpoints=endpoint,
        gate=gate,
        progress=for_console(console),
    )
    console.print(table_of(*ev.summary_table(result.summary)))
    console.print(f"Report: {result.path / 'report.html'}")
    if result.gate is not None:
        console.print("[green]gate passed[/]" if result.gate.passed else "[red]gate failed:[/]")
        for line in result.gate.explain() if result.gate.passed else result.gate.unmet:
            console.print(f"  {line}", markup=False, highlight=False)
        if gate and not result.gate.passed:
            raise typer.Exit(1)


@app.command()
@command
def register(
    run: Annotated[str | None, typer.Argument(help="Run id (default: the latest complete run).")] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the project name).")] = None,
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    force: Annotated[bool, typer.Option(help="Register despite a failed gate (recorded in the audit log).")] = False,
) -> None:
    """Register a run as a versioned model (refused if its latest evaluation failed the gate)."""
    from tailorlm.register import register as run_register

    ws = _workspace(workspace)
    proj = _project(ws, project) if (name is None or project) else None
    model = run_register(
        ws, run, name=name or proj.project, force=force, system_prompt=proj.system_prompt if proj else None
    )
    console.print(f"Registered [bold]{model.name}@{model.version}[/] ({ws.root / model.path})")


@app.command()
@command
def serve(
    model: Annotated[
        list[str], typer.Option("--model", "-m", help="Registered model(s) to serve: name, name@version, alias=name.")
    ],
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_auth: Annotated[bool, typer.Option(help="No API keys (refused unless the host is loopback).")] = False,
    log_texts: Annotated[bool, typer.Option(help="Keep request texts (PII redacted) in the request log.")] = False,
    log_retention_days: Annotated[int, typer.Option(help="Delete request-log rows older than this.")] = 30,
    max_tokens_cap: Annotated[int, typer.Option(help="Largest max_tokens a request may ask for.")] = 1024,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 above).")] = 1_000_000,
    rate_limit_per_minute: Annotated[int, typer.Option(help="Requests per minute per API key (429 above).")] = 600,
    max_batch_size: Annotated[int, typer.Option(help="Requests generated together.")] = 8,
    threads: Annotated[int | None, typer.Option(help="Torch threads (fix it on shared machines).")] = None,
) -> None:
    """Serve models over an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models)."""
    from tailorlm.serve import serve as run_serve

    run_serve(
        _workspace(workspace),
        models=model,
        host=host,
        port=port,
        no_auth=no_auth,
        log_texts=log_texts,
        log_retention_days=log_retention_days,
        max_tokens_cap=max_tokens_cap,
        max_body_bytes=max_body_bytes,
        rate_limit_per_minute=rate_limit_per_minute,
        max_batch_size=max_batch_size,
        threads=threads,
    )


@app.command("run")
@command
def run_all(
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    force: Annotated[bool, typer.Option(help="Redo every stage.")] = False,
) -> None:
    """Run every stage of the project (prepare → train → eval → register), skipping unchanged ones."""
    from tailorlm.pipeline import run_project

    ws = _workspace(workspace)
    run_project(ws, _project(ws, project), force=force, progress=for_console(console))


@app.command()
@command
def quickstart(
    workspace: WorkspaceOption = None,
    base_model: Annotated[
        str | None,
        typer.Option(
            help="Run the project file's own settings on this base instead: a model directory, a .gguf file "
            "or a registered base."
        ),
    ] = None,
    tiny: Annotated[
        bool, typer.Option(help="A small random-weight model built here: the mechanics in a few minutes.")
    ] = False,
    smoke: Annotated[bool, typer.Option(help="A one-minute run with a tiny model, to check an installation.")] = False,
) -> None:
    """The whole journey on the bundled sample company: ingest → prepare → train → eval → register.

    By default it fine-tunes SmolLM2-135M-Instruct (installed by `make demo`); exits 1 when the gate fails.

    Example: tailorlm quickstart --workspace demo-ws
    """
    from tailorlm.quickstart import run_quickstart

    result = run_quickstart(
        _workspace(workspace), base_model=base_model, tiny=tiny, smoke=smoke, progress=for_console(console)
    )
    if result.model is None:
        raise typer.Exit(1)


# --- base models -------------------------------------------------------------------------------------


def _packaged_names() -> list[str]:
    from tailorlm.bases.packages import PACKAGED

    return list(PACKAGED)


@base_app.command("import")
@command
def base_import(
    source: Annotated[
        str,
        typer.Argument(help="A .gguf file, or an installed model package: " + ", ".join(_packaged_names()) + "."),
    ],
    workspace: WorkspaceOption = None,
    name: Annotated[str | None, typer.Option(help="Name to register it under (default: from the file).")] = None,
    dtype: Annotated[str, typer.Option(help="Dequantise to float32 (any CPU), bfloat16 or float16.")] = "float32",
) -> None:
    """Convert a GGUF once into a model directory in the workspace and register it as a base.

    Example: tailorlm base import ~/models/company-llama.Q4_K_M.gguf --name company-llama
    """
    from tailorlm.bases import import_base

    ws = _workspace(workspace)
    artifact = import_base(ws, source, name=name, dtype=dtype, progress=for_console(console))
    console.print(f"base [bold]{artifact.name}[/]: {ws.path_of(artifact)}")
    console.print(f"Use it with `base_model: {artifact.name}` in the project file.")


@base_app.command("list")
@command
def base_list(
    workspace: WorkspaceOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Registered base models with their origin, licence and hash."""
    from tailorlm.bases import list_bases

    ws = _workspace(workspace)
    bases = list_bases(ws)
    if json_output:
        rows = [{"name": a.name, "path": str(ws.path_of(a)), **a.meta.model_dump(mode="json")} for a in bases]
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("name", "parameters", "dtype", "licence", "origin", "sha256", box=None)
    for artifact in bases:
        meta = artifact.meta_as(BaseMeta)
        origin = meta.origin or BaseOrigin()
        where = f"{origin.package} {origin.version or ''}" if origin.package else origin.file or ""
        table.add_row(
            artifact.name,
            f"{meta.parameters / 1e6:.0f}M",
            meta.dtype,
            meta.license or "unknown",
            where,
            meta.sha256[:16],
        )
    console.print(table if bases else "No base models yet: `tailorlm base import FILE.gguf`.")


# --- lists and lineage -------------------------------------------------------------------------------


@app.command()
@command
def runs(workspace: WorkspaceOption = None) -> None:
    """List training runs."""
    ws = _workspace(workspace)
    table = Table("run", "status", "method", "dataset", "train loss", "val loss", "created")
    for run in ws.registry.find("run"):
        meta = run.meta_as(RunMeta)
        metrics = meta.metrics
        table.add_row(
            run.id,
            run.status,
            meta.method,
            meta.dataset,
            _fmt(metrics.get("train_loss")),
            _fmt(metrics.get("eval_loss")),
            run.created_at,
        )
    console.print(table)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ""


@models_app.callback()
@command
def models(ctx: typer.Context, workspace: WorkspaceOption = None) -> None:
    """List registered models (or: tailorlm models deploy NAME)."""
    if ctx.invoked_subcommand:
        return
    ws = _workspace(workspace)
    table = Table("model", "run", "method", "base model", "evaluation", "created")
    for model in ws.registry.find("model"):
        meta = model.meta_as(ModelMeta)
        table.add_row(
            f"{model.name}@{model.version}",
            meta.run,
            meta.method,
            meta.base_model,
            meta.evaluation or "",
            model.created_at,
        )
    console.print(table)


@models_app.command("deploy")
@command
def models_deploy(
    name: Annotated[str, typer.Argument(help="Registered model to load into a running server.")],
    url: Annotated[str, typer.Option(help="Base URL of the running `tailorlm serve`.")] = "http://127.0.0.1:8000",
    admin_key: Annotated[str | None, typer.Option(envvar="TAILORLM_ADMIN_KEY", help="An admin-scope API key.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Hot-load a registered model's adapter into a running server (no restart)."""
    from tailorlm.serve import deploy

    deploy(_workspace(workspace), name, url=url, admin_key=admin_key)
    console.print(f"Deployed {name} to {url}")


@app.command()
@command
def lineage(
    artifact: Annotated[str, typer.Argument(help="Artifact id (model-…, run-…, dataset-…, eval-…).")],
    workspace: WorkspaceOption = None,
) -> None:
    """Trace an artifact back to the files it came from."""
    ws = _workspace(workspace)
    start = (
        ws.registry.get(artifact)
        if not artifact.startswith("model") or "@" not in artifact
        else ws.resolve("model", artifact)
    )
    table = Table("kind", "id", "name", "hash")
    for item in [start, *ws.registry.lineage(start.id)]:
        label = item.meta.source_path or item.name if isinstance(item.meta, DocumentMeta) else item.name
        table.add_row(item.kind, item.id, str(label), item.hash[:16])
    console.print(table)


@app.command()
@command
def audit(workspace: WorkspaceOption = None) -> None:
    """Verify the audit log's hash chain and print its last events."""
    ws = _workspace(workspace)
    ok, message = ws.audit.verify()
    for event in ws.audit.events()[-15:]:
        console.print(f"{event['time']}  {event['user']:<10} {event['action']:<18} {', '.join(event['outputs'])}")
    console.print(("[green]" if ok else "[red]") + message + "[/]")
    if not ok:
        raise typer.Exit(1)


# --- data --------------------------------------------------------------------------------------------


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
    """Render examples exactly as training sees them: trained tokens highlighted, masked tokens dim."""
    from tailorlm.dataset_splits import load_examples
    from tailorlm.formats.templates import inspect_segments
    from tailorlm.modeling import check_model_dir, load_tokenizer

    ws = _workspace(workspace)
    proj = None
    if base_model is None or max_length is None:
        proj = _project(ws, project)
    tokenizer = load_tokenizer(check_model_dir(base_model or proj.resolve(proj.base_model)))
    limit = max_length or proj.train.max_length
    examples = load_examples(ws, dataset, split)
    console.print("[dim]legend:[/] [dim]masked (no loss)[/] [bold green on grey15]trained (loss)[/]")
    for example in examples[:n]:
        console.rule(f"{example.id}  source {example.source or '-'}")
        for text, trained in inspect_segments(tokenizer, example, limit):
            console.print(
                text, style="bold green on grey15" if trained else "dim", end="", markup=False, highlight=False
            )
        console.print()


@data_app.command("show")
@command
def data_show(
    dataset: Annotated[str, typer.Argument(help="Dataset name, name@version or id.")], workspace: WorkspaceOption = None
) -> None:
    """Print a dataset's card."""
    from rich.markdown import Markdown

    ws = _workspace(workspace)
    artifact = ws.resolve("dataset", dataset)
    card = ws.path_of(artifact) / "card.md"
    if card.exists():
        console.print(Markdown(card.read_text(encoding="utf-8")))
    else:
        console.print_json(artifact.meta.model_dump_json())


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
    """Import an existing JSONL dataset as a new dataset version (split into train/val/test)."""
    from tailorlm.dataset_import import import_dataset

    ws = _workspace(workspace)
    artifact = import_dataset(ws, file, project=_project(ws, project), name=name, skip_invalid=skip_invalid)
    meta = artifact.meta_as(DatasetMeta)
    console.print(f"Imported [bold]{artifact.name}@{artifact.version}[/]: {meta.counts}")
    if skipped := meta.skipped.get("dataset: invalid line"):
        console.print(f"[yellow]skipped {skipped} invalid line(s) (recorded in the dataset card)[/]")


# --- export and keys ---------------------------------------------------------------------------------


def _export(target: str) -> Callable[..., None]:
    @command
    def export_target(
        model: Annotated[str, typer.Argument(help="Registered model (name, name@version) or run id.")],
        workspace: WorkspaceOption = None,
        output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/exports/...).")] = None,
    ) -> None:
        from tailorlm.export import export

        result = export(_workspace(workspace), model, target, output=output, progress=for_console(console))
        console.print(f"Exported {model} → {result.path}")
        for check in result.report.get("checks", []):
            style = {"passed": "green", "failed": "red"}.get(check["status"], "yellow")
            console.print(f"  [{style}]{check['status']}[/] {check['name']}: {check['detail']}")
        if not result.passed:
            raise typer.Exit(1)

    export_target.__doc__ = {
        "merge": "Merge the adapter into the base: safetensors + tokenizer, checked for identical greedy output.",
        "gguf": "Write GGUF files (f16, q8_0) for llama.cpp.",
        "ollama": "Write a GGUF and an Ollama Modelfile with the translated chat template.",
        "vllm": "Write the adapter and the exact vLLM launch command.",
    }[target]
    return export_target


for _target in ("merge", "gguf", "ollama", "vllm"):
    export_app.command(_target)(_export(_target))


@keys_app.command("create")
@command
def keys_create(
    scope: Annotated[str, typer.Option(help="chat (completions) or admin (also manage adapters).")] = "chat",
    model: Annotated[list[str] | None, typer.Option("--models", help="Limit the key to these models.")] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Create an API key (stored hashed; shown once)."""
    from tailorlm.serve.auth import create_key

    key_id, secret = create_key(_workspace(workspace), scope=scope, models=model, name=name)
    console.print(f"key id {key_id} (scope {scope}). The secret is shown only now:\n{secret}")


@keys_app.command("list")
@command
def keys_list(workspace: WorkspaceOption = None) -> None:
    """List API keys (never the secrets)."""
    from tailorlm.serve.auth import list_keys

    table = Table("id", "name", "scope", "models", "created", "revoked")
    for key in list_keys(_workspace(workspace)):
        models = ", ".join(key.models) if key.models else "all"
        table.add_row(key.id, key.name, key.scope, models, key.created_at, key.revoked_at or "")
    console.print(table)


@keys_app.command("revoke")
@command
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id.")], workspace: WorkspaceOption = None) -> None:
    """Revoke an API key."""
    from tailorlm.serve.auth import revoke_key

    revoke_key(_workspace(workspace), key_id)
    console.print(f"revoked {key_id}")


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # our own progress and messages, not the libraries'
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
