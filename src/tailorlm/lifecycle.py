"""How a long verb lives and stops, shared by train, prepare (and its synthesis), eval and serve.

* `stop_signals()`: SIGTERM (what Slurm and Kubernetes send) and SIGINT (Ctrl-C) stop a verb the same
  way. By default the signal raises `Interrupted` (a `KeyboardInterrupt`) where the verb is, and the
  verb's existing clean-up runs (a staging folder removed, the replies so far kept, the row marked
  `interrupted`). With `defer=True` (training) the first signal only asks to stop: the verb finishes
  its current unit (an optimizer step), checkpoints, and stops; a second signal interrupts at once.
* `Owner`: who makes a `running` artifact (pid, host, a heartbeat) is written into its meta;
  `shown_status()` says `interrupted` for a running artifact whose owner is gone, so a killed run
  does not look alive and can be resumed.
* `pause_point(name)`: a named point (mid-checkpoint, mid-registry-write) where the chaos tests make
  a process wait to be killed; free unless `$TAILORLM_PAUSE_AT` names it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tailorlm.registry import Artifact, Owner, Registry, Status
from tailorlm.registry.store import now

HEARTBEAT_S = 30.0
"""How often a running artifact's owner says it is alive."""
STALE_AFTER_S = 10 * 60.0
"""An owner on another machine that has not said so for this long is taken as gone."""
PAUSE_ENV = "TAILORLM_PAUSE_AT"


class Interrupted(KeyboardInterrupt):
    """The verb was stopped by a signal (SIGTERM or SIGINT); `signal_name` says which."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def signal_of(stop: KeyboardInterrupt) -> str:
    """The signal that stopped a verb (a plain KeyboardInterrupt is Ctrl-C)."""
    return stop.signal_name if isinstance(stop, Interrupted) else "SIGINT"


def exit_code(stop: KeyboardInterrupt) -> int:
    """The shell's convention for a process stopped by a signal, 128 + its number (130 Ctrl-C, 143 SIGTERM)."""
    return 128 + int(getattr(signal, signal_of(stop)))


_requested: str | None = None


def stop_requested() -> str | None:
    """The name of the signal that asked a deferred verb to stop, or None."""
    return _requested


@contextmanager
def stop_signals(*, defer: bool = False) -> Iterator[None]:
    """SIGTERM and SIGINT stop the block like Ctrl-C (module docstring); off the main thread, nothing
    changes (only the main thread may handle signals). An error that ends the block after a signal
    interrupted it leaves as `Interrupted` (the signal's exception, wrapped on its way out)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in signals}
    outer = _requested
    raised: list[str] = []

    def handle(number: int, _frame: object) -> None:
        global _requested
        name = signal.Signals(number).name
        if defer and _requested is None:
            _requested = name
            return
        raised.append(name)
        raise Interrupted(name)

    for number in signals:
        signal.signal(number, handle)
    try:
        yield
    except Exception as error:
        # The signal's exception can surface as another one: raised inside an import, a class body
        # or a library's own `except Exception`, it comes out as a RuntimeError or the like. Once a
        # stop was signalled, whatever ends the block is that stop.
        if raised:
            raise Interrupted(raised[0]) from error
        raise
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _requested = outer


# --- owners and heartbeats ------------------------------------------------------------------------


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def current_owner() -> Owner:
    """This process, as the owner of an artifact it is making."""
    at = now()
    pid = os.getpid()
    return Owner(pid=pid, host=socket.gethostname(), started=at, heartbeat=at, pid_started=_process_start(pid))


def owner_alive(owner: Owner) -> bool:
    """True while the owner may still be working: its process exists on this machine (and is the same
    process, not a reused pid), or, on another machine, its heartbeat is recent."""
    if owner.host != socket.gethostname():
        age = datetime.now(UTC) - datetime.fromisoformat(owner.heartbeat)
        return age.total_seconds() < STALE_AFTER_S
    if not process_alive(owner.pid):
        return False
    started = _process_start(owner.pid)
    return owner.pid_started is None or started is None or started == owner.pid_started


def process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (a zombie, dead but not reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def shown_status(artifact: Artifact) -> Status:
    """The status to show: `interrupted` for a `running` artifact whose owner is gone (killed)."""
    owner = artifact.meta.owner
    if artifact.status == "running" and owner is not None and not owner_alive(owner):
        return "interrupted"
    return artifact.status


@contextmanager
def heartbeat(registry: Registry, artifact_id: str, every: float = HEARTBEAT_S) -> Iterator[None]:
    """Refresh the artifact's `owner.heartbeat` every `every` seconds while the block runs (a daemon
    thread with its own database connection)."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            try:
                registry.beat(artifact_id, now())
            except Exception:  # a busy or closed database must not kill the verb; the next beat retries
                continue

    thread = threading.Thread(target=beat, name="tailorlm-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


# --- the chaos tests' pause points ----------------------------------------------------------------

_reached: Counter[str] = Counter()


def pause_point(name: str) -> None:
    """Where `$TAILORLM_PAUSE_AT` is `NAME:N:FILE`, the N-th time this process reaches NAME it writes FILE
    and waits to be killed (a signal that only asks to stop lets it go on). Otherwise it does nothing."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or not wanted.startswith(name + ":"):
        return
    _, count, marker = wanted.split(":", 2)
    _reached[name] += 1
    if _reached[name] != int(count):
        return
    Path(marker).write_text(str(os.getpid()))
    while stop_requested() is None:
        time.sleep(0.01)


__all__ = [
    "Interrupted",
    "current_owner",
    "exit_code",
    "heartbeat",
    "owner_alive",
    "pause_point",
    "process_alive",
    "shown_status",
    "signal_of",
    "stop_requested",
    "stop_signals",
]
