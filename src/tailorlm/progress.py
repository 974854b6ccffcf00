"""One way for long steps to say how far along they are: the `Progress` protocol every stage takes.

    progress.say("plan: cuda, bf16, 1,200 steps, 3 epochs")
    task = progress.task("train", total=1200, unit="steps")
    task.advance(1, loss=2.31, tokens=4096)      # one step done; 4096 tokens went through it
    task.done()

Three implementations, chosen by where the output goes (`for_console`):

* `LiveProgress` — a rich bar with ETA for a terminal;
* `LogProgress` — plain lines for a log (CI, nohup, Slurm, `tee`): one when a task starts moving,
  then at least every `interval` seconds (30 by default, `$TAILORLM_PROGRESS_INTERVAL`), even when no
  step finishes in between, and one when it ends — step/total, loss, tokens/s, elapsed and ETA;
* `Silent` (`SILENT`) — for library use; the default of every function that takes a `progress`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from rich.console import Console

DEFAULT_INTERVAL_S = 30.0
INTERVAL_ENV = "TAILORLM_PROGRESS_INTERVAL"


class Task(Protocol):
    """One long step with a known number of items (steps, answers, files, chunks)."""

    def advance(self, n: int = 1, **fields: Any) -> None:
        """`n` more items done. Fields: `loss` (the latest value, shown), `tokens` (tokens processed by
        these `n` items, for tokens/s); any other `name=value` is shown as is."""

    def done(self) -> None:
        """The step is over (also when it stopped early); prints the last line."""

    def __enter__(self) -> Task: ...

    def __exit__(self, *exc: object) -> None: ...


class Progress(Protocol):
    """What the CLI passes to every long verb: messages, and tasks that count items."""

    def say(self, message: Any) -> None:
        """A line of text (rich markup allowed) or a rich renderable (a table)."""

    def task(self, description: str, total: int | None, *, completed: int = 0, unit: str = "") -> Task:
        """Start counting `total` items (None when unknown); `completed` are done already (a resumed run)."""


# --- the count behind every implementation ---------------------------------------------------------------


class Tally:
    """Items done, tokens, the latest fields, and the rates and ETA they give."""

    def __init__(self, description: str, total: int | None, completed: int, unit: str) -> None:
        self.description = description
        self.total = total
        self.completed = completed
        self.unit = unit
        self.started = time.monotonic()
        self.counted = 0  # items done since this task started (a resumed run's earlier steps don't count)
        self.tokens = 0
        self.fields: dict[str, Any] = {}

    def add(self, n: int, fields: dict[str, Any]) -> None:
        self.completed += n
        self.counted += n
        self.tokens += int(fields.pop("tokens", 0) or 0)
        self.fields.update(fields)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self) -> float | None:
        if self.total is None or not self.counted:
            return None
        return max(0.0, self.elapsed / self.counted * (self.total - self.completed))

    def tokens_per_s(self) -> float | None:
        return self.tokens / self.elapsed if self.tokens and self.elapsed > 0 else None

    def details(self) -> list[str]:
        """`loss 2.314`, `1,234 tok/s` and any other field, in that order."""
        shown = []
        for name, value in self.fields.items():
            if name == "loss" and isinstance(value, int | float) and math.isfinite(value):
                shown.append(f"loss {value:.4f}")
            elif name != "loss":
                shown.append(f"{name} {value}")
        if (rate := self.tokens_per_s()) is not None:
            shown.append(f"{rate:,.0f} tok/s")
        return shown

    def line(self) -> str:
        """The plain line: `train: 40/120 steps (33%) · loss 2.3140 · 1,234 tok/s · elapsed 0:01:02 · ETA 0:02:04`."""
        count = f"{self.completed}/{self.total}" if self.total is not None else f"{self.completed}"
        if self.unit:
            count += f" {self.unit}"
        if self.total:
            count += f" ({100 * self.completed / self.total:.0f}%)"
        eta = self.eta()
        parts = [
            f"{self.description}: {count}",
            *self.details(),
            f"elapsed {clock(self.elapsed)}",
            f"ETA {clock(eta) if eta is not None else '?'}",
        ]
        return " · ".join(parts)


def clock(seconds: float) -> str:
    """`0:01:02` (hours:minutes:seconds)."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# --- silent -------------------------------------------------------------------------------------------------


