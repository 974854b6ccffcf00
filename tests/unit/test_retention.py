"""`tailorlm gc`: the retention in the project file removes old request-log rows, ingested documents and
intermediates (never datasets, weights or models), says what with --dry-run first, and audits it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from typer.testing import CliRunner

from tailorlm.cli import app
from tailorlm.registry import Artifact, RunMeta
from tailorlm.workspace import Workspace

runner = CliRunner()
DAY = 86_400


def age(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when))


def test_gc_applies_the_retention_and_audits_it(workspace: Workspace) -> None:
    ws = workspace
    ws.project_file.write_text(
        "project: p\nbase_model: /m\nserve: {log_retention_days: 7}\n"
        "governance: {retention: {documents_days: 30, intermediates_days: 3}}\n"
    )
    for days in (1, 10):  # request log: one row kept, one old
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - days * DAY))
        ws.registry.execute(
            "INSERT INTO request_log (time, endpoint, status, latency_ms) VALUES (?, '/v1/chat/completions', 200, 1)",
            (moment,),
        )
    old_doc, new_doc = ws.documents_file("a" * 64), ws.documents_file("b" * 64)
    for file, days in ((old_doc, 40), (new_doc, 2)):
        file.write_text('{"text": "hello"}\n')
        age(file, days)
    run_dir = ws.run_dir("run-1")
    (run_dir / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_bytes(b"x" * 1000)
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"w" * 100)
    age(run_dir, 5)
    ws.registry.add(
        Artifact(
            id="run-1",
            kind="run",
            name="p",
            hash="h",
            path="runs/run-1",
            meta=RunMeta(method="lora", base_model="/m", dataset="dataset-p-v1"),
        )
    )
    staging = ws.root / "models" / ".v1.abc.staging"
    staging.mkdir(parents=True)
    age(staging, 5)

    preview = runner.invoke(app, ["gc", "--dry-run", "--json", "-w", str(ws.root)])
    assert preview.exit_code == 0, preview.output
    planned = json.loads(preview.stdout)
    assert planned["request_log_rows"] == 1 and planned["documents"] == [ws.relative(old_doc)]
    assert planned["checkpoints"] == ["runs/run-1/checkpoints"] and planned["staging"] == ["models/.v1.abc.staging"]
    assert old_doc.exists() and (run_dir / "checkpoints").exists()  # nothing removed yet
    assert not any(e["action"] == "gc" for e in ws.audit.events())

    done = runner.invoke(app, ["gc", "-w", str(ws.root)], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "removed 1 request-log row(s)" in done.output
    assert not old_doc.exists() and new_doc.exists()
    assert not (run_dir / "checkpoints").exists() and (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert not staging.exists()
    assert ws.registry.execute("SELECT COUNT(*) FROM request_log").fetchone()[0] == 1
    event = ws.audit.events()[-1]
    assert event["action"] == "gc" and ws.relative(old_doc) in event["outputs"] and event["details"]["bytes"] > 1000
    assert ws.audit.verify().ok


def test_gc_keeps_everything_without_a_retention(workspace: Workspace) -> None:
    workspace.documents_file("c" * 64).write_text("{}\n")
    age(workspace.documents_file("c" * 64), 400)
    result = runner.invoke(app, ["gc", "--json", "-w", str(workspace.root)])
    removal = json.loads(result.stdout)
    assert removal["documents"] == [] and set(removal["kept"]) == {"documents", "intermediates"}
    assert workspace.documents_file("c" * 64).exists()
