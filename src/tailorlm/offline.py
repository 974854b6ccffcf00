"""Air-gap for every entry point: Hugging Face offline variables, telemetry off, and a socket guard.

`enforce()` is called by each CLI verb (so the server and the workers `tailorlm` starts too) and by the
library functions that load models or data (ingest, prepare, train, evaluate, serve, export). It sets the
offline and no-telemetry variables before any library reads them (child processes inherit them) and
installs a guard on outgoing connections: loopback and the hosts in the project's `allow_hosts`
(teacher/judge endpoints; `host` or `host:port`) pass, anything else raises `NetworkRefused` naming the
host and the code that tried, and writes a `network.refused` audit event in the open workspace.

The guard sees `connect()` on IPv4/IPv6 sockets; a name lookup (DNS) before it is not intercepted.
`decide(host, port)` is the decision alone, for tests and `tailorlm doctor`; `attempts` lists every
non-loopback connection tried in this process; `$TAILORLM_NETWORK_TRACE` (a file) records them across
processes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tailorlm.errors import UserError

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "SCARF_NO_ANALYTICS": "true",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Variables every entry point sets. tldextract (used by presidio's URL/e-mail checks) fetches the public
suffix list from the network; TailorLM's own validators don't use it (see pii/validators.py)."""

TRACE_ENV = "TAILORLM_NETWORK_TRACE"


@dataclass
class Policy:
    """What the guard lets through: loopback (unless `loopback` is off, for tests) and `hosts`."""

    loopback: bool = True
    hosts: frozenset[str] = frozenset()


_policy = Policy()
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_installed = False
_reporter: Callable[..., Any] | None = None
attempts: list[dict[str, Any]] = []
"""Every non-loopback connection tried in this process: host, port, allowed, where (the calling code)."""


class NetworkRefused(UserError, ConnectionRefusedError):
    """An outgoing connection to a host that is neither loopback nor in the project's allowlist."""

    hint = "add the host to `allow_hosts` in the project file if it is on your premises (e.g. the teacher endpoint)"


def _is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain", ""}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses, names resolved: where a server may listen without auth."""
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def decide(host: str, port: int | None = None) -> bool:
    """True when a connection to `host` (and `port`) may go out under the current policy."""
    host = host.strip("[]")
    if _policy.loopback and _is_loopback(host):
        return True
    return host in _policy.hosts or (port is not None and f"{host}:{port}" in _policy.hosts)


def check_host(host: str, port: int | None = None) -> None:
    """Raise `NetworkRefused` unless `host` may be reached (see `decide`)."""
    if not decide(host, port):
        target = f"{host}:{port}" if port is not None else host
        raise NetworkRefused(
            f"connection to {target!r} refused: TailorLM runs offline; only loopback and the project's "
            f"`allow_hosts` may be reached (tried from {_code_path()})"
        )


_MACHINERY = (
    "/socket.py",
    "/ssl.py",
    "/urllib/",
    "/http/",
    "/urllib3/",
    "/requests/",
    "/httpx/",
    "/httpcore/",
    "/asyncio/",
)


def _code_path() -> str:
    """Where the connection came from: our innermost frame, and the innermost one outside the socket and
    HTTP machinery (a library's, when a library tried)."""
    frames = [
        f
        for f in traceback.extract_stack()[:-1]
        if f.filename != __file__ and not any(part in f.filename for part in _MACHINERY)
    ]
    ours = [f for f in frames if "tailorlm" in f.filename]
    seen: list[str] = []
    for frame in ours[-1:] + frames[-1:]:
        text = f"{_short(frame.filename)}:{frame.lineno} in {frame.name}"
        if text not in seen:
            seen.append(text)
    return " ← ".join(reversed(seen)) or "unknown"


def _short(filename: str) -> str:
    for marker in ("site-packages/", "src/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _record(host: str, port: int | None, allowed: bool, where: str) -> None:
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "host": host,
        "port": port,
        "allowed": allowed,
        "where": where,
        "pid": os.getpid(),
    }
    attempts.append(entry)
    trace = os.environ.get(TRACE_ENV)
    if trace:
        try:
            with open(trace, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        except OSError:
            pass
    if not allowed and _reporter is not None:
        try:
            _reporter("network.refused", inputs=[f"{host}:{port}"], host=host, port=port, where=where)
        except Exception:  # the refusal itself must still be raised
            logging.getLogger(__name__).warning("could not write the network.refused audit event", exc_info=True)


def _address(address: object) -> tuple[str, int | None] | None:
    if isinstance(address, tuple) and address:
        port = address[1] if len(address) > 1 and isinstance(address[1], int) else None
        return str(address[0]), port
    return None  # unix sockets and the like


def _guard(sock: socket.socket, address: object) -> None:
    target = _address(address)
    if target is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host, port = target
    if _policy.loopback and _is_loopback(host.strip("[]")):
        return
    allowed = decide(host, port)
    where = _code_path()
    _record(host, port, allowed, where)
    if not allowed:
        raise NetworkRefused(
            f"connection to {host}:{port} refused: TailorLM runs offline; only loopback and the project's "
            f"`allow_hosts` may be reached (tried from {where})"
        )


def _guarded_connect(self: socket.socket, address: object) -> None:
    _guard(self, address)
    return _original_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _guard(self, address)
    return _original_connect_ex(self, address)  # type: ignore[arg-type]


def allow(hosts: Iterable[str]) -> None:
    """Add hosts (names, addresses, or `host:port`) to the allowlist, e.g. the teacher endpoint's host."""
    global _policy
    added = set(_policy.hosts)
    for host in hosts:
        if not host:
            continue
        added.add(host)
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        try:  # a name resolves to addresses, and sockets connect to those
            for info in socket.getaddrinfo(name or host, None):
                added.add(f"{info[4][0]}:{port}" if port else str(info[4][0]))
        except OSError:
            pass
    _policy = Policy(_policy.loopback, frozenset(added))


def report_to(reporter: Callable[..., Any] | None) -> None:
    """Where refusals are audited: the open workspace's `audit.append` (set by `Workspace`)."""
    global _reporter
    _reporter = reporter


@contextmanager
def policy(*, loopback: bool = True, hosts: Iterable[str] = ()) -> Iterator[None]:
    """Use another policy for a block (tests: refuse loopback except a given `host:port`)."""
    global _policy
    before = _policy
    _policy = Policy(loopback, frozenset(hosts))
    try:
        yield
    finally:
        _policy = before


def enforce(allow_hosts: Iterable[str] = ()) -> None:
    """Set offline variables and install the socket guard (idempotent)."""
    global _installed
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    allow(allow_hosts)
    if not _installed:
        socket.socket.connect = _guarded_connect  # type: ignore[method-assign, assignment]
        socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign, assignment]
        # bitsandbytes tries to fetch a CPU kernel from the Hub on import (so on every model load) and
        # warns when it can't; offline it never can, and the built-in CPU path is used instead.
        logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_HubKernelNotice())
        _installed = True


def state() -> dict[str, Any]:
    """The guard as `tailorlm doctor` shows it."""
    return {
        "installed": _installed,
        "loopback": _policy.loopback,
        "allow_hosts": sorted(_policy.hosts),
        "variables": {key: os.environ.get(key) for key in OFFLINE_ENV},
        "variables_ok": all(os.environ.get(key) == value for key, value in OFFLINE_ENV.items()),
        "attempts": list(attempts),
    }


class _HubKernelNotice(logging.Filter):
    """Drops bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "kernels-community" not in str(record.msg)
