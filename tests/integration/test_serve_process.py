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
