"""The job queue, with real workers as subprocesses: a worker SIGKILLed mid-run leaves the job resumable and
the next worker resumes the same run from its checkpoint; cancel stops the job's process tree; two workers
never run the same job; bad input is refused with a clear message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers.data import make_chat_examples, register_dataset
from tailorlm import jobs
from tailorlm.errors import NotFound
from tailorlm.workspace import Workspace

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}  # the tiny model is faster on one thread


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", *args], capture_output=True, text=True, env=_env(), timeout=300
    )


def _worker(ws: Workspace, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tailorlm.cli", "worker", "--workspace", str(ws.root), "--poll", "0.2", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )


def _wait(condition, what: str, timeout: float = 240.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def train_ws(tmp_path: Path, tiny_model_dir: Path):
    """A workspace whose project trains the tiny model on a registered chat dataset."""
    ws = Workspace(tmp_path / "ws")
    register_dataset(ws, make_chat_examples(40))
    train = {"method": "lora", "batch_size": 4, "learning_rate": 1e-2, "logging_steps": 1, "warmup_ratio": 0.0}
    train["save_steps"] = 4
    project = {"project": "tiny", "base_model": str(tiny_model_dir), "train": train}
    ws.project_file.write_text(yaml.safe_dump(project), encoding="utf-8")
    yield ws
    ws.close()


def test_submit_list_show_logs_and_cancel_a_queued_job(workspace):
    job = jobs.submit(workspace, "train", ["--max-steps", "3"])
    assert job.status == "queued" and job.args == ["--max-steps", "3"]
    assert [j.id for j in jobs.list_jobs(workspace)] == [job.id]
    assert jobs.list_jobs(workspace, "running") == []
    assert jobs.logs(workspace, job.id) == ""
    cancelled = jobs.cancel(workspace, job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at
    assert jobs.claim(workspace, "host:1") is None  # a cancelled job is never run
    with pytest.raises(jobs.JobError, match="already cancelled"):
        jobs.cancel(workspace, job.id)
    events = [event["action"] for event in workspace.audit.events()]
    assert events.count("jobs.submit") == 1 and events.count("jobs.cancel") == 1


def test_bad_jobs_are_refused_with_a_clear_message(workspace):
    with pytest.raises(jobs.JobError, match="cannot queue 'serve'"):
        jobs.submit(workspace, "serve")
    with pytest.raises(jobs.JobError, match="--workspace is set by the queue"):
        jobs.submit(workspace, "train", ["--workspace", "elsewhere"])
    with pytest.raises(NotFound, match="no job 'job-nope'"):
        jobs.get(workspace, "job-nope")
    with pytest.raises(jobs.JobError, match="unknown job status 'done'"):
        jobs.list_jobs(workspace, "done")
    result = _cli("jobs", "submit", "quickstart", "--workspace", str(workspace.root))
    assert result.returncode == 1 and "cannot queue 'quickstart'" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_an_export_job_runs_its_target_subcommand(workspace):
    job = jobs.submit(workspace, "export", ["gguf", "acme@v1", "--types", "q8_0"])
    command = jobs.command_of(workspace, job)
    assert command[2:] == [
        "tailorlm.cli",
        "export",
        "gguf",
        "--workspace",
        str(workspace.root),
        "acme@v1",
        "--types",
        "q8_0",
    ]


def test_concurrent_claims_never_take_a_job_twice(workspace):
    """Three processes race to claim 30 jobs from one SQLite file: every job is claimed exactly once."""
    ids = {jobs.submit(workspace, "eval").id for _ in range(30)}
    code = (
        "import sys; from tailorlm import jobs; from tailorlm.workspace import Workspace\n"
        "ws = Workspace(sys.argv[1])\n"
        "while (job := jobs.claim(ws, f'host:{sys.argv[2]}')) is not None: print(job.id, flush=True)\n"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(workspace.root), str(n)], stdout=subprocess.PIPE, text=True, env=_env()
        )
        for n in range(3)
    ]
    claimed = [line for racer in racers for line in racer.communicate(timeout=120)[0].split()]
    assert sorted(claimed) == sorted(ids)  # each once, none lost
    assert {job.attempts for job in jobs.list_jobs(workspace)} == {1}


@pytest.mark.integration  # trains in subprocesses: about a minute
def test_a_killed_worker_leaves_the_job_resumable_and_the_next_worker_resumes_its_run(train_ws):
    ws = train_ws
    job = jobs.submit(ws, "train", ["--max-steps", "60", "--force"])
    first = _worker(ws)
    run_id = _wait(lambda: jobs.get(ws, job.id).run, "the job's run")
    checkpoints = ws.run_dir(run_id) / "checkpoints"
    _wait(lambda: any(checkpoints.glob("checkpoint-*")), "a first checkpoint")
    pid = jobs.get(ws, job.id).pid
    assert pid and jobs.get(ws, job.id).status == "running"

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    _wait(lambda: not _group_alive(pid), "the job to die with its worker", timeout=60)
    assert jobs.get(ws, job.id).status == "running"  # nobody has noticed yet

    second = _worker(ws, "--until-empty")
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output
    done = jobs.get(ws, job.id)
    assert done.status == "complete" and done.attempts == 2 and done.outputs == [run_id], output
    assert "its worker is gone; interrupted" in output
    assert f"--resume {run_id}" in jobs.logs(ws, job.id)  # the second attempt continued the same run
    runs = ws.registry.find("run")
    assert [run.id for run in runs] == [run_id] and runs[0].status == "complete"
    steps = [json.loads(line)["step"] for line in (ws.run_dir(run_id) / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 60 and min(steps) <= 4 < max(steps)


@pytest.mark.integration
def test_cancel_stops_a_running_job_and_two_workers_never_run_the_same_job(train_ws):
    ws = train_ws
    long = jobs.submit(ws, "train", ["--max-steps", "100000", "--force"])
    short = jobs.submit(ws, "train", ["--max-steps", "2", "--force"])
    workers = [_worker(ws), _worker(ws)]
    running = _wait(lambda: (j := jobs.get(ws, long.id)).pid and j, "the long job to start")
    _wait(lambda: jobs.get(ws, short.id).status == "complete", "the short job on the other worker")

    result = _cli("jobs", "cancel", long.id, "--workspace", str(ws.root))
    assert result.returncode == 0, result.stderr
    _wait(lambda: jobs.get(ws, long.id).status == "cancelled", "the cancel to be recorded")
    _wait(lambda: not _group_alive(running.pid), "the job's processes to stop", timeout=60)
    assert all(worker.poll() is None for worker in workers)  # the workers live on

    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    assert jobs.get(ws, long.id).attempts == 1 and jobs.get(ws, short.id).attempts == 1
    assert sum(output.count(f"{short.id}: train") for output in outputs) == 1  # run by exactly one worker
    listing = json.loads(_cli("jobs", "list", "--workspace", str(ws.root), "--json").stdout)
    assert {job["id"]: job["status"] for job in listing} == {long.id: "cancelled", short.id: "complete"}
