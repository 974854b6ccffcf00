"""Progress a person can read in a log: the plain-line reporter on its own, the choice between a live
bar and log lines, and a real train + eval through the CLI with stdout captured (not a terminal)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from helpers.data import make_chat_examples, register_dataset
from tailorlm.progress import SILENT, LiveProgress, LogProgress, Tally, clock, for_console
from tailorlm.workspace import Workspace

LINE = re.compile(
    r"^(?P<task>[^:]+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) \(\d+%\)(?P<details>.*)"
    r" · elapsed \d+:\d\d:\d\d · ETA (\d+:\d\d:\d\d|\?)$"
)


def log_progress(interval: float) -> tuple[LogProgress, io.StringIO]:
    stream = io.StringIO()
    return LogProgress(Console(file=stream, width=60), interval=interval), stream


def test_a_line_per_advance_with_count_loss_rate_and_eta_at_interval_zero():
    progress, stream = log_progress(0)
    with progress.task("train", total=4, unit="steps") as task:
        for step in range(4):
            task.advance(1, loss=2.0 - step / 10, tokens=500)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # not wrapped at 60 columns, and the last line is not printed twice
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [m["done"] for m in matches] == ["1", "2", "3", "4"] and {m["total"] for m in matches} == {"4"}
    assert "loss 2.0000" in lines[0] and "loss 1.7000" in lines[3] and " tok/s" in lines[0]
    assert lines[3].endswith("ETA 0:00:00")


def test_between_intervals_only_the_first_and_last_lines():
    progress, stream = log_progress(3600)
    with progress.task("generate base", total=50, unit="answers") as task:
        for _ in range(50):
            task.advance(1)
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line)["done"] for line in lines] == ["1", "50"]  # type: ignore[index]


def test_a_step_longer_than_the_interval_still_gets_lines():
    progress, stream = log_progress(0.2)
    with progress.task("train", total=3, unit="steps") as task:
        task.advance(1, loss=1.5)
        time.sleep(0.9)  # one slow step: the heartbeat prints while nothing advances
        beats = stream.getvalue().splitlines()
        task.advance(2)
    assert len(beats) >= 3 and all(line.startswith("train: 1/3 steps") for line in beats), beats
    after = stream.getvalue().splitlines()
    time.sleep(0.5)
    assert stream.getvalue().splitlines() == after  # a finished task prints no more
    assert after[-1].startswith("train: 3/3 steps")


def test_messages_are_plain_text_off_a_terminal():
    progress, stream = log_progress(30)
    progress.say("[bold]2/4 train[/] lora on /models/base")
    assert stream.getvalue() == "2/4 train lora on /models/base\n"


def test_tally_eta_counts_only_the_steps_of_this_session():
    tally = Tally("train", total=100, completed=90, unit="steps")  # a resumed run: 90 steps were done before
    tally.started -= 10
    tally.add(5, {})
    assert tally.eta() == pytest.approx(10 / 5 * 5, rel=0.05)
    assert clock(3725) == "1:02:05"


def test_the_console_decides_bar_or_lines(monkeypatch):
    monkeypatch.setenv("TAILORLM_PROGRESS_INTERVAL", "5")
    piped = for_console(Console(file=io.StringIO()))
    assert isinstance(piped, LogProgress) and piped.interval == 5
    assert isinstance(for_console(Console(file=io.StringIO(), force_terminal=True)), LiveProgress)
    monkeypatch.setenv("TAILORLM_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ValueError, match="TAILORLM_PROGRESS_INTERVAL"):
        for_console(Console(file=io.StringIO()))
    with SILENT.task("nothing", total=3) as task:
        task.advance(3)


def test_the_live_bar_shows_the_count_and_keeps_messages():
    stream = io.StringIO()
    progress = LiveProgress(Console(file=stream, force_terminal=True, width=120))
    with progress.task("train", total=2, unit="steps") as task:
        progress.say("plan: lora on cpu")
        task.advance(2, loss=1.25)
    assert progress.bar is None  # stopped with its last task
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "plan: lora on cpu" in shown and "2/2" in shown and "loss 1.2500" in shown


# --- through the CLI, stdout redirected ------------------------------------------------------------------


def tailorlm(*args: str) -> str:
    env = {**os.environ, "TAILORLM_PROGRESS_INTERVAL": "0", "COLUMNS": "80", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, f"tailorlm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_train_and_eval_print_plain_progress_in_a_captured_log(tiny_model_dir: Path, tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    register_dataset(ws, make_chat_examples(24), name="tiny", val=2, test=3)
    project = {
        "project": "tiny",
        "base_model": str(tiny_model_dir),
        "system_prompt": "You are Acme support.",
        "train": {
            "method": "lora",
            "max_steps": 4,
            "batch_size": 4,
            "logging_steps": 1,
            "lora": {"r": 4},
            "precision": "fp32",
        },
        "evaluate": {"max_new_tokens": 4, "batch_size": 2, "baselines": ["base"]},
    }
    ws.project_file.write_text(yaml.safe_dump(project), encoding="utf-8")
    ws.close()

    trained = tailorlm("train", "--workspace", str(ws.root)).splitlines()
    plan = next(i for i, line in enumerate(trained) if line.startswith("plan: lora on cpu, fp32, 4 steps"))
    steps = [(i, LINE.match(line)) for i, line in enumerate(trained) if line.startswith("train: ")]
    assert [m["done"] for _, m in steps if m] == ["1", "2", "3", "4"], trained
    assert all(m and m["total"] == "4" and m["unit"] == "steps" for _, m in steps)
    assert plan < steps[0][0]  # the plan comes before the first step
    assert "loss " in steps[-1][1]["details"] and " tok/s" in steps[-1][1]["details"]  # type: ignore[index]

    evaluated = tailorlm("eval", "--workspace", str(ws.root)).splitlines()
    answered = {m["task"]: m for line in evaluated if (m := LINE.match(line))}
    assert answered["generate base"]["done"] == answered["generate base"]["total"] == "3", evaluated
    assert answered["generate finetuned"]["total"] == "3" and answered["generate finetuned"]["unit"] == "answers"
    assert answered["loss base"]["total"] == answered["loss finetuned"]["total"] == "3"  # named by candidate
    assert any(line.startswith("Report: ") for line in evaluated)
