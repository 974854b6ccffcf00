"""The `export` verb's body: the report, the target registry (``@target``) and `export()` itself.

`export()` resolves the model, checks the target's options, runs the target into a staging folder
and renames it into place only when it returns, so a failed export leaves nothing half-written.
Every export writes ``export_report.json`` and appends an ``export`` audit event; none registers
anything in the model table. The targets live one per file beside this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import UnionType
from typing import Any

from tailorlm import offline
from tailorlm.errors import UserError
from tailorlm.governance import require_release
from tailorlm.modeling import ModelRef, resolve_model
from tailorlm.progress import SILENT, Progress
from tailorlm.workspace import NotFound, Workspace, atomic_write_json, sha256_file

REPORT_FILE = "export_report.json"


class ExportError(UserError, ValueError):
    """An export that can't be made; the message names the input or option to change."""


# --- the report -------------------------------------------------------------------------------------


@dataclass
class Report:
    """What an export checked, skipped and warned about; written as ``export_report.json``."""

    checks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, status: str, detail: str, **data: Any) -> dict[str, Any]:
        """Record a check: status is ``passed``, ``failed`` or ``skipped`` (detail says why)."""
        if status not in ("passed", "failed", "skipped"):
            raise ValueError(f"check status must be passed, failed or skipped (got {status!r})")
        entry = {"name": name, "status": status, "detail": detail, **data}
        self.checks.append(entry)
        return entry

    def skip(self, name: str, reason: str) -> None:
        self.check(name, "skipped", reason)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks don't count either way)."""
        return all(check["status"] != "failed" for check in self.checks)


# --- what a target gets ------------------------------------------------------------------------------


@dataclass
class ExportContext:
    """Everything a target needs: the model, where to write, the shared options and the report.

    Attributes:
        workspace: The workspace the model comes from.
        model: The resolved model or run.
        output: The staging folder to write into (renamed to `final` when the target returns).
        final: Where the export will live; use it for absolute paths written into files.
        report: Checks, warnings and details, written as export_report.json.
        check: Run the parity checks (off: each is reported as skipped).
        prompts: User prompts for the parity checks (default: the user turns of the run's test split).
        max_new_tokens: Greedy tokens generated per prompt in the parity checks.
        progress: Where a target says what it is doing (merging, converting, checking).
    """

    workspace: Workspace
    model: ModelRef
    output: Path
    final: Path
    report: Report
    check: bool = True
    prompts: Sequence[str] | None = None
    max_new_tokens: int = 24
    progress: Progress = SILENT

    @property
    def label(self) -> str:
        """The model's name in file names and module names: `acme-v1`, or the run id."""
        return f"{self.model.name}-{self.model.version}" if self.model.version else self.model.name


