"""The playground's models: one serving engine per base model, loaded on first use and kept, with each
registered model's adapter hot-loaded beside the base (the same engine `tailorlm serve` runs), so the
fine-tuned model and its base answer the same prompt with the same system prompt and decoding."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tailorlm.modeling import resolve_model
from tailorlm.workspace import Workspace

BASE = "base"


class Playground:
    """Engines by base model folder; thread-safe, loaded lazily (a page never waits for a model it doesn't use)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._engines: dict[Path, Any] = {}
        self._loaded: dict[tuple[Path, str], str] = {}
        self._lock = threading.Lock()

    def _engine_for(self, reference: str) -> tuple[Any, str]:
        """(the engine, the name to ask it for) of a registered model `name@version`, or `base:<model>`."""
        from tailorlm.serve.engine import Engine

        as_base = reference.startswith(f"{BASE}:")
        ref = resolve_model(self.workspace, reference.removeprefix(f"{BASE}:"))
        base = Path(ref.base_model).resolve()
        with self._lock:
            engine = self._engines.get(base)
            if engine is None:
                engine = self._engines[base] = Engine(base, max_batch_size=4, max_queue=16)
            if as_base:
                return engine, BASE
            name = f"{ref.name}-{ref.version}" if ref.version else ref.name
            if (base, name) not in self._loaded:
                engine.load(name, ref)
                self._loaded[(base, name)] = name
            return engine, name

    async def stream(
        self, reference: str, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[str]:
        """The answer's text as it is generated."""
        from tailorlm.serve.generation import Delta, Failed, SamplingParams

        engine, name = await asyncio.to_thread(self._engine_for, reference)
        served = engine.get(name)
        ids = await asyncio.to_thread(engine.chat_prompt, served, messages)
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=0)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        job = engine.submit(served, ids, params, lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        try:
            while True:
                event = await events.get()
                if isinstance(event, Delta):
                    if event.text:
                        yield event.text
                    continue
                if isinstance(event, Failed):
                    raise event.error
                return
        finally:
            job.cancel()

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
            self._loaded.clear()
