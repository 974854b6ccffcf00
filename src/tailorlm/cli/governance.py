"""Governance verbs: `approve` / `reject` (the four-eyes gate), the `audit` group (show, verify, keygen;
plain `tailorlm audit` verifies and shows the last events as before)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from tailorlm.cli import app
from tailorlm.cli.common import JsonOption, WorkspaceOption, _workspace, command
from tailorlm.errors import UserError
from tailorlm.output import console, print_json, print_table

audit_app = typer.Typer(invoke_without_command=True)  # help: the `audit` callback's docstring
app.add_typer(audit_app, name="audit")

UserOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who decides (default $TAILORLM_USER, else the OS user); the OS user is recorded as well.",
        show_default=False,
    ),
]


# --- approval ----------------------------------------------------------------------------------------


def _print_state(state, as_json: bool) -> None:
    if as_json:
        print_json(state.to_json())
        return
    decision = state.decision
    who = f" by {decision.user} ({decision.decided_at})" if decision else ""
    console.print(f"{state.model}: [bold]{state.state}[/]{who}", highlight=False)
    if decision and decision.note:
        console.print(f"  note: {decision.note}", markup=False, highlight=False)
    console.print(
        f"  registered by {state.registered_by or '?'}, trained by {state.trained_by or '?'}; approval "
        f"{'required' if state.required else 'not required'} for serve/export",
        highlight=False,
    )
    for notice in state.notices:
        console.print(f"  [yellow]{notice['notice']}[/]: {notice['reason']}", highlight=False)


@app.command()
@command
def approve(
    model: Annotated[str, typer.Argument(help="Registered model: name, name@version or id.")],
    note: Annotated[str | None, typer.Option(help="What was checked; recorded with the decision.")] = None,
    user: UserOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a model for serve and export (four-eyes: not by whoever trained or registered it).

    \b
    Example:
      tailorlm approve acme-support@v1 --note "eval report read, tone checked" --workspace ws
    """
    from tailorlm.governance import approve as run_approve

    _print_state(run_approve(_workspace(workspace), model, user=user, note=note), as_json)


@app.command()
@command
def reject(
    model: Annotated[str, typer.Argument(help="Registered model: name, name@version or id.")],
    reason: Annotated[str, typer.Option(help="Why; recorded with the decision and shown to whoever serves it.")],
    user: UserOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a model: serve and export refuse it while the project requires approval.

    \b
    Example:
      tailorlm reject acme-support@v2 --reason "quotes a customer's address" --workspace ws
    """
    from tailorlm.governance import reject as run_reject

    _print_state(run_reject(_workspace(workspace), model, user=user, reason=reason), as_json)


@app.command("approval")
@command
def approval(
    model: Annotated[str, typer.Argument(help="Registered model: name, name@version or id.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show whether a model may be served: its decisions, who made them, its notices.

    \b
    Example:
      tailorlm approval acme-support@v1 --workspace ws
    """
    from tailorlm.governance import approval_state

    _print_state(approval_state(_workspace(workspace), model), as_json)


# --- audit -------------------------------------------------------------------------------------------


def _events_table(events: list[dict]) -> None:
    rows = [[e["time"], e["user"], e["action"], ", ".join(map(str, e.get("outputs", [])))] for e in events]
    print_table(["time", "user", "action", "outputs"], rows)


@audit_app.callback()
@command
def audit(
    ctx: typer.Context,
    workspace: WorkspaceOption = None,
    last: Annotated[int, typer.Option(help="How many of the latest events to show (0: all).")] = 15,
    as_json: JsonOption = False,
) -> None:
    """Verify the audit log's hash chain and print its last events (exit 1 when the chain is broken);
    or `audit verify`, `audit show --since`, `audit keygen`.

    \b
    Example:
      tailorlm audit --workspace ws --last 50
    """
    if ctx.invoked_subcommand:
        return
    ws = _workspace(workspace)
    verdict = ws.audit.verify()
    events = ws.audit.events() if verdict.ok else []
    events = events[-last:] if last > 0 else events
    if as_json:
        print_json({"intact": verdict.ok, "message": verdict.message, "line": verdict.line, "events": events})
    else:
        _events_table(events)
        console.print(("[green]" if verdict.ok else "[red]") + verdict.message + "[/]", highlight=False)
    if not verdict.ok:
        raise typer.Exit(1)


@audit_app.command("verify")
@command
def audit_verify(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Check every line of the audit log (hash chain, and HMACs when signed); name the first bad line.

    \b
    Example:
      tailorlm audit verify --workspace ws
    """
    ws = _workspace(workspace)
    verdict = ws.audit.verify()
    if as_json:
        print_json({"intact": verdict.ok, "message": verdict.message, "line": verdict.line, "signed": verdict.signed})
    else:
        console.print(("[green]" if verdict.ok else "[red]") + verdict.message + "[/]", highlight=False)
    if not verdict.ok:
        raise typer.Exit(1)


def parse_since(text: str) -> datetime:
    """`2026-12-01`, `2026-12-01T10:00`, or a duration back from now: `30m`, `12h`, `7d`."""
    text = text.strip()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: float(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--since {text!r} is neither a date nor a duration", hint="e.g. --since 2026-12-01, --since 7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command("show")
@command
def audit_show(
    since: Annotated[
        str | None, typer.Option(help="Only events from then on: a date (2026-12-01) or a duration (12h, 7d).")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, or actions starting with it.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print audit events (who, what, when, inputs, outputs), optionally since a moment.

    \b
    Example:
      tailorlm audit show --since 7d --json --workspace ws
    """
    ws = _workspace(workspace)
    events = ws.audit.since(parse_since(since)) if since else ws.audit.events()
    if action:
        events = [e for e in events if e["action"] == action or e["action"].startswith(action + ".")]
    if as_json:
        print_json(events)
    else:
        _events_table(events)


@audit_app.command("keygen")
@command
def audit_keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the key: outside the workspace, e.g. /etc/tailorlm/.")],
) -> None:
    """Write a new random key for signing the audit log (mode 0600); refuses to overwrite one.

    Point $TAILORLM_AUDIT_KEY_FILE or governance.audit_key_file at it; events from then on carry an HMAC.

    \b
    Example:
      tailorlm audit keygen /etc/tailorlm/audit.key
    """
    from tailorlm.audit import AuditLog

    written = AuditLog.keygen(path)
    console.print(f"Wrote {written}; set governance.audit_key_file: {written} in the project file.", highlight=False)