@dataclass(frozen=True)
class TargetOption:
    """One option of an export target, read from the target's signature and its docstring's `Args:`.

    The CLI builds `tailorlm export <target> --<option>` from these, so a new keyword argument of a
    target is reachable from the command line without editing the CLI.
    """

    name: str
    annotation: Any
    default: Any
    help: str

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values when the option is a `Literal` (or a sequence of one), else ()."""
        inner = _without_none(self.annotation)
        if typing.get_origin(inner) in (Sequence, list, tuple, typing.Sequence):
            inner = typing.get_args(inner)[0]
        return tuple(typing.get_args(inner)) if typing.get_origin(inner) is typing.Literal else ()

    @property
    def many(self) -> bool:
        """True when the option takes several values (a sequence)."""
        return typing.get_origin(_without_none(self.annotation)) in (Sequence, list, tuple, typing.Sequence)


def _without_none(annotation: Any) -> Any:
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        return arguments[0] if len(arguments) == 1 else annotation
    return annotation


def documented(docstring: str | None, section: str = "Args") -> dict[str, str]:
    """The descriptions in a Google-style docstring section: `{"dtype": "Precision of ..."}`."""
    found: dict[str, str] = {}
    inside, current = False, None
    for line in inspect.cleandoc(docstring or "").splitlines():
        if line and not line[0].isspace():
            inside, current = line.strip() == f"{section}:", None
            continue
        entry = re.match(r"^\s{4}(\w+)(?: \(.*?\))?:\s*(.*)$", line)
        if inside and entry:
            current = entry[1]
            found[current] = entry[2].strip()
        elif inside and current and line.strip():
            found[current] += " " + line.strip()
    return found


def shared_options() -> list[TargetOption]:
    """Options every target accepts (`check`, `prompts`, `max_new_tokens`), from `ExportContext`."""
    hints = typing.get_type_hints(ExportContext)
    helps = documented(ExportContext.__doc__, "Attributes")
    return [
        TargetOption(f.name, hints[f.name], f.default, helps.get(f.name, ""))
        for f in dataclasses.fields(ExportContext)
        if f.default is not dataclasses.MISSING
    ]


@dataclass(frozen=True)
class Target:
    name: str
    folder: str
    description: str
    function: Callable[..., None]

    def parameters(self) -> list[TargetOption]:
        """The target's own options: its keyword-only arguments, typed and documented."""
        hints = typing.get_type_hints(self.function)
        helps = documented(self.function.__doc__)
        return [
            TargetOption(p.name, hints.get(p.name, Any), p.default, helps.get(p.name, ""))
            for p in inspect.signature(self.function).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]

    def options(self) -> list[str]:
        return [option.name for option in self.parameters()]


TARGETS: dict[str, Target] = {}


