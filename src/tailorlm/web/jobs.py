"""Long operations started from the dashboard (prepare, train, evaluate, export) go to the job queue
(`tailorlm.jobs`), so a request never waits on one and a job outlives the page and the dashboard.

The dashboard starts a worker (`tailorlm worker --until-empty`, in its own session) when jobs wait and
none of its own runs; a `tailorlm worker` you run yourself (say, one per GPU set) takes jobs as well.
Who started a job is recorded in the audit log (`ui.job`), since the queue runs as the OS user. A failed
job shows the error lines of its log, not only its exit code.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

from tailorlm import jobs as queue
from tailorlm.workspace import Workspace, atomic_write_text

KINDS = queue.JOB_KINDS
WAITING = ("queued", "interrupted")
_workers: dict[str, subprocess.Popen] = {}
_lock = threading.Lock()


@dataclass
class Job:
    """A queued job as the dashboard shows it."""

    id: str
    kind: str
    args: list[str]
    status: str
    user: str
    created_at: str
    run: str | None
    exit_code: int | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in queue.FINISHED

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "finished": self.finished}


def start(workspace: Workspace, kind: str, args: list[str], *, user: str, project: str | None = None) -> Job:
    """Queue `tailorlm KIND ARGS...` for `user`; `project` (YAML) is saved for the job and passed as --project."""
    if project is not None:
        path = workspace.dashboard_dir / f"project-{secrets.token_hex(6)}.yaml"
        atomic_write_text(path, project)
        args = [*args, "--project", str(path)]
    job = queue.submit(workspace, kind, args)
    workspace.audit.append("ui.job", outputs=[job.id], user=user, kind=kind, args=args)
    ensure_worker(workspace)
    return _view(workspace, job, {job.id: user})


def ensure_worker(workspace: Workspace) -> None:
    """Start a worker when jobs wait and the dashboard's own worker is not running."""
    key = str(workspace.root)
    with _lock:
        worker = _workers.get(key)
        if worker is not None and worker.poll() is None:
            return
        if not any(job.status in WAITING for job in queue.list_jobs(workspace)):
            return
        log = workspace.job_log("dashboard-worker")
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "tailorlm.cli", "worker", "--until-empty", "--poll", "0.5"]
        with log.open("a", encoding="utf-8") as output:
            _workers[key] = subprocess.Popen(
                [*command, "--workspace", key],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C on the dashboard does not stop the jobs
            )


def get_job(workspace: Workspace, job_id: str) -> Job:
    job = queue.get(workspace, job_id)
    if job.status in WAITING:
        ensure_worker(workspace)  # the worker exited just before this job was queued
    return _view(workspace, job, _starters(workspace))


def list_jobs(workspace: Workspace, limit: int = 100) -> list[Job]:
    starters = _starters(workspace)
    return [_view(workspace, job, starters) for job in queue.list_jobs(workspace)[:limit]]


def cancel(workspace: Workspace, job_id: str, *, user: str) -> Job:
    """Stop a job: the queue sends SIGTERM to its process group (training checkpoints and stops)."""
    queue.cancel(workspace, job_id)
    workspace.audit.append("ui.job.cancel", inputs=[job_id], user=user)
    return get_job(workspace, job_id)


def log_tail(workspace: Workspace, job_id: str, max_chars: int = 20_000) -> str:
    return queue.logs(workspace, job_id)[-max_chars:]


def _starters(workspace: Workspace) -> dict[str, str]:
    return {
        output: event.get("user", "")
        for event in workspace.audit.events()
        if event.get("action") == "ui.job"
        for output in event.get("outputs", [])
    }


def _view(workspace: Workspace, job: queue.Job, starters: dict[str, str]) -> Job:
    error = job.error
    if job.status == "failed":
        error = error_of(queue.logs(workspace, job.id)) or error
    return Job(
        job.id,
        job.kind,
        job.args,
        job.status,
        starters.get(job.id, "(command line)"),
        job.created_at,
        job.run,
        job.exit_code,
        error,
    )


def error_of(log: str) -> str:
    """The lines that say what went wrong in the last attempt: `error:`/`hint:` lines of a user error, else a
    traceback's last line."""
    last = log.rsplit("=== attempt", 1)[-1]
    lines = [line.strip() for line in last.splitlines()[1:] if line.strip()]
    said = [line for line in lines if line.startswith(("error:", "hint:"))]
    if said:
        return "\n".join(said)
    return lines[-1] if lines else ""
