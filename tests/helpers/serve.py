"""Shared pieces of the serve tests: a workspace with a trained, registered adapter (built once per
session), a real uvicorn server on a free loopback port run in a thread, the official client for it, and a
middleware that records the requests it receives."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

_trained: dict[str, Path] = {}


def trained_workspace_root(tmp_path_factory: Any, tiny_model_dir: Path) -> Path:
    """A workspace on the tiny model with one LoRA run registered as `acme` and again as `support`
    (same weights, two names, for adapter management tests). Built once per test session."""
    if str(tiny_model_dir) in _trained:
        return _trained[str(tiny_model_dir)]
    from helpers.data import train_registered
    from tailorlm.workspace import Workspace

    root = tmp_path_factory.mktemp("serve-ws")
    workspace = Workspace(root)
    try:
        train_registered(workspace, tiny_model_dir, "acme", "support", learning_rate=3e-3, max_steps=2)
    finally:
        workspace.close()
    _trained[str(tiny_model_dir)] = root
    return root


@contextmanager
def single_torch_thread() -> Iterator[None]:
    """Tests share 2 cores with other processes; one intra-op thread avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 (free port) in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def openai_client(url: str, key: str | None = "none", **options: Any) -> Any:
    """The official client against the test server, without retries (a 429 must surface)."""
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=key or "none", max_retries=0, timeout=60, **options)


class RecordingMiddleware:
    """ASGI middleware that keeps every chat request body the server receives."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.bodies.append(json.loads(body))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def scripted_teacher(answer: Callable[[str], str]) -> Any:
    """An OpenAI-compatible app whose replies are `answer(last user message)`, in `tailorlm serve`'s
    response schema."""
    from fastapi import FastAPI

    from tailorlm.serve.schemas import AssistantMessage, ChatChoice, ChatCompletion, Usage

    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict[str, Any]) -> dict[str, Any]:
        text = answer(body["messages"][-1]["content"])
        return ChatCompletion(
            id="chatcmpl-test",
            created=int(time.time()),
            model=body["model"],
            choices=[ChatChoice(index=0, message=AssistantMessage(content=text), finish_reason="stop")],
            usage=Usage(prompt_tokens=100, completion_tokens=50, total_tokens=150),
        ).model_dump()

    return app
