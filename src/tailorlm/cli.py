"""The `tailorlm` command: one thin function per verb — parse, call the library, print.

Every command takes `--workspace` (default ./tailorlm-workspace or $TAILORLM_WORKSPACE; only `init`
and `quickstart` create one) and, where it reads the project, `--project` (default: the workspace's
tailorlm.yaml, else ./tailorlm.yaml). Options that mirror settings are built from the code: the export
subcommands and their options from the export target registry, `serve`'s options from
`config.ServeSettings`. Errors the user can fix (`tailorlm.errors.UserError`) print a message and a
hint with exit code 1, never a traceback. Listing verbs take `--json`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar

import typer

from tailorlm import offline
from tailorlm.config import Method, ServeSettings
from tailorlm.errors import UserError
from tailorlm.output import console, err, print_error, print_json, print_table, show

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
models_app = typer.Typer(invoke_without_command=True)  # help: the `models` callback's docstring
keys_app = typer.Typer(help="API keys for `tailorlm serve`.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(export_app, name="export")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")

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
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")]

F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from tailorlm import __version__

        try:
            installed = version("tailorlm")
        except PackageNotFoundError:
            installed = __version__
        console.print(f"tailorlm {installed}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Fine-tune open LLMs on your company's own data, on your own machines.

    \b
    Example:
      tailorlm quickstart --workspace demo
    """


def command(function: F) -> F:
    """Air-gap every verb; a user's mistake becomes `error:` + `hint:` lines and exit 1, not a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        offline.enforce()
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except UserError as error:
            print_error(error.message, error.hint)
            raise typer.Exit(1) from None
        except (OSError, ValueError, LookupError, RuntimeError) as error:
            if not _is_user_error(error):
                raise
            print_error(str(error))
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _is_user_error(error: BaseException) -> bool:
    """Files that can't be read are the user's to fix; other library errors outside `UserError` too."""
    return type(error).__module__.startswith("tailorlm") or isinstance(
        error, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError
    )


def _workspace(path: Path | None, *, create: bool = False):
    from tailorlm.workspace import Workspace

    return Workspace.open(path, create=create)


def _project(workspace, path: Path | None, *, required: bool = True):
    from tailorlm.config import ConfigError, load_project

    candidates = [path] if path else [workspace.project_file, Path("tailorlm.yaml")]
    for candidate in candidates:
        if candidate and candidate.is_file():
            project = load_project(candidate)
            offline.allow(project.allow_hosts)
            return project
    if path is not None:
        raise ConfigError(f"project file not found: {path}")
    if not required:
        return None
    raise ConfigError(
        f"no project file in {workspace.root} or the current folder",
        hint=f"pass --project FILE, or create {workspace.project_file} with `tailorlm init`",
    )


def _say(message: Any = "", *args: Any, **kwargs: Any) -> None:
    """Progress lines of `run` and `quickstart`; tables among them are printed uncut (see `show`)."""
    if isinstance(message, str):
        console.print(message, *args, **{"soft_wrap": True, **kwargs})  # a command stays on one line
    else:
        show(message)


def _as_dict(item: Any) -> Any:
    return dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item


# --- options built from the code ------------------------------------------------------------------


def _option(name: str, annotation: Any, help: str, default: Any) -> inspect.Parameter:
    """A `--name` option for a setting or target argument; None (not given) leaves the library default."""
    kind, choices, many = _plain_type(annotation)
    shown = default if default not in (None, ()) else None
    text = help + (f" [default: {_show_default(shown)}]" if shown is not None else "")
    flag = "--" + name.replace("_", "-")
    declarations = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
    info = typer.Option(*declarations, help=text, show_default=False)
    if choices:
        kind = _choices(name, choices)
    python_type = list[kind] if many else kind  # type: ignore[valid-type]
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[python_type | None, info]
    )


def _choices(name: str, values: Sequence[str]) -> type[Enum]:
    """An Enum of the allowed values, which typer shows and checks (`--dtype [auto|float32|...]`)."""
    return Enum(name.title().replace("_", ""), [(value, value) for value in values], type=str)  # type: ignore[return-value]


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _plain_type(annotation: Any) -> tuple[type, tuple[str, ...], bool]:
    """(type typer can parse, Literal choices, takes several values) of a settings annotation."""
    many = False
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = Path if Path in inner else inner[0]
    if typing.get_origin(annotation) in (list, tuple, Sequence, typing.Sequence):
        many, annotation = True, typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Literal:
        return str, tuple(map(str, typing.get_args(annotation))), many
    return (annotation if annotation in (bool, int, float, str, Path) else str), (), many


def _with_options(function: F, options: Sequence[inspect.Parameter]) -> F:
    """Give a `function(..., **options)` the signature typer reads: its own parameters + `options`."""
    own = [
        p
        for p in inspect.signature(function, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    function.__signature__ = inspect.Signature([*own, *options])  # type: ignore[attr-defined]
    return function


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line (not None), with choices turned back into their values."""
    return {key: _value(value) for key, value in options.items() if value is not None}


