"""The playground's models: one serving engine per base model, loaded on first use and kept, with each
registered model's adapter hot-loaded beside the base (the same engine `tailorlm serve` runs), so the
fine-tuned model and its base answer the same prompt with the same system prompt and decoding; optionally
with the passages the RAG baseline would retrieve, added to the system prompt as that baseline does."""

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
        self._retrievers: dict[str, Any] = {}
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

    def retrieve(self, reference: str, query: str, k: int = 2) -> list[Any]:
        """The passages the RAG baseline would retrieve for `query` from the model's dataset: its document
        chunks, else its train split's question/answer pairs (BM25, built once per dataset)."""
        from tailorlm.dataset_splits import load_split
        from tailorlm.evaluate.baselines import BM25Retriever, document_passages, example_passages
        from tailorlm.registry import ModelMeta

        model = self.workspace.resolve("model", reference.removeprefix(f"{BASE}:"))
        dataset_id = model.meta_as(ModelMeta).dataset
        if not dataset_id:
            return []
        with self._lock:
            retriever = self._retrievers.get(dataset_id)
            if retriever is None:
                dataset = self.workspace.registry.get(dataset_id)
                passages = document_passages(self.workspace, dataset) or example_passages(
                    load_split(self.workspace, dataset, "train")
                )
                retriever = self._retrievers[dataset_id] = BM25Retriever(passages) if passages else None
        return retriever.search(query, k) if retriever is not None else []

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
            self._loaded.clear()
