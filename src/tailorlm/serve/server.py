"""`serve()` starts the API for a workspace's registered models; `deploy()` hot-loads one into a
running server. Both are what the CLI verbs `tailorlm serve` and `tailorlm models deploy` call."""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tailorlm import offline
from tailorlm.config import ServeSettings
from tailorlm.errors import UserError
from tailorlm.governance import require_release
from tailorlm.lifecycle import stop_signals
from tailorlm.modeling import ModelRef, resolve_model
from tailorlm.workspace import Workspace

logger = logging.getLogger(__name__)
_DEFAULTS = ServeSettings()  # the defaults are written once, in config.ServeSettings


class ServeError(UserError, ValueError):
    """The server can't start with these settings (the message says what to change)."""


class DeployError(UserError, RuntimeError):
    """The running server refused the model (its error message is included)."""


def served_name(reference: str) -> str:
    """The name clients use for a model: `acme` for `acme@v3`, `canary` for `canary=acme@v3`."""
    alias, _, model = reference.partition("=")
    return alias if model else reference.partition("@")[0]


def serve(
    workspace: Workspace,
    *,
    models: list[str],
    host: str = _DEFAULTS.host,
    port: int = _DEFAULTS.port,
    no_auth: bool = not _DEFAULTS.auth,
    max_body_bytes: int = _DEFAULTS.max_body_bytes,
    max_tokens_cap: int = _DEFAULTS.max_tokens_cap,
    rate_limit_per_minute: int = _DEFAULTS.rate_limit_per_minute,
    log_texts: bool = _DEFAULTS.log_texts,
    log_retention_days: float | None = _DEFAULTS.log_retention_days,
    base_model: Path | None = None,
    device: str | None = None,
    max_batch_size: int = _DEFAULTS.max_batch_size,
    max_queue: int = _DEFAULTS.max_queue,
    threads: int | None = _DEFAULTS.threads,
) -> None:
    """Serve registered models over the OpenAI-compatible API until interrupted.

    Args:
        models: Registered models (`name`, `name@vN`) or run ids. Each is served under its name
            without the version (`acme@v3` as `acme`), or under an alias given as `alias=model`.
            Adapters share one base model, which is also served as `base`.
        host: Interface to listen on; `no_auth` is refused unless it is loopback.
        no_auth: Accept requests without API keys (local experiments only).
        max_body_bytes: Larger request bodies get 413.
        max_tokens_cap: Most tokens one answer may have (higher `max_tokens` is lowered to it).
        rate_limit_per_minute: Requests per minute per key (0: no limit); over it, 429.
        log_texts: Also keep prompts and answers in the request log, with PII redacted.
        log_retention_days: Request-log rows older than this are purged (None keeps them).
        base_model: The base to serve when `models` is empty (else the models' base).
        device: `cpu`, `cuda`...; default the GPU if there is one.
        max_batch_size: Most requests generated together.
        max_queue: Most requests waiting; beyond it, 503.
        threads: CPU threads for torch (default: torch's choice).
    """
    import uvicorn

    offline.enforce()
    from tailorlm.feedback import record as record_feedback
    from tailorlm.serve.app import create_app
    from tailorlm.serve.auth import KeyStore
    from tailorlm.serve.engine import Engine
    from tailorlm.serve.limits import Limits
    from tailorlm.serve.logs import log_config
    from tailorlm.serve.request_log import RequestLog, check_retention

    check_retention(log_retention_days)
    if no_auth and not offline.is_loopback(host):
        raise ServeError(
            f"--no-auth is refused on {host}: without API keys the server must listen on loopback only "
            "(127.0.0.1); create a key with `tailorlm keys create` to serve other machines"
        )
    limits = Limits(
        max_body_bytes=max_body_bytes, max_tokens_cap=max_tokens_cap, rate_limit_per_minute=rate_limit_per_minute
    )
    for reference in models:
        require_release(workspace, reference.partition("=")[2] or reference, verb="serve")
    refs = [
        (served_name(reference), resolve_model(workspace, reference.partition("=")[2] or reference))
        for reference in models
    ]
    names = [name for name, _ in refs]
    if len(set(names)) != len(names):
        raise ServeError(
            f"two models would be served under one name ({', '.join(names)}); "
            "name them with alias=model, e.g. canary=acme@v2"
        )
    from tailorlm.classifier import is_classifier, load_classifier

    heads = [(name, ref) for name, ref in refs if is_classifier(ref.artifact_dir)]  # POST /v1/classify
    refs = [(name, ref) for name, ref in refs if not is_classifier(ref.artifact_dir)]
    base = base_model or next((ref.base_model for _, ref in refs), None)
    if base is None and not heads:
        raise ServeError("nothing to serve: name at least one registered model (or a base_model)")
    auth = None if no_auth else KeyStore(workspace)
    if auth is not None and not len(auth):
        logger.warning("no API keys yet: every request will get 401 until one is created (`tailorlm keys create`)")
    engine = (  # none when only classification models are served: they answer without generating
        Engine(Path(base), device=device, max_batch_size=max_batch_size, max_queue=max_queue, threads=threads)
        if base is not None
        else None
    )
    if engine is None and threads:
        import torch

        torch.set_num_threads(threads)
    logging_setup = log_config()
    logging.config.dictConfig(logging_setup)  # from here on every console line is redacted (see serve/logs.py)
    request_log = RequestLog(workspace, log_texts=log_texts, retention_days=log_retention_days)
    try:
        for name, ref in refs:
            assert engine is not None  # a generative model gives the engine its base
            engine.load(name, ref)
        classifiers = {name: load_classifier(ref.artifact_dir, ref.base_model, device=device) for name, ref in heads}
        app = create_app(
            engine,
            auth=auth,
            limits=limits,
            request_log=request_log,
            resolve_model=lambda reference: _releasable(workspace, reference),
            audit=workspace.audit.append,
            feedback=functools.partial(record_feedback, workspace),
            classifiers=classifiers,
        )
        workspace.audit.append(
            "serve.start",
            inputs=[f"{r.name}@{r.version}" if r.version else r.name for _, r in refs + heads],
            host=host,
            port=port,
            no_auth=no_auth,
        )
        with stop_signals():  # uvicorn re-raises the SIGTERM it caught: to us, so `serve.stop` is written
            uvicorn.run(
                app, host=host, port=port, log_level="info", log_config=logging_setup, timeout_graceful_shutdown=5
            )
    finally:
        if engine is not None:
            engine.close()
        request_log.close()
        workspace.audit.append("serve.stop", host=host, port=port)