def target(name: str, *, folder: str | None = None, description: str = "") -> Callable:
    """Register an export target: a function ``(context, *, option=default, ...) -> None`` that writes
    its files into ``context.output``. `folder` names its sub-folder under exports/<model>/."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        doc = (function.__doc__ or "").strip().splitlines()
        TARGETS[name] = Target(name, folder or name, description or (doc[0] if doc else ""), function)
        return function

    return register


def available_targets() -> list[str]:
    return sorted(TARGETS)


# --- the verb ---------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    """Where the export is, what it wrote (relative paths, sorted) and its report."""

    path: Path
    files: list[Path]
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.report.get("passed", True))


def export(
    workspace: Workspace,
    model_ref: str,
    target: str,
    *,
    output: Path | None = None,
    progress: Progress = SILENT,
    **options: Any,
) -> ExportResult:
    """Export a registered model (`name`, `name@vN`) or a complete run (`run-...`) as `target`.

    Args:
        workspace: The workspace holding the model.
        model_ref: A registered model name, `name@version`, model id, or a run id.
        target: One of `available_targets()`: merge, gguf, ollama, vllm.
        output: Folder to write; default ``<workspace>/exports/<model>/<target folder>``. An existing
            folder is replaced only if it is empty or an earlier export (it has export_report.json).
        progress: Told each step of the export (merge, conversion, checks) as it starts.
        **options: Shared options `check` (bool), `prompts` (list of user prompts), `max_new_tokens`
            (int), and the target's own (see `TARGETS[target].options()` and docs/export.md).

    Returns:
        The export's folder, the files in it and the report (also in export_report.json).

    Raises:
        ExportError: unknown target or option, a model or run that can't be exported (the message
            says why). Nothing is written then.
    """
    offline.enforce()
    chosen = TARGETS.get(target)
    if chosen is None:
        raise ExportError(f"unknown export target {target!r}; choose one of {', '.join(available_targets())}")
    shared_names = [option.name for option in shared_options()]
    shared = {key: options.pop(key) for key in shared_names if key in options}
    unknown = sorted(set(options) - set(chosen.options()))
    if unknown:
        accepted = ", ".join([*shared_names, *chosen.options()])
        raise ExportError(f"unknown option {', '.join(unknown)} for export target {target!r}; accepted: {accepted}")
    if "max_new_tokens" in shared and int(shared["max_new_tokens"]) <= 0:
        raise ExportError(f"max_new_tokens must be > 0 (got {shared['max_new_tokens']})")
    if isinstance(shared.get("prompts"), str):
        shared["prompts"] = [shared["prompts"]]

    require_release(workspace, model_ref, verb="export")
    model = load_model_ref(workspace, model_ref)
    from tailorlm.classifier import is_classifier

    if is_classifier(model.artifact_dir):
        from tailorlm.export.classifier import refuse_unless_merge

        refuse_unless_merge(model_ref, target)
    label = f"{model.name}-{model.version}" if model.version else model.name
    final = Path(output).expanduser().resolve() if output else export_dir(workspace, label, chosen.folder)
    check_replaceable(final)

    report = Report()
    started = datetime.now(UTC)
    created = [p for p in (final.parent, final.parent.parent) if not p.exists()]  # made by staging
    try:
        with workspace.staging(final) as staging:
            context = ExportContext(workspace, model, staging, final, report, **shared, progress=progress)
            progress.say(f"exporting {model_ref} as {target} to {final}")
            chosen.function(context, **options)
            files = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
            summary = {
                "target": target,
                "model": model_ref,
                "name": model.name,
                "version": model.version,
                "run": model.run_id,
                "base_model": str(model.base_model),
                "method": model.method,
                "adapter": model.is_adapter,
                "path": str(final),
                "created_at": started.isoformat(timespec="seconds"),
                "seconds": round((datetime.now(UTC) - started).total_seconds(), 2),
                "passed": report.passed,
                "checks": report.checks,
                "warnings": report.warnings,
                **report.details,
                "files": [
                    {"path": f.as_posix(), "bytes": (staging / f).stat().st_size, "sha256": sha256_file(staging / f)}
                    for f in files
                ],
            }
            atomic_write_json(staging / REPORT_FILE, summary)
    except BaseException:
        for folder in created:  # nothing half-written: not even an empty folder
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    inputs = [model.run_id] if model.version is None else [f"model-{model.name}-{model.version}", model.run_id]
    workspace.audit.append(
        "export",
        inputs=inputs,
        outputs=[str(final)],
        target=target,
        passed=report.passed,
        failed=[c["name"] for c in report.checks if c["status"] == "failed"],
    )
    return ExportResult(final, [*files, Path(REPORT_FILE)], json.loads((final / REPORT_FILE).read_text("utf-8")))


def load_model_ref(workspace: Workspace, reference: str) -> ModelRef:
    """The model or run to export, or an ExportError saying why it can't be."""
    try:
        model = resolve_model(workspace, reference)
    except NotFound as error:
        raise ExportError(str(error), hint=error.hint) from None
    except KeyError:
        raise ExportError(f"no run {reference!r} in this workspace (see `tailorlm runs`)") from None
    if not model.artifact_dir.is_dir():
        raise ExportError(f"{reference}: its trained weights are missing ({model.artifact_dir} does not exist)")
    if model.is_adapter and not model.base_model.is_dir():
        raise ExportError(
            f"{reference}: base model directory not found: {model.base_model} (the adapter "
            "needs the base it was trained on)"
        )
    return model


def export_dir(workspace: Workspace, label: str, folder: str) -> Path:
    """``<workspace>/exports/<model>/<folder>``, the default place of an export."""
    return workspace.export_dir(label) / folder


def check_replaceable(final: Path) -> None:
    """Refuse to replace a folder that is neither empty nor an earlier export (it would be deleted)."""
    if final.is_file():
        raise ExportError(f"output {final} is a file; give a folder")
    if final.is_dir() and any(final.iterdir()) and not (final / REPORT_FILE).is_file():
        raise ExportError(
            f"output folder {final} is not empty and is not an earlier export; choose a new or "
            "empty folder (it would be replaced)"
        )
