"""Subprocesses that leave nothing behind: a command run in its own process group, the whole group killed
when it times out (torchrun's ranks would otherwise outlive a killed launcher)."""

from __future__ import annotations

import os
import signal
import subprocess


def run_group(command: list[str], *, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"timed out after {timeout:.0f} s: {' '.join(command)}\n{stderr[-3000:]}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
