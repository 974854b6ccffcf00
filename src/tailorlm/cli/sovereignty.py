"""Data sovereignty verbs: `doctor` (the air-gap guard, the allowlist, the audit log's state) and the
`subject` requests (find, erase)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tailorlm import offline
from tailorlm.cli import app
from tailorlm.cli.common import JsonOption, ProjectOption, WorkspaceOption, _project, _workspace, command
from tailorlm.errors import UserError
from tailorlm.output import console, print_json, print_table

if TYPE_CHECKING:
    from tailorlm.subjects import SubjectReport


@app.command()
@command
def doctor(workspace: WorkspaceOption = None, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Show what keeps the data in: the socket guard and its allowlist, the offline and telemetry variables,
    the audit log (chain, signing key), the approval rule and the registry's schema.

    \b
    Example:
      tailorlm doctor --workspace ws
    """
    ws = _workspace(workspace)
    _project(ws, project, required=False, base_model=False)  # its allow_hosts join the guard's allowlist
    guard = offline.state()
    report: dict[str, Any] = {"guard": guard, "workspace": str(ws.root)}
    try:
        verdict = ws.audit.verify()
        report["audit"] = {"intact": verdict.ok, "message": verdict.message, "signed": verdict.signed}
    except UserError as error:
        report["audit"] = {"intact": False, "message": error.message, "signed": None}
    key = ws.audit.key_file()
    report["audit"]["key_file"] = str(key) if key else None
    report["audit"]["key_present"] = bool(key and key.is_file())
    report["approval"] = ws.governance_setting("approval") or "off"
    report["registry_schema"] = ws.registry.schema_version
    from tailorlm.pii.ner import PIPELINES, installed

    report["person_names"] = {language: str(path) for language, path in installed().items()}
    if as_json:
        print_json(report)
        return
    mark = {True: "[green]ok[/]", False: "[red]NO[/]"}
    rows = [
        ["socket guard", mark[guard["installed"]], "installed: outgoing connections beyond loopback are refused"],
        ["allowlist", "", ", ".join(guard["allow_hosts"]) or "(none: loopback only)"],
        ["offline + telemetry variables", mark[guard["variables_ok"]], ", ".join(sorted(guard["variables"]))],
        ["audit chain", mark[report["audit"]["intact"]], report["audit"]["message"]],
        [
            "audit signing key",
            mark[report["audit"]["key_present"]] if key else "",
            str(key)
            if key
            else "not configured (governance.audit_key_file): the chain shows edits, a key shows re-chained ones",
        ],
        ["approval", "", f"{report['approval']} (governance.approval)"],
        ["registry schema", "", str(report["registry_schema"])],
        [
            "person-name detection",
            mark[bool(report["person_names"])],
            ", ".join(f"{lang}: {Path(path).name}" for lang, path in report["person_names"].items())
            or f"no spaCy pipeline installed ({', '.join(PIPELINES)}): names stay in the data; "
            "pip install --no-deps --require-hashes -r requirements/ner-models.txt",
        ],
    ]
    print_table(["check", "", "state"], rows)
    if guard["attempts"]:
        console.print(f"[yellow]{len(guard['attempts'])} outgoing connection(s) tried in this process[/]")


# --- data-subject requests ---------------------------------------------------------------------------

subject_app = typer.Typer(
    help="Data-subject requests (GDPR Arts. 15, 17): find what involves a person, erase it.", no_args_is_help=True
)
app.add_typer(subject_app, name="subject")

IdentifierArgument = Annotated[str, typer.Argument(help="The person: an e-mail address, a full name or an ID.")]


def _print_find(report: SubjectReport) -> None:
    console.print(f"request {report.subject} (the identifier itself is not stored)", highlight=False)
    print_table(["source file", "where"], [[hit.path, hit.locator or "(whole file)"] for hit in report.documents])
    print_table(
        ["dataset", "examples", "named in clear"],
        [[hit.dataset, hit.count, hit.in_clear] for hit in report.datasets],
    )
    if report.models:
        console.print("models trained on them: " + ", ".join(report.models), highlight=False)


