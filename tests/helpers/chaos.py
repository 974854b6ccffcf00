"""Real `tailorlm` CLI processes killed at chosen points, for tests/chaos/.

A fresh interpreter importing torch and transformers takes seconds, and a chaos test needs dozens of
processes, so every process is forked from one `multiprocessing` fork server that imported TailorLM once.
Each is still a process of its own running the CLI's `main()` with its arguments, stopped by a real
signal (SIGKILL or SIGTERM) from the test:

* at a named pause point (`tailorlm.lifecycle.pause_point`: mid-checkpoint, mid-registry-write, a
  teacher reply in hand), where the process writes a marker file and waits to be killed; or
* after a seeded random delay, wherever it is then.

A test kills attempt after attempt (`random_kills`) until enough kills have landed on a live process
(`Chaos.kills`), then lets one run to the end and compares what it made with an uninterrupted run.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRELOAD = ["helpers.chaos", "tailorlm.cli", "tailorlm.train.sft", "tailorlm.prepare", "tailorlm.evaluate", "peft"]


def run_cli(argv: list[str], env: dict[str, str], log: str) -> None:
    """The child: the CLI's `main()` with `argv`, its output to `log`; exits with the CLI's code."""
    os.environ.update(env)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    import torch

    torch.set_num_threads(1)
    from tailorlm.cli import main

    sys.argv = ["tailorlm", *argv]
    try:
        main()
    except SystemExit as done:
        code = done.code
        sys.stdout.flush()
        os._exit(code if isinstance(code, int) else (0 if code is None else 1))
    os._exit(0)


STOPPED = (-signal.SIGKILL, 128 + signal.SIGTERM, -signal.SIGTERM)
"""How a killed attempt may end: SIGKILL; SIGTERM caught by the verb (exit 143); or SIGTERM that arrived
before the CLI installed its handler (interpreter start-up on a loaded machine), which ends the process
the default way with nothing begun. The dedicated SIGTERM tests insist on 143."""


@dataclass
class Kill:
    """Where to stop one attempt: at the `count`-th time it reaches `point`, or `after` seconds; with `signal`."""

    signal: int = signal.SIGKILL
    point: str | None = None
    count: int = 1
    after: float = 0.0
    ready: Callable[[], object] | None = None  # or once this returns (e.g. a server answers)

    def __str__(self) -> str:
        where = f"{self.point}#{self.count}" if self.point else "ready" if self.ready else f"{self.after:.2f}s"
        return f"{signal.Signals(self.signal).name}@{where}"


@dataclass
class Attempt:
    kill: Kill | None
    exit_code: int | None
    killed: bool  # the signal reached a live process at its point
    log: str
    seconds: float


@dataclass
class Chaos:
    """Starts CLI processes from one fork server (module docstring)."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    _context: Any = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # the fork server and its children: one thread each
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)

    def run(self, argv: list[str], kill: Kill | None = None, timeout: float = 300) -> Attempt:
        """One process of `tailorlm ARGV`, stopped as `kill` says (or let run to the end)."""
        number = len(self.attempts) + 1
        marker = self.folder / f"paused-{number}"
        log = self.folder / f"attempt-{number}.log"
        env = dict(self.env)
        if kill is not None and kill.point:
            env["TAILORLM_PAUSE_AT"] = f"{kill.point}:{kill.count}:{marker}"
        else:
            env["TAILORLM_PAUSE_AT"] = ""
        process = self._context.Process(target=run_cli, args=(argv, env, str(log)))
        process.start()
        started = time.monotonic()
        killed = False
        if kill is not None and kill.ready is not None:
            kill.ready()
            if process.is_alive():
                os.kill(process.pid, kill.signal)
                killed = True
        elif kill is not None:
            while process.is_alive() and time.monotonic() - started < timeout:
                due = marker.exists() if kill.point else time.monotonic() - started >= kill.after
                if due:
                    os.kill(process.pid, kill.signal)
                    killed = True
                    break
                time.sleep(0.005)
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
            raise AssertionError(f"attempt {number} ({kill}) did not end in {timeout}s:\n{log.read_text()}")
        text = log.read_text(errors="replace") if log.exists() else ""
        attempt = Attempt(kill, process.exitcode, killed, text, time.monotonic() - started)
        self.attempts.append(attempt)
        return attempt

    @property
    def kills(self) -> int:
        """Kills that landed on a live process."""
        return sum(attempt.killed for attempt in self.attempts)


def random_kills(seed: int, *, points: list[tuple[str, int]], longest: float, most: int = 60) -> Iterator[Kill]:
    """Kills, seeded (at most `most`): about half at the named points (point, how many times it may be
    reached), the rest after a random delay up to `longest` seconds; a third SIGTERM, the rest SIGKILL."""
    chooser = random.Random(seed)
    for index in range(most):
        number = signal.SIGTERM if index % 3 == 2 else signal.SIGKILL
        if points and index % 2 == 0:
            point, reached = chooser.choice(points)
            yield Kill(number, point=point, count=chooser.randint(1, reached))
        else:
            yield Kill(number, after=chooser.uniform(0.1, longest))


def assert_sound(root: Path) -> None:
    """The workspace's registry passes its integrity check (SQLite's, and every complete artifact's path
    exists), the audit chain is intact, and no staging folder or temp file is left anywhere."""
    from tailorlm.workspace import Workspace

    workspace = Workspace(root)
    try:
        assert workspace.integrity_problems() == []
        intact, message = workspace.audit.verify()
        assert intact, message
    finally:
        workspace.close()
    leftovers = [p for p in root.rglob(".*") if p.name.endswith((".staging", ".tmp"))]
    assert not leftovers, f"left behind: {leftovers}"


def listed(attempt: Attempt) -> Any:
    """The JSON a `--json` verb printed (after anything else on its output)."""
    import json

    return json.loads(attempt.log[attempt.log.index("[") :])
