"""The generation engine: one base model in memory and the registered models served on it.

Registered LoRA/DoRA models are named adapters of one `PeftModel` on the base; a request's `model`
picks one (`set_adapter`), and `"base"` runs the base itself (`disable_adapter()`). Runs with full
weights are loaded as separate models. Adapters are loaded and unloaded while the server runs.

All model work happens on one generation thread, never on the caller's (the web server's event
loop only submits jobs and reads events):

* Requests wait in a bounded queue (`Overloaded` when full). The thread takes the oldest request
  and, with it, the other waiting requests for the same model, up to `max_batch_size`, and
  generates them as one batch. Before a batch starts, the thread waits a few milliseconds for more
  requests (`batch_window`), since clients answered together tend to send their next requests
  together. Requests arriving while a batch runs join it every `regroup_steps` steps (the batch is
  re-prefilled with each row's prompt plus its tokens so far), unless an older request for another
  model or an adapter command is waiting: then the batch finishes first, so nothing starves.
* Adapter loads and unloads are commands run by the same thread, so they never race a forward
  pass. Loading into an existing `PeftModel` runs between two decoding steps of a running batch
  (it does not wait for long streams to end); the first adapter (which wraps the base) and
  removing the last one wait until no batch runs. An unloaded or replaced adapter is deleted only
  once no request that picked it is queued or running.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tailorlm.formats.templates import render, stop_strings
from tailorlm.modeling import ModelRef, check_model_dir, load_tokenizer, load_trained
from tailorlm.serve.generation import Delta, Event, Failed, Finished, Job, Row, SamplingParams, run_batch

BASE = "base"


class UnknownModel(LookupError):
    """The request names a model this server does not serve."""


class PromptTooLong(ValueError):
    """The prompt leaves no room for an answer within the model's context."""


class Overloaded(RuntimeError):
    """The request queue is full."""


class AdapterError(ValueError):
    """An adapter can't be loaded or unloaded (the message says why)."""


class AdapterConflict(AdapterError):
    """The adapter name is already served (pass `replace` to swap it)."""


@dataclass(eq=False)
class ServedModel:
    """A model as the API sees it: a name, the tokenizer and template it answers with, and limits."""

    name: str
    kind: str  # "base" | "adapter" | "full"
    key: str  # what a batch runs on: "base", the adapter's name inside the PeftModel, or "full:<name>"
    tokenizer: Any
    context_length: int
    stop_ids: frozenset[int]
    stop_texts: tuple[str, ...]
    system_prompt: str | None = None
    source: str | None = None  # the registered model (`acme@v2`) or run it came from
    created: int = field(default_factory=lambda: int(time.time()))
    model: Any = None  # full-weight models only
    in_flight: int = 0  # queued + running requests (guarded by the engine's lock)
    retired: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "context_length": self.context_length,
        }


@dataclass(eq=False)
class _Command:
    action: Callable[[], Any]
    ready: Callable[[bool], bool]  # given "no batch is running", may it run now?
    future: Future[Any] = field(default_factory=Future)


def context_length(model: Any, tokenizer: Any) -> int:
    """The longest sequence the model takes: its position limit, or the tokenizer's if smaller."""
    config = model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    limits = [
        value
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
        if isinstance(value := getattr(config, name, None), int) and value > 0
    ]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 10_000_000:
        limits.append(tokenizer_limit)
    return min(limits, default=2048)