@subject_app.command("find")
@command
def subject_find(
    identifier: IdentifierArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Which source documents, examples, datasets and models involve a person (also once redacted).

    \b
    Example:
      tailorlm subject find "jane.doe@example.com" --workspace ws
    """
    from tailorlm.subjects import find

    report = find(_workspace(workspace), identifier)
    if as_json:
        print_json(report.to_json())
    elif report.empty:
        console.print(f"nothing matches ({report.subject})", highlight=False)
    else:
        _print_find(report)


@subject_app.command("erase")
@command
def subject_erase(
    identifier: IdentifierArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Don't ask for confirmation.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase a person: new dataset versions without their examples, their documents out of the workspace,
    models trained on them marked needs-retraining (a model does not forget). Exit 1 when nothing matches.

    \b
    Example:
      tailorlm subject erase "jane.doe@example.com" --yes --workspace ws
    """
    from tailorlm.subjects import erase, find

    ws = _workspace(workspace)
    if not yes:
        found = find(ws, identifier)
        if not found.empty:
            _print_find(found)
        if not found.empty and not typer.confirm("Erase these from the workspace?"):
            raise typer.Abort()
    result = erase(ws, identifier)
    if as_json:
        print_json(result.to_json())
        return
    for old, new in result.new_datasets.items():
        console.print(f"{old} → [bold]{new}[/] without the person's examples", highlight=False)
    console.print(f"{result.documents_removed} document(s) removed from the workspace's document store")
    for model in result.models_marked:
        console.print(
            f"[yellow]{model}: needs-retraining[/] — it was trained on the erased examples and is not anonymous by "
            "default; retrain it on the new dataset version",
            highlight=False,
        )
    if result.older_versions:
        console.print("older versions still holding them: " + ", ".join(result.older_versions), highlight=False)
    if result.find.source_files:
        console.print(
            "the source files still hold the person (not TailorLM's to change): " + ", ".join(result.find.source_files),
            highlight=False,
        )


# --- compliance documents ----------------------------------------------------------------------------

docs_app = typer.Typer(help="Compliance documents generated from the registry.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@docs_app.command("build")
@command
def docs_build(
    workspace: WorkspaceOption = None,
    output: Annotated[
        Path | None, typer.Option(help="Folder to write (default <workspace>/compliance/), replaced whole.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write MODEL_CARD.md per model, DATASHEET.md per dataset, an EU AI Act Annex IV draft and a GDPR
    Art. 30 record, from the registry; what it cannot know is marked TO FILL.

    \b
    Example:
      tailorlm docs build --workspace ws
    """
    from tailorlm.compliance import build

    built = build(_workspace(workspace), output)
    if as_json:
        print_json({"folder": str(built.folder), "files": [str(f) for f in built.files]})
        return
    for file in built.files:
        console.print(str(file), highlight=False)
    console.print(f"{len(built.files)} document(s) in {built.folder}; fill the lines marked TO FILL", highlight=False)


# --- retention ---------------------------------------------------------------------------------------


@app.command("gc")
@command
def gc(
    workspace: WorkspaceOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply the retention (governance.retention, serve.log_retention_days): remove old request-log rows,
    ingested documents and intermediates (checkpoints of complete runs, staging leftovers, caches); audited.

    \b
    Example:
      tailorlm gc --dry-run --workspace ws
    """
    from tailorlm.retention import gc as run_gc

    removal = run_gc(_workspace(workspace), dry_run=dry_run)
    if as_json:
        print_json(removal.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {removal.request_log_rows} request-log row(s)", highlight=False)
    for kind in ("documents", "checkpoints", "staging", "cache"):
        paths = getattr(removal, kind)
        if paths:
            console.print(f"{verb} {len(paths)} {kind}: " + ", ".join(paths), highlight=False)
    for kind, why in removal.kept.items():
        console.print(f"kept {kind}: {why}", highlight=False)
    console.print(f"{removal.bytes / 1e6:.1f} MB {'to free' if dry_run else 'freed'}", highlight=False)
