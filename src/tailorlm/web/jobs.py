"""Long operations started from the dashboard (prepare, train, evaluate, export) run as background jobs, so
a request never waits on one and a job outlives the page (and the server) that started it.

Each job is a detached `python -m tailorlm.cli ...` process in its own session, its output in
`ui-jobs/<id>/log.txt` and its exit code in `exit_code` when it ends; `job.json` says what it is and who
started it. `start`, `list_jobs`, `get_job`, `cancel` and `log_tail` are the whole interface, so the
dashboard can move onto a shared job queue without its pages changing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tailorlm.errors import NotFound
from tailorlm.registry.store import now
from tailorlm.workspace import Workspace, atomic_write_json, new_id

KINDS = ("prepare", "train", "eval", "export")
ERROR_LINE = re.compile(r"^(error|Error|Traceback|\w+Error):?")


@dataclass
class Job:
    id: str
    kind: str
    argv: list[str]
    user: str
    started_at: str
    pid: int
    status: str = "running"  # running | complete | failed | cancelled
    exit_code: int | None = None
    cancelled_by: str | None = None
    error: str | None = None  # the error lines of its log, when it failed

    @property
    def finished(self) -> bool:
        return self.status != "running"


def start(workspace: Workspace, kind: str, argv: list[str], *, user: str, files: dict[str, str] | None = None) -> Job:
    """Start `tailorlm <argv...> --workspace W` in the background; `files` are written into the job's folder
    first (e.g. a project file with the form's settings) and `{job}` in `argv` names that folder."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; kinds: {', '.join(KINDS)}")
    job_id = new_id("job")
    folder = workspace.ui_job_dir(job_id)
    folder.mkdir(parents=True)
    for name, text in (files or {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    argv = [part.replace("{job}", str(folder)) for part in argv] + ["--workspace", str(workspace.root)]
    command = [sys.executable, "-m", "tailorlm.cli", *argv]
    # sh writes the exit code once the CLI ends, so a job's outcome is known after this server is gone.
    script = '"$@" > "$0/log.txt" 2>&1; echo $? > "$0/exit_code.tmp" && mv "$0/exit_code.tmp" "$0/exit_code"'
    environment = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        ["sh", "-c", script, str(folder), *command],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: cancel stops the whole tree, not the server
        env=environment,
    )
    job = Job(job_id, kind, argv, user, now(), process.pid)
    atomic_write_json(folder / "job.json", asdict(job))
    workspace.audit.append(f"job.{kind}", outputs=[job_id], user=user, argv=argv)
    _children[job_id] = process
    return job


_children: dict[str, subprocess.Popen] = {}  # reaped on status checks, so no zombie is left


def get_job(workspace: Workspace, job_id: str) -> Job:
    folder = workspace.ui_job_dir(job_id)
    if not re.fullmatch(r"job-[\w-]+", job_id) or not (folder / "job.json").is_file():
        raise NotFound(f"no job {job_id!r}")
    job = Job(**json.loads((folder / "job.json").read_text(encoding="utf-8")))
    if job.status == "running":
        _refresh(workspace, job, folder)
    return job


def list_jobs(workspace: Workspace, limit: int = 50) -> list[Job]:
    root = workspace.ui_job_dir("x").parent
    if not root.is_dir():
        return []
    names = sorted((p.name for p in root.iterdir() if (p / "job.json").is_file()), reverse=True)[:limit]
    return [get_job(workspace, name) for name in names]


def cancel(workspace: Workspace, job_id: str, *, user: str, grace: float = 10.0) -> Job:
    """Stop a running job: SIGINT first (training saves and marks its run interrupted), SIGTERM after `grace`."""
    job = get_job(workspace, job_id)
    if job.finished:
        return job
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(job.pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGTERM)
    job.status, job.cancelled_by = "cancelled", user
    atomic_write_json(workspace.ui_job_dir(job_id) / "job.json", asdict(job))
    workspace.audit.append(f"job.{job.kind}.cancel", inputs=[job_id], user=user)
    return job


def log_tail(workspace: Workspace, job_id: str, max_bytes: int = 20_000) -> str:
    get_job(workspace, job_id)
    log = workspace.ui_job_dir(job_id) / "log.txt"
    if not log.is_file():
        return ""
    with log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - max_bytes))
        return handle.read().decode("utf-8", errors="replace")


def describe(job: Job) -> dict[str, Any]:
    return asdict(job)


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _refresh(workspace: Workspace, job: Job, folder: Path) -> None:
    if (process := _children.get(job.id)) is not None and process.poll() is not None:
        _children.pop(job.id, None)
    code_file = folder / "exit_code"
    if code_file.is_file():
        job.exit_code = int(code_file.read_text().strip() or 1)
        job.status = "complete" if job.exit_code == 0 else "failed"
    elif not _alive(job.pid):
        job.status = "failed"  # killed before it could write its exit code
    else:
        return
    if job.status == "failed":
        job.error = _error_of(log_text(folder)) or f"the job exited with code {job.exit_code}"
    atomic_write_json(folder / "job.json", asdict(job))
    workspace.audit.append(f"job.{job.kind}.{job.status}", inputs=[job.id], user=job.user, exit_code=job.exit_code)


def log_text(folder: Path) -> str:
    log = folder / "log.txt"
    return log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""


def _error_of(log: str) -> str:
    """The lines that say what went wrong: `error:`/`hint:` lines of a user error, else a traceback's last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("error:", "hint:"))]
    if said:
        return "\n".join(said)
    return lines[-1] if lines else ""
