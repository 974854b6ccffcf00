"""The job queue: training, synthesis (prepare) and evaluation queued in the registry, run by workers.

    job = submit(workspace, "train", ["--max-steps", "200"])   # tailorlm jobs submit train -- --max-steps 200
    work(workspace)                                            # tailorlm worker

A job is a CLI verb run as its own process (`python -m tailorlm.cli train --workspace WS ...`) with its
output in `jobs/<job-id>.log`, so it outlives the terminal that queued it. A worker runs one job at a time
on its set of GPUs (`CUDA_VISIBLE_DEVICES`; start one worker per set); on CPU, one at a time.

Durability: the claim is one `UPDATE` under `BEGIN IMMEDIATE`, so two workers never run the same job; the
worker beats a heartbeat while the job runs, and the job's process gets SIGTERM when its worker dies
(Linux parent-death signal). A job whose worker is gone (its pid is dead on this host, or its heartbeat is
older than the lease) is `interrupted`, and the next worker resumes it: a train job from its run's last
checkpoint (`train --resume RUN`), other verbs from the start (they skip what is unchanged).
Cancel asks the worker to stop the job's whole process group (SIGTERM, then SIGKILL) and records it.

A shared piece: it runs the stages as subprocesses and imports none of them; the train stage tells it the
run it made (`record_output`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from tailorlm.errors import NotFound, UserError
from tailorlm.registry.store import now
from tailorlm.workspace import Workspace, new_id

JobKind = Literal["train", "prepare", "eval", "export"]
"""What can be queued: the verbs that take long (prepare runs synthesis when the project asks for it; an export's
first argument is its target, e.g. `gguf`)."""
JobStatus = Literal["queued", "running", "complete", "failed", "cancelled", "interrupted"]
JOB_KINDS: tuple[str, ...] = get_args(JobKind)
FINISHED: tuple[str, ...] = ("complete", "failed", "cancelled")
JOB_ENV = "TAILORLM_JOB_ID"
"""Set in a job's environment; the stages report what they made to the job through it."""

LEASE_S = 60.0  # a running job whose worker has been silent this long is taken over
STOP_GRACE_S = 20.0  # SIGTERM → this long to checkpoint and exit → SIGKILL
INTERRUPTED_CODES = (130, 143, -signal.SIGTERM, -signal.SIGINT)


class JobError(UserError, ValueError):
    """A job that can't be queued, found or cancelled as asked."""

    hint = "see `tailorlm jobs list`"


@dataclass
class Job:
    """One row of the queue."""

    id: str
    kind: str
    args: list[str]
    status: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    worker: str | None = None
    pid: int | None = None
    heartbeat: float | None = None
    attempts: int = 0
    exit_code: int | None = None
    outputs: list[str] = field(default_factory=list)
    cancel_requested: bool = False
    error: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        data = dict(row)
        data["args"] = json.loads(data["args"])
        data["outputs"] = json.loads(data["outputs"] or "[]")
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)

    @property
    def run(self) -> str | None:
        """The run a train job made (resumed from when the job is taken over)."""
        return next((output for output in self.outputs if output.startswith("run-")), None)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- the queue ------------------------------------------------------------------------------------------


def submit(workspace: Workspace, kind: str, args: list[str] | tuple[str, ...] = ()) -> Job:
    """Queue `tailorlm KIND ARGS...` on this workspace; a worker runs it."""
    if kind not in JOB_KINDS:
        raise JobError(f"cannot queue {kind!r}: jobs are {', '.join(JOB_KINDS)}")
    args = list(args)
    for flag in ("--workspace", "-w"):
        if any(arg == flag or arg.startswith(f"{flag}=") for arg in args):
            raise JobError(f"{flag} is set by the queue (the job runs in {workspace.root}); leave it out")
    job_id = new_id("job")
    workspace.registry.execute(
        "INSERT INTO jobs (id, kind, args, status, created_at) VALUES (?, ?, ?, 'queued', ?)",
        (job_id, kind, json.dumps(args), now()),
    )
    workspace.audit.append("jobs.submit", outputs=[job_id], kind=kind, args=args)
    return get(workspace, job_id)


def get(workspace: Workspace, job_id: str) -> Job:
    row = workspace.registry.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id!r} in this workspace", hint=JobError.hint)
    return Job.from_row(row)