def _value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return [_value(item) for item in value] if isinstance(value, list) else value


# --- project ---------------------------------------------------------------------------------------


@app.command()
@command
def init(
    workspace: WorkspaceOption = None,
    name: Annotated[str, typer.Option(help="Project name.")] = "my-project",
    base_model: Annotated[str, typer.Option(help="Local directory of the base model.")] = "/models/base",
) -> None:
    """Create a workspace with a commented tailorlm.yaml to edit.

    \b
    Example:
      tailorlm init --workspace ws --name support --base-model /models/Qwen2.5-1.5B-Instruct
    """
    from tailorlm.project_template import project_template
    from tailorlm.workspace import atomic_write_text

    ws = _workspace(workspace, create=True)
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
    """Check a project file; name every bad field.

    \b
    Example:
      tailorlm validate ws/tailorlm.yaml
    """
    from tailorlm.config import ConfigError, load_project

    if not file.is_file():
        raise ConfigError(f"project file not found: {file}", hint="give the path of a tailorlm.yaml")
    project = load_project(file)
    problems = [
        f"sources[{i}].path: not found: {project.resolve(s.path)}"
        for i, s in enumerate(project.sources)
        if not project.resolve(s.path).exists()
    ]
    if not project.resolve(project.base_model).is_dir():
        problems.append(f"base_model: directory not found: {project.resolve(project.base_model)}")
    if problems:
        raise ConfigError(f"{file}: " + "; ".join(problems))
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
    """Read company files into documents with provenance (unchanged files are skipped).

    \b
    Example:
      tailorlm ingest docs/ faq.csv support.mbox --workspace ws
    """
    from tailorlm.ingest import ingest as run_ingest

    ws = _workspace(workspace)
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise FileNotFoundError(f"not found: {', '.join(missing)}")
    report = run_ingest(ws, paths, max_file_mb=max_file_mb)
    rows = []
    for result in report.files:
        style = {"failed": "red", "partial": "yellow", "unchanged": "dim"}.get(result.status, "green")
        note = result.error or "; ".join(result.warnings[:2])
        rows.append([result.path, f"[{style}]{result.status}[/]", result.documents, note])
    print_table(["file", "status", "documents", "note"], rows)
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
    """Clean, redact, deduplicate, structure and split the project's sources into a dataset version.

    \b
    Example:
      tailorlm prepare --workspace ws
    """
    from tailorlm.prepare import prepare as run_prepare

    ws = _workspace(workspace)
    result = run_prepare(ws, _project(ws, project), force=force, progress=lambda message: console.print(f"  {message}"))
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
    method: Annotated[
        _choices("method", typing.get_args(Method)) | None,  # type: ignore[valid-type]
        typer.Option(help="Override train.method."),
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override train.max_steps.")] = None,
    force: Annotated[bool, typer.Option(help="Train even if an identical run exists.")] = False,
) -> None:
    """Fine-tune the base model on a dataset; writes runs/<run-id>/.

    \b
    Example:
      tailorlm train --workspace ws --method lora --max-steps 200
    """
    from tailorlm.train import train as run_train

    ws = _workspace(workspace)
    proj = None if resume else _override_train(_project(ws, project), method=_value(method), max_steps=max_steps)
    if data is not None:
        from tailorlm.datasets import import_dataset

        imported = import_dataset(ws, data, project=proj, skip_invalid=skip_invalid)
        dataset = imported.id
        if skipped := imported.meta.get("skipped", {}).get("dataset: invalid line"):
            console.print(f"[yellow]skipped {skipped} invalid line(s) of {data} (recorded in the dataset card)[/]")
    try:
        result = run_train(ws, proj, dataset=dataset, resume=resume, force=force)  # type: ignore[arg-type]
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
    as_json: JsonOption = False,
) -> None:
    """Evaluate fine-tuned runs against baselines on the held-out test split (+ your cases).

    \b
    Example:
      tailorlm eval --workspace ws --gate --json
    """
    from tailorlm import evaluate as ev

    ws = _workspace(workspace)
    if compare:
        diff = ev.compare(ws, compare[0], compare[1])
        if as_json:
            print_json(diff.to_json())
        else:
            print_table(*diff.table())
        return
    if cases is not None and not cases.is_file():
        raise FileNotFoundError(f"cases file not found: {cases}")
    result = ev.evaluate(
        ws, _project(ws, project), runs=run, cases_file=cases, baselines=baseline, endpoints=endpoint, gate=gate
    )
    if as_json:
        verdict = None if result.gate is None else {"passed": result.gate.passed, "unmet": result.gate.unmet}
        print_json(
            {"evaluation": result.evaluation.id, "path": str(result.path), "gate": verdict, "summary": result.summary}
        )
    else:
        print_table(*ev.summary_table(result.summary))
        console.print(f"Report: {result.path / 'report.html'}")
    if result.gate is not None:
        if not as_json:
            passed = "[green]gate passed[/]"
            console.print(passed if result.gate.passed else f"[red]gate failed:[/] {', '.join(result.gate.unmet)}")
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
    """Register a run as a versioned model (refused if its latest evaluation failed the gate).

    \b
    Example:
      tailorlm register run-20250101-120000-abc123 --name acme-support --workspace ws
    """
    from tailorlm.models import register as run_register

    ws = _workspace(workspace)
    proj = _project(ws, project) if (name is None or project) else None
    model = run_register(
        ws, run, name=name or proj.project, force=force, system_prompt=proj.system_prompt if proj else None
    )
    console.print(f"Registered [bold]{model.name}@{model.version}[/] ({ws.root / model.path})")


