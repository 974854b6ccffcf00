"""Air-gap for every entry point: Hugging Face offline variables, telemetry off, and a socket guard.

`enforce()` is called by each CLI verb and by the library functions that load models. It sets the
offline variables before any Hugging Face library reads them and installs a guard on outgoing
connections: loopback and the hosts in the project's allowlist (teacher/judge endpoints) pass,
anything else raises `NetworkRefused` naming the host.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Iterable

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
    "TOKENIZERS_PARALLELISM": "false",
}

_allowed_hosts: set[str] = set()
_original_connect = socket.socket.connect
_original_create_connection = socket.create_connection
_installed = False


class NetworkRefused(UserError, ConnectionRefusedError):
    """An outgoing connection to a host that is neither loopback nor in the project's allowlist."""


def _is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain", ""}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str) -> None:
    """Raise `NetworkRefused` unless `host` is loopback or allowlisted."""
    if _is_loopback(host) or host in _allowed_hosts:
        return
    raise NetworkRefused(
        f"connection to {host!r} refused: TailorLM runs offline; only loopback and the hosts in the "
        "project's `allow_hosts` may be reached"
    )


def _address_host(address: object) -> str | None:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None  # unix sockets and the like


def _guarded_connect(self: socket.socket, address: object) -> None:
    host = _address_host(address)
    if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
        check_host(host)
    return _original_connect(self, address)  # type: ignore[arg-type]


def allow(hosts: Iterable[str]) -> None:
    """Add hosts (names or addresses) to the allowlist, e.g. the teacher endpoint's host."""
    for host in hosts:
        if host:
            _allowed_hosts.add(host)
            try:  # a name resolves to addresses, and sockets connect to those
                for info in socket.getaddrinfo(host, None):
                    _allowed_hosts.add(str(info[4][0]))
            except OSError:
                pass


def enforce(allow_hosts: Iterable[str] = ()) -> None:
    """Set offline variables and install the socket guard (idempotent)."""
    global _installed
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    allow(allow_hosts)
    if not _installed:
        socket.socket.connect = _guarded_connect  # type: ignore[method-assign, assignment]
        # bitsandbytes tries to fetch a CPU kernel from the Hub on import (so on every model load) and
        # warns when it can't; offline it never can, and the built-in CPU path is used instead.
        logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_HubKernelNotice())
        _installed = True


class _HubKernelNotice(logging.Filter):
    """Drops bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "kernels-community" not in str(record.msg)
