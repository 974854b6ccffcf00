"""Data sovereignty verbs: `doctor` (the air-gap guard, the allowlist, the audit log's state)."""

from __future__ import annotations

from typing import Any

from tailorlm import offline
from tailorlm.cli import app
from tailorlm.cli.common import JsonOption, ProjectOption, WorkspaceOption, _project, _workspace, command
from tailorlm.errors import UserError
from tailorlm.output import console, print_json, print_table


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
    ]
    print_table(["check", "", "state"], rows)
    if guard["attempts"]:
        console.print(f"[yellow]{len(guard['attempts'])} outgoing connection(s) tried in this process[/]")
