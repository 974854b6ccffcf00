"""The air-gap guard: its decision on addresses (tested directly, so no packet leaves even if the guard were
broken), a real `connect()` refused on a loopback port the allowlist excludes (named, with the code path,
and audited), the offline/telemetry variables, and `tailorlm doctor`."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tailorlm import offline
from tailorlm.cli import app
from tailorlm.workspace import Workspace


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("127.0.0.1", 8000, True),
        ("127.8.9.10", None, True),
        ("::1", 443, True),
        ("[::1]", 443, True),
        ("localhost", 80, True),
        ("10.0.0.5", 8000, False),
        ("203.0.113.7", 443, False),
        ("2001:db8::1", 443, False),
        ("huggingface.co", 443, False),
        ("llm.internal", 8000, True),  # allowlisted by name
        ("192.0.2.10", 8000, True),  # allowlisted as host:port ...
        ("192.0.2.10", 8001, False),  # ... that port only
        ("192.0.2.11", 9, True),  # allowlisted address, any port
    ],
)
def test_decision_on_addresses(host: str, port: int | None, allowed: bool) -> None:
    with offline.policy(hosts=["llm.internal", "192.0.2.10:8000", "192.0.2.11"]):
        assert offline.decide(host, port) is allowed


@pytest.fixture
def listeners() -> Iterator[tuple[int, int]]:
    """Two loopback ports that accept connections: so if the guard let the refused one through, the connect
    would still stay on this machine."""
    sockets = []
    for _ in range(2):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        sockets.append(server)
    yield sockets[0].getsockname()[1], sockets[1].getsockname()[1]
    for server in sockets:
        server.close()


def test_refused_connect_is_named_and_audited(listeners: tuple[int, int], workspace: Workspace, tmp_path) -> None:
    allowed_port, refused_port = listeners
    offline.enforce()
    offline.report_to(workspace.audit.append)
    trace = tmp_path / "trace.jsonl"
    os.environ[offline.TRACE_ENV] = str(trace)
    before = len(offline.attempts)
    try:
        with offline.policy(loopback=False, hosts=[f"127.0.0.1:{allowed_port}"]):
            with socket.create_connection(("127.0.0.1", allowed_port), timeout=2):
                pass
            with socket.socket() as sock, pytest.raises(offline.NetworkRefused) as refused:
                sock.connect(("127.0.0.1", refused_port))
            with socket.socket() as sock, pytest.raises(offline.NetworkRefused):
                sock.connect_ex(("127.0.0.1", refused_port))
    finally:
        del os.environ[offline.TRACE_ENV]
    message = str(refused.value)
    assert f"127.0.0.1:{refused_port} refused" in message
    assert "test_offline.py" in message and "test_refused_connect_is_named_and_audited" in message
    tried = offline.attempts[before:]
    assert [(a["port"], a["allowed"]) for a in tried] == [
        (allowed_port, True),
        (refused_port, False),
        (refused_port, False),
    ]
    assert [json.loads(line)["port"] for line in trace.read_text().splitlines()] == [a["port"] for a in tried]
    events = [e for e in workspace.audit.events() if e["action"] == "network.refused"]
    assert len(events) == 2 and events[0]["details"]["port"] == refused_port
    assert "test_offline.py" in events[0]["details"]["where"]
    assert workspace.audit.verify().ok


def test_every_entry_point_sets_offline_and_telemetry_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in offline.OFFLINE_ENV:
        monkeypatch.delenv(key, raising=False)
    offline.enforce()
    state = offline.state()
    assert state["installed"] and state["variables_ok"]
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "MLFLOW_DISABLE_TELEMETRY"):
        assert os.environ[key] in ("1", "true")


def test_doctor_shows_the_guard_and_the_allowlist(tmp_path) -> None:
    root = tmp_path / "ws"
    Workspace(root).close()
    (root / "tailorlm.yaml").write_text("project: p\nbase_model: /m\nallow_hosts: [llm.internal:8000]\n")
    result = CliRunner().invoke(app, ["doctor", "-w", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["guard"]["installed"] and "llm.internal:8000" in report["guard"]["allow_hosts"]
    assert report["guard"]["variables"]["HF_HUB_OFFLINE"] == "1"
    text = CliRunner().invoke(app, ["doctor", "-w", str(root)], env={"COLUMNS": "200"}).stdout
    assert "socket guard" in text and "llm.internal:8000" in text