class _Ends:
    """`with progress.task(...) as task:` calls `done()` however the block ends."""

    def done(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()


class _SilentTask(_Ends):
    def advance(self, n: int = 1, **fields: Any) -> None:
        pass

    def done(self) -> None:
        pass


class Silent:
    """Reports nothing: the default for library calls."""

    def say(self, message: Any) -> None:
        pass

    def task(self, description: str, total: int | None, *, completed: int = 0, unit: str = "") -> Task:
        return _SilentTask()


SILENT = Silent()


# --- plain lines for logs -------------------------------------------------------------------------------------


class _LogTask(_Ends):
    def __init__(self, owner: LogProgress, tally: Tally) -> None:
        self.owner = owner
        self.tally = tally
        self.lock = threading.Lock()
        self.last_line: float | None = None  # when a line was last printed
        self.last_count = -1  # the count it showed
        self.finished = threading.Event()
        if owner.interval > 0:
            threading.Thread(target=self._beat, name="tailorlm-progress", daemon=True).start()

    def advance(self, n: int = 1, **fields: Any) -> None:
        with self.lock:
            self.tally.add(n, fields)
            if n <= 0:
                return
            now = time.monotonic()
            due = self.last_line is None or now - self.last_line >= self.owner.interval
            if due or self.tally.completed == self.tally.total:
                self._print(now)

    def _beat(self) -> None:
        """A line at least every interval, even while one step takes longer than that."""
        wait = self.owner.interval
        while not self.finished.wait(wait):
            with self.lock:
                now = time.monotonic()
                wait = (self.last_line or self.tally.started) + self.owner.interval - now
                if wait <= 0.01:
                    self._print(now)
                    wait = self.owner.interval

    def _print(self, now: float) -> None:
        self.last_line, self.last_count = now, self.tally.completed
        self.owner.line(self.tally.line())

    def done(self) -> None:
        if self.finished.is_set():
            return
        self.finished.set()
        with self.lock:
            if self.last_count != self.tally.completed or self.last_line is None:
                self._print(time.monotonic())


class LogProgress:
    """Plain progress lines, for output that is not a terminal.

    Args:
        console: Where lines go (markup in `say` messages is rendered as plain text off a terminal).
        interval: Seconds between lines of a running task (0: a line per `advance`).
        printer: Prints `say` messages instead of `console.print` (the CLI's, which keeps tables uncut).
    """

    def __init__(
        self, console: Console, *, interval: float = DEFAULT_INTERVAL_S, printer: Callable[[Any], None] | None = None
    ) -> None:
        self.console = console
        self.interval = max(0.0, interval)
        self.printer = printer

    def say(self, message: Any) -> None:
        if self.printer is not None:
            self.printer(message)
        else:
            self.console.print(message, soft_wrap=True)

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def task(self, description: str, total: int | None, *, completed: int = 0, unit: str = "") -> Task:
        return _LogTask(self, Tally(description, total, completed, unit))


# --- a live bar for terminals -----------------------------------------------------------------------------------


class _LiveTask(_Ends):
    def __init__(self, owner: LiveProgress, tally: Tally, task_id: Any) -> None:
        self.owner = owner
        self.tally = tally
        self.task_id = task_id
        self.over = False

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.tally.add(n, fields)
        bar = self.owner.bar
        if bar is not None and not self.over:
            bar.update(self.task_id, completed=self.tally.completed, details=" · ".join(self.tally.details()))

    def done(self) -> None:
        if not self.over:
            self.over = True
            self.owner.finished(self)


class LiveProgress:
    """A rich bar per running task (count, loss, tokens/s, elapsed, ETA); messages print above the bars."""

    def __init__(self, console: Console, *, printer: Callable[[Any], None] | None = None) -> None:
        self.console = console
        self.printer = printer
        self.bar: Any = None
        self.running: list[_LiveTask] = []

    def say(self, message: Any) -> None:
        if self.printer is not None:  # prints through the same console: above the bars while they run
            self.printer(message)
        else:
            self.console.print(message)

    def task(self, description: str, total: int | None, *, completed: int = 0, unit: str = "") -> Task:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        if self.bar is None:
            self.bar = RichProgress(
                TextColumn("    {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TextColumn("{task.fields[details]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.bar.start()
        task_id = self.bar.add_task(description, total=total, completed=completed, unit=unit, details="")
        live = _LiveTask(self, Tally(description, total, completed, unit), task_id)
        self.running.append(live)
        return live

    def finished(self, task: _LiveTask) -> None:
        self.running.remove(task)
        if not self.running and self.bar is not None:
            self.bar.stop()  # the finished bars stay on the screen
            self.bar = None


def interval_from_env() -> float:
    """`$TAILORLM_PROGRESS_INTERVAL` seconds, else 30."""
    value = os.environ.get(INTERVAL_ENV)
    try:
        return float(value) if value else DEFAULT_INTERVAL_S
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV} must be a number of seconds (got {value!r})") from None


def for_console(console: Console, *, printer: Callable[[Any], None] | None = None) -> Progress:
    """A live bar on a terminal, plain lines every `$TAILORLM_PROGRESS_INTERVAL` seconds (30) elsewhere;
    `printer` prints the messages (default `console.print`)."""
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveProgress(console, printer=printer)
    return LogProgress(console, interval=interval_from_env(), printer=printer)