def stop_tokens(model: Any, tokenizer: Any) -> tuple[frozenset[int], tuple[str, ...]]:
    """The template's stop strings split into token ids (one token each) and plain strings."""
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    texts = tuple(stop_strings(tokenizer))
    for text in texts:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) == 1:
            ids.add(encoded[0])
    # The strings stay text stops too: a model can spell them out in several tokens.
    return frozenset(ids), texts


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class Engine:
    """One base model, the models served on it, and the generation thread that runs them."""

    def __init__(
        self,
        base_model: Path,
        *,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        max_batch_size: int = 8,
        max_queue: int = 64,
        threads: int | None = None,
        batch_window: float = 0.005,
        regroup_steps: int = 8,
    ) -> None:
        from transformers import AutoModelForCausalLM

        if max_batch_size < 1 or max_queue < 1:
            raise ValueError(f"max_batch_size and max_queue must be >= 1 (got {max_batch_size}, {max_queue})")
        self.threads = threads
        if threads:  # process-wide for torch's pool; set again on the generation thread (OpenMP is per thread)
            torch.set_num_threads(threads)
        self.base_path = check_model_dir(base_model)
        self.device = device or default_device()
        self.dtype = dtype or default_dtype(self.device)
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.batch_window = batch_window
        self.regroup_steps = regroup_steps
        self.tokenizer = load_tokenizer(self.base_path)
        base: Any = AutoModelForCausalLM.from_pretrained(self.base_path, local_files_only=True, dtype=self.dtype)
        self._base: Any = base.to(self.device).eval()
        self._peft: Any = None  # the PeftModel around the base, once an adapter is loaded
        self._encode_lock = threading.Lock()
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()
        self._commands: list[_Command] = []
        self._models: dict[str, ServedModel] = {}  # by API name
        self._by_key: dict[str, ServedModel] = {}  # by batch key (retired ones too, until deleted)
        self._adapter_ids = itertools.count(1)
        self._closed = False
        self._running: list[Job] = []
        self._incoming = 0
        self.stats = {"batches": 0, "regroups": 0, "requests": 0, "tokens": 0, "cancelled": 0, "largest_batch": 0}
        self._add(self._served(BASE, "base", BASE, self._base, self.tokenizer))
        self._thread = threading.Thread(target=self._work, name="tailorlm-generation", daemon=True)
        self._thread.start()

    # the model table -------------------------------------------------------------------------------
    def _served(self, name: str, kind: str, key: str, network: Any, tokenizer: Any, **extra: Any) -> ServedModel:
        stop_ids, stop_texts = stop_tokens(network, tokenizer)
        return ServedModel(
            name=name,
            kind=kind,
            key=key,
            tokenizer=tokenizer,
            context_length=context_length(network, tokenizer),
            stop_ids=stop_ids,
            stop_texts=stop_texts,
            **extra,
        )

    def _add(self, served: ServedModel) -> None:
        with self._lock:
            self._models[served.name] = served
            self._by_key[served.key] = served

    def names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def models(self) -> list[ServedModel]:
        with self._lock:
            return list(self._models.values())

    def get(self, name: str) -> ServedModel:
        with self._lock:
            served = self._models.get(name)
            if served is None:
                raise UnknownModel(f"model {name!r} is not served here; served: {', '.join(self._models)}")
            return served

    @property
    def queued(self) -> int:
        return len(self._queue)

    # adapters and full-weight models ---------------------------------------------------------------
    def load(self, name: str, ref: ModelRef, *, replace: bool = False, timeout: float | None = None) -> ServedModel:
        """Serve a registered model under `name`: an adapter on the base, or full weights of its own.

        Blocks until loaded (call it from a worker thread in async code). With `replace`, an existing
        `name` is swapped atomically: requests already queued finish on the old one.
        """
        if name == BASE or not name or "/" in name:
            raise AdapterError(f"adapter name must be a non-empty name other than {BASE!r} without '/' (got {name!r})")
        with self._lock:
            if name in self._models and not replace:
                raise AdapterConflict(f"a model named {name!r} is already served; unload it first or replace it")
        source = f"{ref.name}@{ref.version}" if ref.version else ref.name
        if not ref.artifact_dir.is_dir():
            raise AdapterError(f"{source}: its artifact folder {ref.artifact_dir} is missing")
        if ref.is_adapter:
            if Path(ref.base_model).resolve() != self.base_path:
                raise AdapterError(
                    f"{source} was trained on {ref.base_model}, but this server's base model is {self.base_path}; "
                    "start a server on that base to serve it"
                )
            key = f"adapter-{next(self._adapter_ids)}"
            return self._submit_command(
                lambda: self._load_adapter(name, key, ref, source),
                ready=lambda idle: idle or self._peft is not None,
                timeout=timeout,
            )
        model, tokenizer = load_trained(ref.artifact_dir, ref.base_model, device=self.device, dtype=self.dtype)
        served = self._served(
            name,
            "full",
            f"full:{name}:{next(self._adapter_ids)}",
            model,
            tokenizer,
            system_prompt=ref.system_prompt,
            source=source,
            model=model,
        )
        return self._submit_command(lambda: self._publish(served), ready=lambda idle: True, timeout=timeout)

    def unload(self, name: str) -> None:
        """Stop serving `name` now (new requests get `UnknownModel`); memory is freed once its
        queued and running requests are done."""
        if name == BASE:
            raise AdapterError("the base model can't be unloaded")
        with self._lock:
            served = self._models.pop(name, None)
            if served is None:
                raise UnknownModel(f"model {name!r} is not served here; served: {', '.join(self._models)}")
            self._retire(served)
            self._lock.notify_all()

    def _retire(self, served: ServedModel) -> None:
        """Schedule deletion of a model no longer reachable by name (caller holds the lock)."""
        served.retired = True
        command = _Command(action=lambda: self._delete(served), ready=lambda idle: self._deletable(served, idle))
        self._commands.append(command)

    def _deletable(self, served: ServedModel, idle: bool) -> bool:
        if served.in_flight:
            return False
        if served.kind == "adapter":
            others = [m for m in self._by_key.values() if m.kind == "adapter" and m is not served]
            return idle or bool(others)
        return True

    def _load_adapter(self, name: str, key: str, ref: ModelRef, source: str) -> ServedModel:
        from peft import PeftModel

        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self._base, ref.artifact_dir, adapter_name=key)
                self._peft.eval()
            else:
                self._peft.load_adapter(ref.artifact_dir, adapter_name=key)
        except Exception as error:  # peft raises many kinds for a bad adapter folder
            raise AdapterError(f"{source}: the adapter can't be loaded: {error}") from error
        served = ServedModel(
            name=name,
            kind="adapter",
            key=key,
            tokenizer=self.tokenizer,
            context_length=self._by_key[BASE].context_length,
            stop_ids=self._by_key[BASE].stop_ids,
            stop_texts=self._by_key[BASE].stop_texts,
            system_prompt=ref.system_prompt,
            source=source,
        )
        return self._publish(served)

    def _publish(self, served: ServedModel) -> ServedModel:
        with self._lock:
            previous = self._models.get(served.name)
            self._add(served)
            if previous is not None:
                self._retire(previous)
        return served

    def _delete(self, served: ServedModel) -> None:
        with self._lock:
            self._by_key.pop(served.key, None)
            remaining = any(m.kind == "adapter" for m in self._by_key.values())
        if served.kind == "adapter":
            if remaining:
                if served.key in self._peft.active_adapters:  # switch first: deleting the active one warns
                    other = next(m.key for m in self._by_key.values() if m.kind == "adapter")
                    self._peft.set_adapter(other, inference_mode=True)
                self._peft.delete_adapter(served.key)
            else:  # the last adapter: give the plain base back (runs only when no batch is running)
                self._base = self._peft.unload()
                self._peft = None
        served.model = None

    # prompts ----------------------------------------------------------------------------------------
    def encode(self, served: ServedModel, text: str, *, add_special_tokens: bool) -> list[int]:
        with self._encode_lock:
            return list(served.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def chat_prompt(self, served: ServedModel, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a conversation rendered exactly as in training (the model's system prompt
        is added when the conversation has none)."""
        messages = list(messages)
        if served.system_prompt and (not messages or messages[0]["role"] != "system"):
            messages.insert(0, {"role": "system", "content": served.system_prompt})
        text = render(served.tokenizer, messages, add_generation_prompt=True)
        return self.check_length(served, self.encode(served, text, add_special_tokens=False))

    def text_prompt(self, served: ServedModel, prompt: str) -> list[int]:
        """Token ids of a raw completion prompt (special tokens added as in continued pretraining)."""
        ids = self.encode(served, prompt, add_special_tokens=True)
        if not ids:
            bos = served.tokenizer.bos_token_id
            if bos is None:
                raise PromptTooLong("the prompt is empty and this model has no beginning-of-text token to start from")
            ids = [bos]
        return self.check_length(served, ids)

    @staticmethod
    def check_length(served: ServedModel, ids: list[int]) -> list[int]:
        if len(ids) >= served.context_length:
            raise PromptTooLong(
                f"the prompt is {len(ids)} tokens, but model {served.name!r} has a context of "
                f"{served.context_length} tokens, which leaves no room for an answer; shorten the prompt"
            )
        return ids

    # requests ---------------------------------------------------------------------------------------
    def submit(
        self,
        served: ServedModel,
        prompt_ids: list[int],
        params: SamplingParams,
        emit: Callable[[Event], None],
        *,
        emit_interval: float = 0.0,
    ) -> Job:
        """Queue a request; `emit` receives its events on the generation thread, text at most every
        `emit_interval` seconds (0: every piece; `math.inf`: all at the end)."""
        job = Job(model_key=served.key, prompt_ids=prompt_ids, params=params, emit=emit, emit_interval=emit_interval)

        def done() -> None:
            with self._lock:
                served.in_flight -= 1
                self._lock.notify_all()

        job.on_done = done
        with self._lock:
            if self._closed:
                raise Overloaded("the server is shutting down")
            if served.retired:
                raise UnknownModel(f"model {served.name!r} was unloaded")
            if len(self._queue) >= self.max_queue:
                raise Overloaded(f"the request queue is full ({self.max_queue} waiting); retry shortly")
            served.in_flight += 1
            self._queue.append(job)
            self._lock.notify_all()
        return job

    def generate(self, name: str, prompt_ids: list[int], params: SamplingParams) -> Iterator[Event]:
        """Events of one request, for synchronous callers (tests, scripts)."""
        events: queue.Queue[Event] = queue.Queue()
        job = self.submit(self.get(name), prompt_ids, params, events.put)
        try:
            while True:
                event = events.get()
                yield event
                if not isinstance(event, Delta):
                    return
        finally:
            job.cancel()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the generation thread after the running batch; queued requests are cancelled."""
        with self._lock:
            self._closed = True
            for job in [*self._queue, *self._running]:
                job.cancel()
            self._lock.notify_all()
        self._thread.join(timeout)

    # the generation thread ---------------------------------------------------------------------------
    def _submit_command(
        self, action: Callable[[], Any], *, ready: Callable[[bool], bool], timeout: float | None
    ) -> Any:
        command = _Command(action=action, ready=ready)
        with self._lock:
            if self._closed:
                raise AdapterError("the server is shutting down")
            self._commands.append(command)
            self._lock.notify_all()
        return command.future.result(timeout)

    def _ready_commands(self, idle: bool) -> list[_Command]:
        return [c for c in self._commands if c.ready(idle)]

    def _run_commands(self, idle: bool) -> None:
        if not self._commands:  # cheap check between decoding steps
            return
        with self._lock:
            ready = self._ready_commands(idle)
            for command in ready:
                self._commands.remove(command)
        for command in ready:
            try:
                command.future.set_result(command.action())
            except BaseException as error:
                command.future.set_exception(error)

    def _take_batch(self) -> list[Job]:
        """The oldest request and the other waiting ones for the same model (caller holds the lock)."""
        while self._queue and self._queue[0].cancelled.is_set():
            self._done(self._queue.popleft())
        if not self._queue:
            return []
        key = self._queue[0].model_key
        batch = [job for job in self._queue if job.model_key == key][: self.max_batch_size]
        for job in batch:
            self._queue.remove(job)
        return batch

    @staticmethod
    def _done(job: Job) -> None:
        if job.on_done is not None:
            job.on_done()

    def _work(self) -> None:
        if self.threads:  # torch's intra-op thread count is per calling thread: set it on this one
            torch.set_num_threads(self.threads)
        while True:
            with self._lock:
                while not (self._queue or self._closed or self._ready_commands(idle=True)):
                    self._lock.wait()
                if self._closed:
                    while self._queue:
                        self._done(self._queue.popleft())
                    return
            self._run_commands(idle=True)
            with self._lock:
                self._gather()
                batch = self._running = self._take_batch()
            if batch:
                self._generate(batch)

    def _gather(self) -> None:
        """Let a batch fill before it starts (caller holds the lock): wait up to `batch_window`
        after the oldest request arrived, since clients answered by one batch send their next
        requests a few milliseconds apart, and up to 10x that while requests already received are
        still being tokenised (`incoming`)."""
        while self._queue and not self._closed:
            oldest = self._queue[0]
            same = sum(job.model_key == oldest.model_key for job in self._queue)
            window = self.batch_window * (10 if self._incoming else 1)
            remaining = oldest.arrived + window - time.monotonic()
            if same >= self.max_batch_size or remaining <= 0:
                return
            self._lock.wait(remaining)

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Mark a request as on its way (being tokenised) until it is submitted or refused, so a
        batch about to start waits for it a little."""
        with self._lock:
            self._incoming += 1
        try:
            yield
        finally:
            with self._lock:
                self._incoming -= 1
                self._lock.notify_all()

    @contextmanager
    def _model_for(self, served: ServedModel) -> Iterator[Any]:
        """The network that answers for `served`, with its adapter active (or all disabled for base)."""
        if served.kind == "full":
            yield served.model
        elif served.kind == "adapter":
            self._peft.set_adapter(served.key, inference_mode=True)
            yield self._peft
        elif self._peft is not None:
            with self._peft.disable_adapter():
                yield self._peft
        else:
            yield self._base

    def _should_regroup(self, key: str, rows: list[Row], steps: int) -> bool:
        """End the running batch so waiting requests can join it: every `regroup_steps` steps, when
        there is room, nothing else waits for the thread (commands, other models' older requests),
        and the oldest waiting request is for this model."""
        if not self.regroup_steps or steps % self.regroup_steps:
            return False
        if sum(row.finished is None for row in rows) >= self.max_batch_size:
            return False
        with self._lock:
            if self._commands or self._closed:
                return False
            oldest = next((job for job in self._queue if not job.cancelled.is_set()), None)
            return oldest is not None and oldest.model_key == key

    def _take_joining(self, key: str, room: int) -> list[Job]:
        """Waiting requests for `key`, oldest first, at most `room` (caller holds the lock)."""
        joining = [job for job in self._queue if job.model_key == key and not job.cancelled.is_set()][:room]
        for job in joining:
            self._queue.remove(job)
        self._running.extend(joining)
        return joining

    @staticmethod
    def _isolate(model: Any, rows: list[Row], error: Exception, options: dict[str, Any]) -> None:
        """A batch failed as a whole (in the forward pass, not in one row's sampling): run each
        unfinished row on its own from where it stands, so only the request at fault gets an error."""
        unfinished = [r for r in rows if r.finished is None]
        if len(unfinished) == 1:
            unfinished[0].fail(error)
            return
        for row in unfinished:
            try:
                run_batch(model, [row], **options)
            except Exception as alone:
                row.fail(alone)

    def _generate(self, batch: list[Job]) -> None:
        served = self._by_key[batch[0].model_key]

        def row(job: Job) -> Row:
            return Row(job, served.tokenizer, served.stop_ids, served.stop_texts)

        rows = [row(job) for job in batch]
        every = list(rows)  # each row the batch ever had (regrouping adds some)
        largest = len(rows)
        pad = served.tokenizer.pad_token_id
        pad = pad if pad is not None else served.tokenizer.eos_token_id
        options: dict[str, Any] = {
            "pad_token_id": pad,
            "device": self.device,
            "between_steps": lambda: self._run_commands(idle=False),
        }
        try:
            with self._model_for(served) as model:
                while rows:
                    current = rows
                    regroup = functools.partial(self._should_regroup, served.key, current)
                    try:
                        regrouped = run_batch(model, current, regroup=regroup, **options)
                    except Exception as error:
                        self._isolate(model, current, error, options)
                        break
                    rows = [r for r in current if r.finished is None]
                    if not regrouped:
                        break
                    with self._lock:
                        joining = [row(job) for job in self._take_joining(served.key, self.max_batch_size - len(rows))]
                        self.stats["regroups"] += 1
                    rows += joining
                    every += joining
                    largest = max(largest, len(rows))
        except BaseException as error:  # an error outside any row's work ends the batch, never the thread
            for failed in every:
                if failed.finished is None:
                    failed.finished = "error"
                    failed.job.emit(Failed(error))
        finally:
            with self._lock:
                self._running = []
                self.stats["batches"] += 1
                self.stats["requests"] += len(every)
                self.stats["tokens"] += sum(len(r.tokens) for r in every)
                self.stats["cancelled"] += sum(r.finished == "cancelled" for r in every)
                self.stats["largest_batch"] = max(self.stats["largest_batch"], largest)
            for done in every:
                self._done(done.job)


__all__ = [
    "BASE",
    "AdapterConflict",
    "AdapterError",
    "Delta",
    "Engine",
    "Failed",
    "Finished",
    "Overloaded",
    "PromptTooLong",
    "SamplingParams",
    "ServedModel",
    "UnknownModel",
]