def _releasable(workspace: Workspace, reference: str) -> ModelRef:
    """A model the running server may hot-load: approved first when the project requires it."""
    require_release(workspace, reference, verb="deploy")
    return resolve_model(workspace, reference)


def deploy(
    workspace: Workspace, name: str, *, url: str, admin_key: str | None, timeout: float = 600.0
) -> dict[str, Any]:
    """Load the registered model `name` (`acme`, `acme@v3` or `alias=acme@v3`) into the server at `url`,
    replacing the version it serves under that name, without a restart. Returns the server's
    description of the loaded model.

    The reference is resolved here first (so `acme` means this workspace's latest version, pinned as
    `acme@vN`); the server loads it from its own workspace, which must hold the same registry.
    """
    offline.enforce()
    require_release(workspace, name.partition("=")[2] or name, verb="deploy")
    ref: ModelRef = resolve_model(workspace, name.partition("=")[2] or name)
    pinned = f"{ref.name}@{ref.version}" if ref.version else ref.name
    alias = served_name(name)
    body = json.dumps({"name": alias, "model": pinned, "replace": True}).encode()
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DeployError(f"the server URL must start with http:// or https:// (got {url!r})")
    target = urllib.parse.urljoin(url.rstrip("/") + "/", "v1/adapters")
    headers = {"content-type": "application/json"}
    if admin_key:
        headers["authorization"] = f"Bearer {admin_key}"
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            result = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read())["error"]["message"]
        except Exception:
            message = error.reason
        raise DeployError(f"{url} refused {pinned} ({error.code}): {message}") from None
    except urllib.error.URLError as error:
        raise DeployError(f"can't reach the server at {url}: {error.reason}") from None
    workspace.audit.append("deploy", inputs=[pinned], url=url, name=alias)
    return result


def wait_until_healthy(url: str, *, process: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    """Wait until a server's `GET /health` answers 200 (e.g. one started with `tailorlm serve` in a
    script). Raises `ServeError` with the process's output when it exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        exited = process is not None and process.poll() is not None
        if exited or time.monotonic() > deadline:
            output = ""
            if process is not None and exited:
                stream = process.stdout or process.stderr
                output = stream.read() if stream else ""
            reason = "exited" if exited else f"did not answer /health within {timeout:.0f} s"
            raise ServeError(f"the server at {url} {reason}\n{output}".rstrip())
        time.sleep(0.2)
