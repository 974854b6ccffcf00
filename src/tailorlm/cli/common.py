"""What every verb of the CLI shares: the --workspace/--project/--json options, the wrapper that turns a
user's mistake into `error:` + `hint:` lines, and options built from the code (settings fields and
export target arguments become typed, documented `--options`)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from tailorlm import offline
from tailorlm.errors import UserError
from tailorlm.lifecycle import exit_code, signal_of, stop_signals
from tailorlm.output import console, err, print_error, show
from tailorlm.progress import Progress, for_console

if TYPE_CHECKING:
    from tailorlm.config import Project
    from tailorlm.workspace import Workspace

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


def command(function: F) -> F:
    """Air-gap every verb; a user's mistake becomes `error:` + `hint:` lines and exit 1, not a traceback;
    SIGTERM stops a verb like Ctrl-C (`tailorlm.lifecycle`): one line, exit 128 + the signal's number."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        offline.enforce()
        try:
            with stop_signals():
                return function(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as stop:
            err.print(f"[yellow]interrupted ({signal_of(stop)})[/]")
            raise typer.Exit(exit_code(stop)) from None
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


@typing.overload
def _project(
    workspace: Workspace, path: Path | None, *, required: Literal[True] = True, base_model: bool = True
) -> Project: ...
@typing.overload
def _project(workspace: Workspace, path: Path | None, *, required: bool, base_model: bool = True) -> Project | None: ...
def _project(
    workspace: Workspace, path: Path | None, *, required: bool = True, base_model: bool = True
) -> Project | None:
    """The project file given, else the workspace's, else ./tailorlm.yaml; None when not `required`.
    `base_model`: resolve it to a model directory (a verb that doesn't load it, like serve, skips that)."""
    from tailorlm.bases import with_base_dir
    from tailorlm.config import ConfigError, load_project

    candidates = [path] if path else [workspace.project_file, Path("tailorlm.yaml")]
    for candidate in candidates:
        if candidate and candidate.is_file():
            project = load_project(candidate)
            offline.allow(project.allow_hosts)
            return with_base_dir(workspace, project, progress=_progress()) if base_model else project
    if path is not None:
        raise ConfigError(f"project file not found: {path}")
    if not required:
        return None
    raise ConfigError(
        f"no project file in {workspace.root} or the current folder",
        hint=f"pass --project FILE, or create {workspace.project_file} with `tailorlm init`",
    )


def _progress(*, to_stderr: bool = False) -> Progress:
    """What the long verbs report through: a live bar on a terminal, plain lines in a log; on stderr
    when stdout carries `--json`."""
    return for_console(err, printer=err.print) if to_stderr else for_console(console, printer=_say)


def _say(message: Any = "", *args: Any, **kwargs: Any) -> None:
    """Progress lines of `run` and `quickstart`; tables among them are printed uncut (see `show`)."""
    if isinstance(message, str):
        console.print(message, *args, **{"soft_wrap": True, **kwargs})  # a command stays on one line
    else:
        show(message)


def _as_dict(item: Any) -> Any:
    """A registry row (or any dataclass) as JSON-ready data; a typed meta becomes its fields."""
    if not dataclasses.is_dataclass(item):
        return item
    data = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    return {k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v for k, v in data.items()}


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
