"""How verbs live and stop (`tailorlm.lifecycle`), tried with real processes and real signals: a killed
owner makes its running run show as `interrupted`; a killed writer's staging folder is removed by the next
one; a checkpoint cut short is never resumed from; SIGTERM stops a block like Ctrl-C; bad options of
`train` are one line, not a traceback. The full kill-and-resume runs are in tests/chaos/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailorlm.cli import app
from tailorlm.lifecycle import Interrupted, current_owner, owner_alive, shown_status, stop_requested, stop_signals
from tailorlm.registry import Artifact, RunMeta
from tailorlm.train.checkpoints import last_checkpoint, remove_partial
from tailorlm.workspace import Workspace

SRC = str(Path(__file__).resolve().parents[2] / "src")


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """A real child process running `code` with this checkout's package."""
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, text=True)


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the child exited with {process.returncode} before {path.name}"
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.05)


def test_a_killed_owner_makes_its_running_run_show_interrupted(workspace, tmp_path):
    ready = tmp_path / "ready"
    child = python(
        """
        import sys, time
        from pathlib import Path
        from tailorlm.lifecycle import current_owner
        from tailorlm.registry import Artifact, RunMeta
        from tailorlm.workspace import Workspace
        ws = Workspace(Path(sys.argv[1]))
        meta = RunMeta(method="lora", base_model="m", dataset="d", owner=current_owner())
        ws.registry.add(Artifact(id="run-x", kind="run", name="d", hash="", path="runs/run-x", status="running", meta=meta))
        Path(sys.argv[2]).write_text("ok")
        time.sleep(600)
        """,
        str(workspace.root),
        str(ready),
    )
    try:
        wait_for(ready, child)
        run = workspace.registry.get("run-x")
        assert run.meta.owner is not None and run.meta.owner.pid == child.pid
        assert shown_status(run) == "running"  # alive: not touched
    finally:
        child.kill()
        child.wait()
    assert shown_status(workspace.registry.get("run-x")) == "interrupted"
    result = CliRunner().invoke(app, ["runs", "--workspace", str(workspace.root), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["status"] for row in json.loads(result.output)] == ["interrupted"]


def test_an_owner_on_another_machine_is_gone_when_its_heartbeat_is_stale():
    owner = current_owner().model_copy(update={"host": "elsewhere"})
    assert owner_alive(owner)
    assert not owner_alive(owner.model_copy(update={"heartbeat": "2020-01-01T00:00:00+00:00"}))
    assert not owner_alive(current_owner().model_copy(update={"pid_started": 1}))  # a reused pid


def test_the_heartbeat_is_refreshed_while_the_block_runs(workspace):
    from tailorlm.lifecycle import heartbeat

    meta = RunMeta(method="lora", base_model="m", dataset="d", owner=current_owner())
    workspace.registry.add(
        Artifact(id="run-h", kind="run", name="d", hash="", path="runs/run-h", status="running", meta=meta)
    )
    first = workspace.registry.get("run-h").meta.owner.heartbeat
    time.sleep(1.1)  # the registry's clock has one-second resolution
    with heartbeat(workspace.registry, "run-h", every=0.05):
        deadline = time.monotonic() + 10
        while workspace.registry.get("run-h").meta.owner.heartbeat == first and time.monotonic() < deadline:
            time.sleep(0.05)
    assert workspace.registry.get("run-h").meta.owner.heartbeat > first


def test_a_killed_writers_staging_folder_is_removed_by_the_next_one(workspace, tmp_path):
    ready = tmp_path / "ready"
    final = workspace.dataset_dir("tiny", "v1")
    child = python(
        """
        import sys, time
        from pathlib import Path
        from tailorlm.workspace import Workspace
        ws = Workspace(Path(sys.argv[1]))
        with ws.staging(ws.dataset_dir("tiny", "v1")) as folder:
            (folder / "train.jsonl").write_text("half")
            Path(sys.argv[2]).write_text("ok")
            time.sleep(600)
        """,
        str(workspace.root),
        str(ready),
    )
    wait_for(ready, child)
    left = list(final.parent.glob(".v1.*.staging"))
    assert len(left) == 1 and str(child.pid) in left[0].name
    with workspace.staging(workspace.dataset_dir("tiny", "v2")):
        assert left[0].exists()  # its owner is alive: it may still be writing
    child.send_signal(signal.SIGKILL)
    child.wait()
    with workspace.staging(workspace.dataset_dir("tiny", "v2")) as folder:
        (folder / "train.jsonl").write_text("{}\n")
    assert not left[0].exists()
    assert [p.name for p in final.parent.iterdir()] == ["v2"]


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    for step, files in ((4, ["trainer_state.json", "adapter_model.safetensors"]), (8, ["README.md"])):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        for name in files:
            (checkpoints / f"checkpoint-{step}" / name).write_text("{}")
    (checkpoints / ".saving-12" / "checkpoint-12").mkdir(parents=True)  # a kill mid-save, new style
    assert last_checkpoint(tmp_path / "run") == checkpoints / "checkpoint-4"
    removed = remove_partial(tmp_path / "run")
    assert sorted(p.name for p in removed) == [".saving-12", "checkpoint-8"]
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint-4"]


@pytest.mark.parametrize("defer", [False, True])
def test_sigterm_stops_a_block_like_ctrl_c(defer):
    with pytest.raises(Interrupted) as stopped, stop_signals(defer=defer):
        os.kill(os.getpid(), signal.SIGTERM)
        if defer:  # asked only: the verb finishes its step, and a second signal stops it at once
            assert stop_requested() == "SIGTERM"
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert stopped.value.signal_name == ("SIGINT" if defer else "SIGTERM")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and stop_requested() is None


def test_a_signal_that_surfaces_as_another_error_still_stops_the_block():
    """A SIGTERM landing inside an import or a library's `except` comes out as a RuntimeError (as in
    spaCy's pydantic class bodies): the block still ends as `Interrupted`, so the verb exits 143."""

    class Descriptor:
        def __set_name__(self, owner: type, name: str) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)

    with pytest.raises(Interrupted) as stopped, stop_signals():
        try:
            type("Model", (), {"field": Descriptor()})
        except KeyboardInterrupt as caught:  # Python ≥ 3.12 lets it through: wrap it as a library would
            raise RuntimeError("a library re-raised it") from caught
    assert stopped.value.signal_name == "SIGTERM"
    assert isinstance(stopped.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--method", "bogus"], "'bogus' is not one of 'full', 'lora', 'qlora', 'dora'"),
        (["--max-steps", "0"], "'--max-steps': 0 is not in the range x>=1"),
    ],
)
def test_bad_train_options_are_one_message(options, named, tmp_path):
    Workspace(tmp_path / "ws").close()
    result = CliRunner().invoke(app, ["train", "--workspace", str(tmp_path / "ws"), *options])
    assert result.exit_code == 2
    assert named in " ".join(result.output.split()) and "Traceback" not in result.output
