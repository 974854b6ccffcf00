"""`tailorlm serve` stopped by SIGTERM (what Slurm, Kubernetes and systemd send) shuts down cleanly and
writes `serve.stop` to the audit log, as Ctrl-C does."""

from __future__ import annotations

import signal
import socket

import pytest

from helpers.chaos import Chaos, Kill
from helpers.serve import trained_workspace_root
from tailorlm.serve import wait_until_healthy
from tailorlm.workspace import Workspace

pytestmark = pytest.mark.chaos


def test_sigterm_stops_serve_with_its_audit_event(tmp_path_factory, tiny_model_dir, tmp_path):
    root = trained_workspace_root(tmp_path_factory, tiny_model_dir)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chaos = Chaos(tmp_path / "logs")
    argv = ["serve", "--workspace", str(root), "--model", "acme", "--port", str(port), "--no-auth", "--threads", "1"]
    events_before = len(Workspace(root).audit.events())

    healthy = Kill(signal.SIGTERM, ready=lambda: wait_until_healthy(f"http://127.0.0.1:{port}", timeout=120))
    attempt = chaos.run(argv, healthy, timeout=180)
    assert attempt.killed and attempt.exit_code == 0, attempt.log
    actions = [event["action"] for event in Workspace(root).audit.events()[events_before:]]
    assert actions[0] == "serve.start" and actions[-1] == "serve.stop", actions
