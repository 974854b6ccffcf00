"""The audit trail: `audit verify` names the first edited, deleted or swapped line; HMAC signing with a key
outside the workspace; a missing key, a tampered file and a registry from a newer TailorLM get clear
messages and lose nothing."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailorlm.audit import AuditError, AuditLog
from tailorlm.cli import app
from tailorlm.registry.store import NewerSchema
from tailorlm.workspace import Workspace

runner = CliRunner()


def tailorlm(*args: object, **env: str):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", "COLUMNS": "200", **env})


def five_events(ws: Workspace) -> list[str]:
    for number in range(5):
        ws.audit.append(f"step{number}", inputs=[f"in-{number}"], outputs=[f"out-{number}"])
    return ws.audit.path.read_text(encoding="utf-8").splitlines()


def write(ws: Workspace, lines: list[str]) -> None:
    ws.audit.path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_verify_names_the_first_edited_deleted_or_swapped_line(workspace: Workspace) -> None:
    lines = five_events(workspace)
    assert workspace.audit.verify().ok
    root = workspace.root

    edited = json.loads(lines[2])
    edited["user"] = "mallory"
    write(workspace, [*lines[:2], json.dumps(edited), *lines[3:]])
    result = tailorlm("audit", "verify", "-w", root)
    assert result.exit_code == 1
    assert "audit.jsonl line 3: content does not match its hash (edited)" in result.output

    write(workspace, [*lines[:1], *lines[2:]])  # line 2 deleted
    verdict = workspace.audit.verify()
    assert (verdict.ok, verdict.line) == (False, 2) and "previous-hash link broken" in verdict.message

    write(workspace, [lines[0], lines[1], lines[3], lines[2], lines[4]])  # lines 3 and 4 swapped
    assert workspace.audit.verify().line == 3

    write(workspace, [*lines[:4], "{not json", lines[4]])
    verdict = workspace.audit.verify()
    assert verdict.line == 5 and "not an audit event" in verdict.message
    # The plain verb still verifies first, prints the verdict and exits 1; nothing is rewritten.
    before = workspace.audit.path.read_bytes()
    shown = tailorlm("audit", "-w", root, "--json")
    assert shown.exit_code == 1 and json.loads(shown.stdout)["line"] == 5
    assert workspace.audit.path.read_bytes() == before

    write(workspace, lines)
    assert tailorlm("audit", "verify", "-w", root).exit_code == 0


def test_signed_log_needs_its_key(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = AuditLog.keygen(tmp_path / "keys" / "audit.key")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    workspace.audit.append("unsigned.before")
    monkeypatch.setenv("TAILORLM_AUDIT_KEY_FILE", str(key))
    lines = five_events(workspace)
    assert all("hmac" in json.loads(line) for line in lines[1:])
    verdict = workspace.audit.verify()
    assert verdict.ok and verdict.signed and "signed from line 2" in verdict.message

    # Someone who can write the workspace but not read the key edits line 4 and re-chains every line after it.
    forged = [json.loads(line) for line in lines]
    forged[3]["details"] = {"note": "nothing happened"}
    from tailorlm.audit import _line_hash

    for index in range(3, len(forged)):
        forged[index]["prev"] = forged[index - 1]["hash"]
        forged[index]["hash"] = _line_hash(forged[index])
    write(workspace, [json.dumps(event) for event in forged])
    verdict = workspace.audit.verify()
    assert verdict.line == 4 and "HMAC does not match" in verdict.message

    # An unsigned line after signed ones is refused too.
    write(workspace, lines)
    monkeypatch.delenv("TAILORLM_AUDIT_KEY_FILE")
    with pytest.raises(AuditError, match="line 2 is signed \\(HMAC\\) but no key is configured"):
        workspace.audit.verify()
    result = tailorlm("audit", "verify", "-w", workspace.root)
    assert result.exit_code == 1 and "no key is configured" in result.output and "Traceback" not in result.output

    # A configured key that is missing: appending is refused, nothing written.
    monkeypatch.setenv("TAILORLM_AUDIT_KEY_FILE", str(tmp_path / "gone.key"))
    before = workspace.audit.path.read_bytes()
    with pytest.raises(AuditError, match="audit key file not found"):
        workspace.audit.append("anything")
    assert workspace.audit.path.read_bytes() == before

    # A key inside the workspace protects nothing.
    inside = AuditLog.keygen(workspace.root / "audit.key")
    monkeypatch.setenv("TAILORLM_AUDIT_KEY_FILE", str(inside))
    with pytest.raises(AuditError, match="inside the workspace"):
        workspace.audit.append("anything")


def test_key_file_from_the_project_file(workspace: Workspace, tmp_path: Path) -> None:
    key = AuditLog.keygen(tmp_path / "audit.key")
    workspace.project_file.write_text(f"project: p\nbase_model: /m\ngovernance: {{audit_key_file: {key}}}\n")
    event = workspace.audit.append("signed")
    assert "hmac" in event and workspace.audit.verify().signed


def test_show_since_and_who(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILORLM_USER", "api-key:tlm_abc")
    five_events(workspace)
    lines = workspace.audit.path.read_text().splitlines()
    old = json.loads(lines[0])
    old["time"] = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    old.pop("hmac", None)
    from tailorlm.audit import _line_hash

    events = [old, *map(json.loads, lines[1:])]
    for index, event in enumerate(events):
        event["prev"] = events[index - 1]["hash"] if index else "0" * 64
        event["hash"] = _line_hash(event)
    write(workspace, [json.dumps(e) for e in events])
    shown = json.loads(tailorlm("audit", "show", "--since", "7d", "--json", "-w", workspace.root).stdout)
    assert [e["action"] for e in shown] == ["step1", "step2", "step3", "step4"]
    assert {(e["user"], e.get("os_user") is not None) for e in shown} == {("api-key:tlm_abc", True)}
    assert (
        len(json.loads(tailorlm("audit", "show", "--since", "2000-01-01", "--json", "-w", workspace.root).stdout)) == 5
    )
    bad = tailorlm("audit", "show", "--since", "last tuesday", "-w", workspace.root)
    assert bad.exit_code == 1 and "neither a date nor a duration" in bad.output


def test_registry_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.close()
    database = tmp_path / "ws" / "tailorlm.db"
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO schema_migrations VALUES (999, 'm999_future', '2030-01-01')")
    connection.close()
    before = database.read_bytes()
    with pytest.raises(NewerSchema, match="newer TailorLM \\(registry schema 999"):
        Workspace(tmp_path / "ws")
    result = tailorlm("runs", "-w", tmp_path / "ws")
    assert result.exit_code == 1 and "upgrade TailorLM" in result.output and "Traceback" not in result.output
    assert database.read_bytes() == before