def serve(
    model: Annotated[
        list[str], typer.Option("--model", "-m", help="Registered model(s) to serve: name, name@version, alias=name.")
    ],
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    **settings: Any,
) -> None:
    """Serve models over an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models).

    Settings come from the project file's `serve:` section; an option given here overrides it.

    \b
    Example:
      tailorlm serve --workspace ws --model acme-support --port 8080
    """
    from pydantic import ValidationError

    from tailorlm.config import ConfigError, format_validation_error
    from tailorlm.serve import serve as run_serve

    ws = _workspace(workspace)
    proj = _project(ws, project, required=False)
    base = proj.serve if proj is not None else ServeSettings()
    try:
        chosen = ServeSettings.model_validate({**base.model_dump(), **_given(settings)})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, "serve options"), hint="see `tailorlm serve --help`") from None
    options = chosen.model_dump()
    run_serve(ws, models=model, no_auth=not options.pop("auth"), **options)


app.command("serve")(
    _with_options(
        command(serve),
        [_option(n, f.annotation, f.description or "", f.default) for n, f in ServeSettings.model_fields.items()],
    )
)


@app.command("run")
@command
def run_all(
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    force: Annotated[bool, typer.Option(help="Redo every stage.")] = False,
) -> None:
    """Run every stage of the project (prepare → train → eval → register), skipping unchanged ones.

    \b
    Example:
      tailorlm run --workspace ws
    """
    from tailorlm.pipeline import run_project

    ws = _workspace(workspace)
    run_project(ws, _project(ws, project), force=force, say=_say)


