"""The `tailorlm` command: one thin function per verb — parse, call the library, print.

Every command takes `--workspace` (default ./tailorlm-workspace or $TAILORLM_WORKSPACE; only `init`
and `quickstart` create one) and, where it reads the project, `--project` (default: the workspace's
tailorlm.yaml, else ./tailorlm.yaml). Options that mirror settings are built from the code: the export
subcommands and their options from the export target registry, `serve`'s options from
`config.ServeSettings` (see common.py). Errors the user can fix (`tailorlm.errors.UserError`) print a
message and a hint with exit code 1, never a traceback. Listing verbs (listings.py) take `--json`;
serving verbs are in serving.py.
"""

from __future__ import annotations

import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tailorlm.cli.common import (
    JsonOption,
    ProjectOption,
    WorkspaceOption,
    _choices,
    _given,
    _option,
    _plain_type,
    _progress,
    _project,
    _value,
    _with_options,
    _workspace,
    command,
)
from tailorlm.config import Method
from tailorlm.errors import UserError
from tailorlm.lifecycle import exit_code, signal_of
from tailorlm.output import console, err, print_json, print_table
from tailorlm.progress import SILENT
from tailorlm.registry import DatasetMeta

if TYPE_CHECKING:
    from tailorlm.export import Target

app = typer.Typer(  # help: the `root` callback's docstring
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
base_app = typer.Typer(
    help="Base models: import a GGUF file (Ollama, llama.cpp, a model package) once, list what is registered.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")
app.add_typer(export_app, name="export")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(base_app, name="base")


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
        raise UserError(
            f"{ws.project_file} already exists; left unchanged", hint="edit it, or give another --workspace"
        )
    atomic_write_text(ws.project_file, project_template(name, base_model))
    ws.audit.append("init", outputs=[str(ws.project_file)])
    console.print(f"Created {ws.project_file}. Edit its sources and base_model, then `tailorlm run`.")


@app.command()
@command
def validate(
    file: Annotated[Path, typer.Argument(help="Project file to check.")] = Path("tailorlm.yaml"),
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace whose registered base models `base_model` may name (default: the project "
            "file's folder when it is a workspace).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a project file: every bad field and every problem prepare or train would refuse.

    \b
    Example:
      tailorlm validate ws/tailorlm.yaml
    """
    from tailorlm.checks import describe, problems
    from tailorlm.config import ConfigError, load_project

    folder = workspace or file.resolve().parent
    ws = _workspace(folder) if workspace or (folder / "tailorlm.db").is_file() else None
    if not file.is_file():
        raise ConfigError(f"project file not found: {file}", hint="give the path of a tailorlm.yaml")
    project = load_project(file)
    if found := problems(project, workspace=ws):
        raise ConfigError(f"{file}: {len(found)} problem(s)\n{describe(found)}")
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
    follow_links: Annotated[
        bool,
        typer.Option(help="Read what symbolic links point to (recording the real file); by default links are refused."),
    ] = False,
) -> None:
    """Read company files into documents with provenance (unchanged files are skipped; links are refused).

    \b
    Example:
      tailorlm ingest docs/ faq.csv support.mbox --workspace ws
    """
    from tailorlm.ingest import ingest as run_ingest

    ws = _workspace(workspace)
    missing = [str(path) for path in paths if not path.exists() and not path.is_symlink()]
    if missing:
        raise FileNotFoundError(f"not found: {', '.join(missing)}")
    report = run_ingest(ws, paths, max_file_mb=max_file_mb, progress=_progress(), follow_links=follow_links)
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
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare as run_prepare

    ws = _workspace(workspace)
    result = run_prepare(ws, _project(ws, project), ingest=ingest, force=force, progress=_progress())
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
    max_steps: Annotated[int | None, typer.Option(min=1, help="Override train.max_steps (at least 1).")] = None,
    force: Annotated[bool, typer.Option(help="Train even if an identical run exists.")] = False,
    gpus: Annotated[
        int | None, typer.Option(help="Train on N GPUs of this machine (torchrun, one process each).")
    ] = None,
    processes: Annotated[int | None, typer.Option(help="Train on N CPU processes (torchrun, gloo).")] = None,
    nodes: Annotated[int, typer.Option(help="Nodes (with --gpus: MASTER_ADDR names the first; with --slurm).")] = 1,
    slurm: Annotated[
        bool, typer.Option(help="Write an sbatch script into the run folder instead of training.")
    ] = False,
    submit: Annotated[bool, typer.Option(help="With --slurm: submit it with sbatch.")] = False,
    partition: Annotated[str | None, typer.Option(help="With --slurm: the partition.")] = None,
    gpus_per_node: Annotated[int, typer.Option(help="With --slurm: GPUs (ranks) per node.")] = 1,
    time: Annotated[str | None, typer.Option(help="With --slurm: time limit (HH:MM:SS, D-HH...).")] = None,
    account: Annotated[str | None, typer.Option(help="With --slurm: the account to charge.")] = None,
) -> None:
    """Fine-tune the base model on a dataset; writes runs/<run-id>/.

    \b
    Example:
      tailorlm train --workspace ws --method lora --max-steps 200
    """
    from tailorlm.train import distributed
    from tailorlm.train import train as run_train

    if slurm or gpus is not None or processes is not None:
        from tailorlm.cli.launching import launch_train

        launch_train(workspace, gpus, processes, nodes, slurm, submit, partition, gpus_per_node, time, account)
        return
    if submit or partition or time or account:
        raise UserError("--submit, --partition, --time and --account go with --slurm")
    ws = _workspace(workspace)
    proj = None if resume else _override_train(_project(ws, project), method=_value(method), max_steps=max_steps)
    main = distributed.is_main()  # under torchrun: rank 0 imports and reports, every rank trains
    if data is not None:
        from tailorlm.dataset_import import import_dataset

        imported = import_dataset(ws, data, project=proj, skip_invalid=skip_invalid) if main else None
        dataset = distributed.from_main(imported.id if imported else None)
        if imported and (skipped := imported.meta_as(DatasetMeta).skipped.get("dataset: invalid line")):
            console.print(f"[yellow]skipped {skipped} invalid line(s) of {data} (recorded in the dataset card)[/]")
    try:
        result = run_train(
            ws,
            proj,  # type: ignore[arg-type]
            dataset=dataset,
            resume=resume,
            force=force,
            progress=_progress() if main else SILENT,
        )
    except KeyboardInterrupt as stop:
        interrupted = ws.registry.find("run", status="interrupted")
        hint = f" Resume with: tailorlm train --resume {interrupted[0].id}" if interrupted else ""
        err.print(f"[yellow]interrupted ({signal_of(stop)}).{hint}[/]")
        raise typer.Exit(exit_code(stop)) from None
    if not main:
        return  # rank 0 reports for the launch
    if result.skipped:
        console.print(f"Run {result.run.id} already trained these inputs with these settings (use --force).")
    _print_run(result)


def _override_train(project, **overrides: Any):
    changes = {key: value for key, value in overrides.items() if value is not None}
    if changes:
        from pydantic import ValidationError

        from tailorlm.config import ConfigError, TrainSettings, format_validation_error

        try:
            project.train = TrainSettings.model_validate({**project.train.model_dump(), **changes})
        except ValidationError as error:  # named as the user gave it: the option and the setting it overrides
            raise ConfigError(format_validation_error(error, "train options on the command line")) from None
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
        ws,
        _project(ws, project),
        runs=run,
        cases_file=cases,
        baselines=baseline,
        endpoints=endpoint,
        gate=gate,
        progress=_progress(to_stderr=as_json),
    )
    if as_json:
        verdict = None
        if result.gate is not None:
            verdict = {"passed": result.gate.passed, "unmet": result.gate.unmet, "explain": result.gate.explain()}
        print_json(
            {"evaluation": result.evaluation.id, "path": str(result.path), "gate": verdict, "summary": result.summary}
        )
    else:
        print_table(*ev.summary_table(result.summary))
        console.print(f"Report: {result.path / 'report.html'}")
    if result.gate is not None:
        if not as_json:
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
    """Register a run as a versioned model (refused if its latest evaluation failed the gate).

    \b
    Example:
      tailorlm register run-20250101-120000-abc123 --name acme-support --workspace ws
    """
    from tailorlm.register import register as run_register

    ws = _workspace(workspace)
    proj = _project(ws, project) if (name is None or project) else None
    model = run_register(
        ws, run, name=name or proj.project, force=force, system_prompt=proj.system_prompt if proj else None
    )
    console.print(f"Registered [bold]{model.name}@{model.version}[/] ({ws.root / model.path})")


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
    run_project(ws, _project(ws, project), force=force, progress=_progress())


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

    \b
    Example:
      tailorlm quickstart --workspace demo-ws
    """
    from tailorlm.quickstart import run_quickstart

    result = run_quickstart(
        _workspace(workspace, create=True), base_model=base_model, tiny=tiny, smoke=smoke, progress=_progress()
    )
    if result.model is None:
        raise typer.Exit(1)


# --- export ------------------------------------------------------------------------------------------


def _export_command(target: Target) -> Callable[..., None]:
    """`tailorlm export <target> MODEL [--option ...]`, every option read from the target registry."""
    from tailorlm.export import shared_options

    def export_target(
        model: Annotated[str, typer.Argument(help="Registered model (name, name@version) or run id.")],
        workspace: WorkspaceOption = None,
        output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/exports/...).")] = None,
        **options: Any,
    ) -> None:
        from tailorlm.export import export

        result = export(
            _workspace(workspace), model, target.name, output=output, progress=_progress(), **_given(options)
        )
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


# The other verbs register themselves on import; they use the apps above, so this comes last.
from tailorlm.cli import (  # noqa: E402, F401
    base_models,
    classify,
    feedback,
    governance,
    iterate,
    jobs,
    listings,
    planning,
    serving,
    sovereignty,
    web,
)


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