def list_jobs(workspace: Workspace, status: str | None = None) -> list[Job]:
    """Jobs, newest first (only those in `status` when given)."""
    if status is not None and status not in get_args(JobStatus):
        raise JobError(f"unknown job status {status!r}; one of {', '.join(get_args(JobStatus))}")
    where, parameters = ("WHERE status = ?", (status,)) if status else ("", ())
    rows = workspace.registry.execute(f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC", parameters)
    return [Job.from_row(row) for row in rows]


def log_path(workspace: Workspace, job: Job | str) -> Any:
    return workspace.job_log(job if isinstance(job, str) else job.id)


def logs(workspace: Workspace, job_id: str) -> str:
    """What the job printed so far (every attempt, each opened by a `=== attempt N` line)."""
    get(workspace, job_id)
    path = log_path(workspace, job_id)
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def cancel(workspace: Workspace, job_id: str) -> Job:
    """Cancel a job: a waiting one at once; a running one is stopped by its worker (or here, when the job's
    process is on this host), and recorded `cancelled`."""
    job = get(workspace, job_id)
    if job.status in FINISHED:
        raise JobError(f"job {job_id} is already {job.status}")
    with workspace.registry.transaction() as connection:
        connection.execute(
            "UPDATE jobs SET cancel_requested = 1, status = CASE WHEN status = 'running' THEN status ELSE"
            " 'cancelled' END, finished_at = CASE WHEN status = 'running' THEN finished_at ELSE ? END"
            " WHERE id = ?",
            (now(), job_id),
        )
    job = get(workspace, job_id)
    if job.status == "running" and job.pid and _on_this_host(job.worker):
        _signal_group(job.pid, signal.SIGTERM)  # the worker sees it exit and records the cancel
    workspace.audit.append("jobs.cancel", outputs=[job_id], was=job.status)
    return job


def record_output(workspace: Workspace, artifact_id: str) -> None:
    """Called by a stage running inside a job: remember what it made (a train job's run, to resume it)."""
    job_id = os.environ.get(JOB_ENV)
    if not job_id:
        return
    with workspace.registry.transaction() as connection:
        row = connection.execute("SELECT outputs FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return
        outputs = json.loads(row[0] or "[]")
        if artifact_id not in outputs:
            connection.execute(
                "UPDATE jobs SET outputs = ? WHERE id = ?", (json.dumps([*outputs, artifact_id]), job_id)
            )


def claim(workspace: Workspace, worker: str) -> Job | None:
    """Take the next job for `worker` (interrupted ones first, then the oldest queued), or None.

    Atomic across processes: the write lock is taken before reading, and the update re-checks the status."""
    with workspace.registry.transaction() as connection:
        row = connection.execute(
            "SELECT id FROM jobs WHERE status IN ('queued', 'interrupted') AND cancel_requested = 0"
            " ORDER BY status = 'interrupted' DESC, created_at, rowid LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        claimed = connection.execute(
            "UPDATE jobs SET status = 'running', worker = ?, heartbeat = ?, pid = NULL, attempts = attempts + 1,"
            " started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN ('queued', 'interrupted')",
            (worker, time.time(), now(), row[0]),
        ).rowcount
    return get(workspace, row[0]) if claimed == 1 else None


def reclaim_orphans(workspace: Workspace, *, lease_s: float = LEASE_S) -> list[Job]:
    """Running jobs whose worker is gone become `interrupted` (or `cancelled` if asked) so a worker resumes
    them; a leftover process of theirs on this host is stopped first. Returns the jobs taken over."""
    taken = []
    for job in list_jobs(workspace, "running"):
        gone = (_on_this_host(job.worker) and not _alive(_worker_pid(job.worker))) or (
            job.heartbeat is not None and time.time() - job.heartbeat > lease_s
        )
        if not gone:
            continue
        if job.pid and _on_this_host(job.worker):
            _stop_group(job.pid)
        status = "cancelled" if job.cancel_requested else "interrupted"
        updated = workspace.registry.execute(
            "UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = 'running' AND worker = ?",
            (
                status,
                f"worker {job.worker} stopped while running it",
                now() if status == "cancelled" else None,
                job.id,
                job.worker,
            ),
        ).rowcount
        if updated:
            if job.run:
                _mark_run_interrupted(workspace, job.run)
            workspace.audit.append("jobs.orphaned", outputs=[job.id], worker=job.worker, status=status)
            taken.append(get(workspace, job.id))
    return taken


# --- the worker -------------------------------------------------------------------------------------------


def work(
    workspace: Workspace,
    *,
    gpus: str | None = None,
    until_empty: bool = False,
    poll_s: float = 1.0,
    lease_s: float = LEASE_S,
    say: Callable[[str], None] = lambda message: None,
) -> int:
    """Run queued jobs one at a time until stopped (SIGTERM/SIGINT) or, with `until_empty`, until the queue
    is empty. `gpus` ("0,1") is the GPU set its jobs see. Returns how many jobs it ran.

    Stopped while a job runs, it stops the job (SIGTERM: a train run checkpoints) and leaves it
    `interrupted`, so the next worker resumes it."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    stop: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda number, frame: stop.append(number)) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    ran = 0
    try:
        while not stop:
            for orphan in reclaim_orphans(workspace, lease_s=lease_s):
                say(f"{orphan.id}: its worker is gone; {orphan.status}")
            job = claim(workspace, name)
            if job is None:
                if until_empty:
                    break
                time.sleep(poll_s)
                continue
            ran += 1
            say(f"{job.id}: {job.kind} (attempt {job.attempts}) running, log {log_path(workspace, job)}")
            finished = _run_job(workspace, job, name, gpus=gpus, stop=stop, poll_s=min(poll_s, 0.5))
            say(f"{job.id}: {finished.status}" + (f" ({finished.error})" if finished.error else ""))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return ran


def command_of(workspace: Workspace, job: Job) -> list[str]:
    """The process a job runs: its verb on the workspace, or `train --resume RUN` when its run has a
    checkpoint to continue from."""
    verb, args = ([job.kind, *job.args[:1]], job.args[1:]) if job.kind == "export" else ([job.kind], job.args)
    base = [sys.executable, "-m", "tailorlm.cli", *verb, "--workspace", str(workspace.root)]
    if job.kind == "train" and job.run and _has_checkpoint(workspace, job.run):
        return [*base, "--resume", job.run]
    return [*base, *args]


def _run_job(workspace: Workspace, job: Job, worker: str, *, gpus: str | None, stop: list[int], poll_s: float) -> Job:
    argv = command_of(workspace, job)
    env = {**os.environ, JOB_ENV: job.id, "PYTHONUNBUFFERED": "1"}
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    path = log_path(workspace, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(f"=== attempt {job.attempts} by {worker} at {now()}: {' '.join(argv[2:])}\n")
        log.flush()
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    registry = workspace.registry
    registry.execute("UPDATE jobs SET pid = ?, heartbeat = ? WHERE id = ?", (process.pid, time.time(), job.id))
    stopping_since: float | None = None
    while process.poll() is None:
        time.sleep(poll_s)
        registry.execute("UPDATE jobs SET heartbeat = ? WHERE id = ?", (time.time(), job.id))
        asked = registry.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job.id,)).fetchone()[0]
        if (asked or stop) and stopping_since is None:
            stopping_since = time.time()
            _signal_group(process.pid, signal.SIGTERM)
        elif stopping_since is not None and time.time() - stopping_since > STOP_GRACE_S:
            _signal_group(process.pid, signal.SIGKILL)
    code = process.returncode
    _signal_group(process.pid, signal.SIGKILL)  # whatever the job left behind in its group
    cancelled = bool(registry.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job.id,)).fetchone()[0])
    status: JobStatus
    error = None
    if cancelled:
        status = "cancelled"
    elif code == 0:
        status = "complete"
    elif stop or code in INTERRUPTED_CODES:
        status, error = "interrupted", f"stopped (exit code {code}); the next worker resumes it"
    else:
        status, error = "failed", f"exit code {code}; see `tailorlm jobs logs {job.id}`"
    registry.execute(
        "UPDATE jobs SET status = ?, exit_code = ?, error = ?, pid = NULL, finished_at = ? WHERE id = ?",
        (status, code, error, now() if status in FINISHED else None, job.id),
    )
    workspace.audit.append(f"jobs.{status}", outputs=[job.id, *get(workspace, job.id).outputs], exit_code=code)
    return get(workspace, job.id)


# --- processes ---------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the job's process before exec: SIGTERM when the worker dies (Linux), so a killed worker's job
    checkpoints and stops instead of running on unwatched."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, number)


def _stop_group(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    _signal_group(pid, signal.SIGTERM)
    deadline = time.time() + grace_s
    while time.time() < deadline and _group_alive(pid):
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (dead, not yet reaped) is not alive
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _worker_pid(worker: str | None) -> int | None:
    if not worker or ":" not in worker:
        return None
    pid = worker.rsplit(":", 1)[1]
    return int(pid) if pid.isdigit() else None


def _on_this_host(worker: str | None) -> bool:
    return bool(worker) and worker.rsplit(":", 1)[0] == socket.gethostname()  # type: ignore[union-attr]


def _has_checkpoint(workspace: Workspace, run_id: str) -> bool:
    return any((workspace.run_dir(run_id) / "checkpoints").glob("checkpoint-*"))


def _mark_run_interrupted(workspace: Workspace, run_id: str) -> None:
    with contextlib.suppress(NotFound):
        if workspace.registry.get(run_id).status == "running":
            workspace.registry.update(run_id, status="interrupted")