@app.command()
@command
def quickstart(
    workspace: WorkspaceOption = None,
    base_model: Annotated[
        Path | None, typer.Option(help="A local model directory (default: build a small demo model).")
    ] = None,
    smoke: Annotated[bool, typer.Option(help="A one-minute run with a tiny model, to check an installation.")] = False,
) -> None:
    """The whole journey on the bundled sample company: ingest → prepare → train → eval → register.

    \b
    Example:
      tailorlm quickstart --workspace demo --smoke
    """
    from tailorlm.quickstart import run_quickstart

    run_quickstart(_workspace(workspace, create=True), base_model=base_model, smoke=smoke, say=_say)


# --- lists and lineage -------------------------------------------------------------------------------


@app.command()
@command
def runs(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List training runs.

    \b
    Example:
      tailorlm runs --workspace ws --json
    """
    ws = _workspace(workspace)
    found = ws.registry.find("run")
    if as_json:
        print_json([_as_dict(run) for run in found])
        return
    rows = []
    for run in found:
        metrics = run.meta.get("metrics", {})
        rows.append(
            [
                run.id,
                run.status,
                run.meta.get("method", ""),
                run.meta.get("dataset", ""),
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
            model.meta.get("run", ""),
            model.meta.get("method", ""),
            model.meta.get("base_model", ""),
            model.meta.get("evaluation") or "",
            model.created_at,
        ]
        for model in found
    ]
    print_table(["model", "run", "method", "base model", "evaluation", "created"], rows)


@models_app.command("deploy")
@command
def models_deploy(
    name: Annotated[str, typer.Argument(help="Registered model to load into a running server.")],
    url: Annotated[str, typer.Option(help="Base URL of the running `tailorlm serve`.")] = "http://127.0.0.1:8000",
    admin_key: Annotated[str | None, typer.Option(envvar="TAILORLM_ADMIN_KEY", help="An admin-scope API key.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Hot-load a registered model's adapter into a running server (no restart).

    \b
    Example:
      tailorlm models deploy acme-support@v2 --workspace ws --url http://127.0.0.1:8000
    """
    from tailorlm.serve import deploy

    deploy(_workspace(workspace), name, url=url, admin_key=admin_key)
    console.print(f"Deployed {name} to {url}")


@app.command()
@command
def lineage(
    artifact: Annotated[
        str, typer.Argument(help="Artifact id (model-…, run-…, dataset-…, eval-…) or a model/dataset name@version.")
    ],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trace an artifact back to the files it came from.

    \b
    Example:
      tailorlm lineage acme-support@v1 --workspace ws
    """
    ws = _workspace(workspace)
    start = ws.lookup(artifact)
    chain = [start, *ws.registry.lineage(start.id)]
    if as_json:
        print_json([_as_dict(item) for item in chain])
        return
    rows = [
        [
            item.kind,
            item.id,
            item.meta.get("source_path", item.name) if item.kind == "document" else item.name,
            item.hash[:16],
        ]
        for item in chain
    ]
    print_table(["kind", "id", "name", "hash"], rows)


@app.command()
@command
def audit(
    workspace: WorkspaceOption = None,
    last: Annotated[int, typer.Option(help="How many of the latest events to show (0: all).")] = 15,
    as_json: JsonOption = False,
) -> None:
    """Verify the audit log's hash chain and print its last events (exit 1 when the chain is broken).

    \b
    Example:
      tailorlm audit --workspace ws --last 50
    """
    ws = _workspace(workspace)
    ok, message = ws.audit.verify()
    events = ws.audit.events()
    events = events[-last:] if last > 0 else events
    if as_json:
        print_json({"intact": ok, "message": message, "events": events})
    else:
        rows = [[e["time"], e["user"], e["action"], ", ".join(e["outputs"])] for e in events]
        print_table(["time", "user", "action", "outputs"], rows)
        console.print(("[green]" if ok else "[red]") + message + "[/]")
    if not ok:
        raise typer.Exit(1)


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
    from tailorlm.datasets import load_examples
    from tailorlm.formats.templates import inspect_segments
    from tailorlm.train.model import check_model_dir, load_tokenizer

    ws = _workspace(workspace)
    proj = None
    if base_model is None or max_length is None:
        proj = _project(ws, project)
    tokenizer = load_tokenizer(check_model_dir(base_model or proj.resolve(proj.base_model)))
    limit = max_length or proj.train.max_length
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
        console.print(Markdown((folder / "card.md").read_text(encoding="utf-8")))
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
    from tailorlm.datasets import import_dataset

    ws = _workspace(workspace)
    if not file.is_file():
        raise FileNotFoundError(f"dataset file not found: {file}")
    artifact = import_dataset(ws, file, project=_project(ws, project), name=name, skip_invalid=skip_invalid)
    console.print(f"Imported [bold]{artifact.name}@{artifact.version}[/]: {artifact.meta.get('counts')}")
    if skipped := artifact.meta.get("skipped", {}).get("dataset: invalid line"):
        console.print(f"[yellow]skipped {skipped} invalid line(s) (recorded in the dataset card)[/]")


# --- export and keys ---------------------------------------------------------------------------------


def _export_command(target: Any) -> Callable[..., None]:
    """`tailorlm export <target> MODEL [--option ...]`, every option read from the target registry."""
    from tailorlm.export import shared_options

    def export_target(
        model: Annotated[str, typer.Argument(help="Registered model (name, name@version) or run id.")],
        workspace: WorkspaceOption = None,
        output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/exports/...).")] = None,
        **options: Any,
    ) -> None:
        from tailorlm.export import export

        result = export(_workspace(workspace), model, target.name, output=output, **_given(options))
        console.print(f"Exported {model} → {result.path}")
        for check in result.report.get("checks", []):
            style = {"passed": "green", "failed": "red"}.get(check["status"], "yellow")
            console.print(f"  [{style}]{check['status']}[/] {check['name']}: {check['detail']}")
        if not result.passed:
            raise typer.Exit(1)

    parameters = [*target.parameters(), *shared_options()]
    example = f"tailorlm export {target.name} acme-support@v1 --workspace ws"
    for option in target.parameters()[:1]:
        choices = _plain_type(option.annotation)[1]
        if choices:
            example += f" --{option.name.replace('_', '-')} {choices[-1]}"
    export_target.__doc__ = f"{target.description.rstrip('.')}.\n\n\b\nExample:\n  {example}\n"
    options = [_option(o.name, o.annotation, o.help, o.default) for o in parameters]
    return _with_options(command(export_target), options)


def _add_export_commands() -> None:
    from tailorlm.export import TARGETS

    for name, chosen in sorted(TARGETS.items()):
        export_app.command(name)(_export_command(chosen))


_add_export_commands()


@keys_app.command("create")
@command
def keys_create(
    scope: Annotated[
        _choices("scope", ("chat", "admin")),  # type: ignore[valid-type]
        typer.Option(help="chat (completions) or admin (also manage adapters)."),
    ] = "chat",  # type: ignore[assignment]
    model: Annotated[list[str] | None, typer.Option("--models", help="Limit the key to these models.")] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Create an API key (stored hashed; shown once).

    \b
    Example:
      tailorlm keys create --scope chat --name helpdesk --models acme-support --workspace ws
    """
    from tailorlm.serve.auth import create_key

    key_id, secret = create_key(_workspace(workspace), scope=_value(scope), models=model, name=name)
    console.print(f"key id {key_id} (scope {_value(scope)}). The secret is shown only now:\n{secret}", soft_wrap=True)


@keys_app.command("list")
@command
def keys_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List API keys (never the secrets).

    \b
    Example:
      tailorlm keys list --workspace ws --json
    """
    from tailorlm.serve.auth import list_keys

    keys = list_keys(_workspace(workspace))
    if as_json:
        print_json([_as_dict(key) for key in keys])
        return
    rows = [
        [key.id, key.name, key.scope, ", ".join(key.models) if key.models else "all", key.created_at, key.revoked_at]
        for key in keys
    ]
    print_table(["id", "name", "scope", "models", "created", "revoked"], rows)


@keys_app.command("revoke")
@command
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id.")], workspace: WorkspaceOption = None) -> None:
    """Revoke an API key.

    \b
    Example:
      tailorlm keys revoke k-1a2b3c --workspace ws
    """
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
