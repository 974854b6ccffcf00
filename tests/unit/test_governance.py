"""The four-eyes approval gate: with `governance.approval: required`, serve and export refuse a model until
a user other than the one who trained and registered it approves; rejections carry a reason; both are
in the registry and the audit log. One tiny LoRA run (trained as `alice`) serves every test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers.data import train_registered
from tailorlm.cli import app
from tailorlm.export import export
from tailorlm.governance import ApprovalError, NotApproved, approval_state, approve, reject
from tailorlm.registry import ModelMeta
from tailorlm.workspace import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def governed(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> Path:
    """A workspace whose project requires approval, with `acme@v1` trained and registered by alice."""
    root = tmp_path_factory.mktemp("governed") / "ws"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAILORLM_USER", "alice")
        ws = Workspace(root)
        train_registered(ws, tiny_model_dir, "acme", learning_rate=3e-3, max_steps=2)
        ws.close()
    project = {"project": "acme", "base_model": str(tiny_model_dir), "governance": {"approval": "required"}}
    (root / "tailorlm.yaml").write_text(yaml.safe_dump(project), encoding="utf-8")
    return root


def cli(*args: str, user: str):
    return runner.invoke(app, [str(a) for a in args], env={"TAILORLM_USER": user, "NO_COLOR": "1", "COLUMNS": "200"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serving_waits_for_a_second_person(governed: Path, tmp_path: Path) -> None:
    ws = Workspace(governed)
    try:
        state = approval_state(ws, "acme")
        assert (state.state, state.registered_by, state.trained_by, state.may_release) == (
            "pending",
            "alice",
            "alice",
            False,
        )
        # Refused before anything loads, naming the command to run.
        refused = cli("serve", "-m", "acme", "-w", governed, "--no-auth", user="alice")
        assert refused.exit_code == 1
        assert "serve refused for acme@v1: not approved yet" in refused.output
        assert f"tailorlm approve acme@v1 --workspace {governed}" in refused.output
        with pytest.raises(NotApproved, match="export refused"):
            export(ws, "acme@v1", "merge", output=tmp_path / "merged", check=False)
        assert not (tmp_path / "merged").exists()
        with pytest.raises(NotApproved, match="only registered models"):
            export(ws, ws.resolve("model", "acme").meta_as(ModelMeta).run, "merge", check=False)

        # The one who trained and registered it can't approve it, whatever they call it.
        mine = cli("approve", "acme@v1", "-w", governed, user="alice")
        assert mine.exit_code == 1 and "four-eyes" in mine.output
        with pytest.raises(ApprovalError):
            approve(ws, "model-acme-v1", user="alice")

        # A rejection blocks with its reason; a rejection needs one.
        with pytest.raises(ApprovalError, match="needs a reason"):
            reject(ws, "acme", user="bob", reason=" ")
        assert (
            cli("reject", "acme", "--reason", "quotes a customer's address", "-w", governed, user="bob").exit_code == 0
        )
        refused = cli("serve", "-m", "acme@v1", "-w", governed, "--no-auth", user="carol")
        assert refused.exit_code == 1 and "rejected by bob: quotes a customer's address" in refused.output

        # Bob approves (name form: id); serve and export now accept it.
        approved = cli("approve", "model-acme-v1", "--note", "report read", "-w", governed, user="bob")
        assert approved.exit_code == 0, approved.output
        state = approval_state(ws, "acme@v1")
        assert (state.state, state.decision.user, state.decision.note, len(state.history)) == (
            "approved",
            "bob",
            "report read",
            2,
        )
        result = export(ws, "acme", "merge", output=tmp_path / "merged", check=False)
        assert (result.path / "config.json").is_file()
        events = [e for e in ws.audit.events() if e["action"] in ("approve", "reject")]
        assert [(e["action"], e["user"], e["details"]["registered_by"]) for e in events] == [
            ("reject", "bob", "alice"),
            ("approve", "bob", "alice"),
        ]
        assert ws.audit.verify().ok
    finally:
        ws.close()

    port = free_port()
    env = {**os.environ, "TAILORLM_USER": "alice", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = ["serve", "-m", "acme", "-w", str(governed), "--no-auth", "--port", str(port), "--threads", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tailorlm.cli", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        from tailorlm.serve import wait_until_healthy

        wait_until_healthy(f"http://127.0.0.1:{port}", process=process, timeout=120)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_unknown_model_is_named_and_state_prints_as_json(governed: Path) -> None:
    ws = Workspace(governed)
    try:
        from tailorlm.errors import NotFound

        with pytest.raises(NotFound, match="no model matches acme@v9"):
            approval_state(ws, "acme@v9")
    finally:
        ws.close()
    shown = cli("approval", "acme", "-w", governed, "--json", user="dave")
    assert shown.exit_code == 0 and '"required": true' in shown.output
