"""`serve()` as the CLI runs it: a separate process on a loopback port, answering with keys, taking a
`deploy()`, and shutting down cleanly on Ctrl-C with the start and stop in the audit log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from helpers.serve import openai_client, trained_workspace_root
from tailorlm.serve import deploy, wait_until_healthy
from tailorlm.serve.auth import create_key
from tailorlm.workspace import Workspace

pytestmark = pytest.mark.integration

SERVER = """
import sys
from pathlib import Path
from tailorlm.serve import serve
from tailorlm.workspace import Workspace
serve(Workspace(Path(sys.argv[1])), models=["acme"], port=int(sys.argv[2]), max_tokens_cap=8, threads=1)
"""


def test_serve_runs_until_interrupted(tmp_path_factory, tiny_model_dir):
    root = trained_workspace_root(tmp_path_factory, tiny_model_dir)
    workspace = Workspace(root)
    _, chat = create_key(workspace, "chat", name="process test")
    _, admin = create_key(workspace, "admin", name="process test admin")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(root), str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_healthy(url, process=server, timeout=120)
        answer = openai_client(url, chat).chat.completions.create(
            model="acme", messages=[{"role": "user", "content": "Where is my order?"}], max_tokens=100
        )
        assert answer.usage.completion_tokens <= 8
        assert deploy(workspace, "canary=support", url=url, admin_key=admin)["name"] == "canary"
        assert [m.id for m in openai_client(url, chat).models.list().data] == ["base", "acme", "canary"]
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
    actions = [event["action"] for event in workspace.audit.events()]
    assert {"serve.start", "serve.adapter.load", "deploy", "serve.stop"} <= set(actions)
    workspace.close()


BASE_SERVER = """
import sys
from pathlib import Path
from tailorlm.serve import serve
from tailorlm.workspace import Workspace
serve(Workspace(Path(sys.argv[1])), models=[], base_model=Path(sys.argv[3]), port=int(sys.argv[2]), threads=1)
"""


def test_the_console_log_never_shows_a_key(tmp_path, tiny_model_dir):
    """Keys sent where they don't belong (query string, path, a header) are redacted in every line the
    real server prints, its access log included, and the registry it wrote is private."""
    import httpx2

    workspace = Workspace(tmp_path / "ws")
    _, key = create_key(workspace, "chat", name="leaky client")
    secret = key.split("_", 2)[2]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-c", BASE_SERVER, str(workspace.root), str(port), str(tiny_model_dir)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_healthy(url, process=server, timeout=120)
        with httpx2.Client(base_url=url, timeout=60) as http:
            assert http.get(f"/v1/models?api_key={key}").status_code == 401  # refused, and logged
            assert (
                http.get(f"/v1/models?x=1&token={key}", headers={"authorization": f"Bearer {key}"}).status_code == 200
            )
            assert http.get(f"/v1/models/{key}", headers={"authorization": f"Bearer {key}"}).status_code == 404
            assert http.get("/v1/models", headers={"authorization": f"Bearer {key}x"}).status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "GET /v1/models?api_key=[REDACTED]" in output and "401" in output
    assert "token=[REDACTED]" in output
    assert secret not in output
    assert oct(os.stat(workspace.registry.path).st_mode & 0o777) == "0o600"
    workspace.close()
