"""The generation engine on the tiny model: batching, stops, seeds, cancellation, adapters, limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from helpers.serve import single_torch_thread, trained_workspace_root
from tailorlm.modeling import ModelRef, resolve_model
from tailorlm.serve.engine import (
    AdapterConflict,
    AdapterError,
    Delta,
    Engine,
    Finished,
    Overloaded,
    PromptTooLong,
    SamplingParams,
    UnknownModel,
)
from tailorlm.serve.generation import Job, Row
from tailorlm.workspace import Workspace


@pytest.fixture(scope="module")
def serve_workspace(tmp_path_factory, tiny_model_dir):
    workspace = Workspace(trained_workspace_root(tmp_path_factory, tiny_model_dir))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def engine(serve_workspace, tiny_model_dir):
    with single_torch_thread():
        engine = Engine(tiny_model_dir, max_batch_size=8, max_queue=16, threads=1)
        engine.load("acme", resolve_model(serve_workspace, "acme"))
        yield engine
        engine.close()


def answer(engine: Engine, model: str, prompt_ids: list[int], **params) -> tuple[str, Finished]:
    events = list(engine.generate(model, prompt_ids, SamplingParams(**{"max_tokens": 16, **params})))
    assert isinstance(events[-1], Finished), events[-1]
    return "".join(e.text for e in events if isinstance(e, Delta)), events[-1]


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Stats are counted just after a batch's last event: poll briefly."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def chat_ids(engine: Engine, model: str, text: str) -> list[int]:
    return engine.chat_prompt(engine.get(model), [{"role": "user", "content": text}])


def test_greedy_is_deterministic_and_counts_tokens(engine):
    ids = chat_ids(engine, "acme", "Where is my order?")
    first, finished = answer(engine, "acme", ids, temperature=0, max_tokens=12, ignore_eos=True)
    second, _ = answer(engine, "acme", ids, temperature=0, max_tokens=12, ignore_eos=True)
    assert first == second
    assert finished == Finished("length", len(ids), 12)


def test_seed_makes_sampling_reproducible(engine):
    ids = chat_ids(engine, "base", "Hello")
    runs = [
        answer(engine, "base", ids, temperature=1.0, top_p=0.95, seed=seed, ignore_eos=True)[0] for seed in (3, 3, 4)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_model_system_prompt_is_rendered_with_the_training_template(engine):
    from tailorlm.formats.templates import render

    served = engine.get("acme")
    ids = engine.chat_prompt(served, [{"role": "user", "content": "Hi"}])
    expected = render(
        served.tokenizer,
        [{"role": "system", "content": "You are Acme support."}, {"role": "user", "content": "Hi"}],
        add_generation_prompt=True,
    )
    assert served.tokenizer.decode(ids) == expected
    assert len(engine.chat_prompt(engine.get("base"), [{"role": "user", "content": "Hi"}])) < len(ids)


def test_prompt_longer_than_the_context_is_refused(engine):
    served = engine.get("base")
    with pytest.raises(PromptTooLong, match=f"context of {served.context_length} tokens"):
        engine.chat_prompt(served, [{"role": "user", "content": "word " * 2000}])


def test_unknown_model_names_the_served_ones(engine):
    with pytest.raises(UnknownModel, match="served: base, acme"):
        engine.get("nope")


def test_stop_string_is_cut_and_never_streamed_in_part(engine):
    tokenizer = engine.tokenizer
    text = "Refunds are issued to the original payment method within ten days."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    sent: list[object] = []
    job = Job(
        model_key="base", prompt_ids=[1], params=SamplingParams(max_tokens=100, stop=("payment",)), emit=sent.append
    )
    row = Row(job, tokenizer, frozenset(), ())
    for token in ids:
        if row.finished is None:
            row.step(token)
    deltas = [e.text for e in sent if isinstance(e, Delta)]
    assert "".join(deltas) == "Refunds are issued to the original "
    assert not any("pay" in d for d in deltas)
    assert sent[-1] == Finished(
        "stop", 1, len(tokenizer("Refunds are issued to the original payment", add_special_tokens=False)["input_ids"])
    )


def test_held_back_text_is_sent_when_it_is_not_a_stop(engine):
    tokenizer = engine.tokenizer
    ids = tokenizer("thank you", add_special_tokens=False)["input_ids"]
    sent: list[object] = []
    job = Job(
        model_key="base", prompt_ids=[1], params=SamplingParams(max_tokens=len(ids), stop=("you!",)), emit=sent.append
    )
    row = Row(job, tokenizer, frozenset(), ())
    for token in ids:
        row.step(token)
    assert "".join(e.text for e in sent if isinstance(e, Delta)) == "thank you"
    assert sent[-1].reason == "length"


def test_requests_arriving_during_a_batch_join_it_and_match_single_runs(engine):
    prompts = [chat_ids(engine, "acme", q) for q in ("Hi", "Where is my order?", "How do I pair the hub now?")]
    long = SamplingParams(max_tokens=120, temperature=0, ignore_eos=True)
    alone = [answer(engine, "acme", ids, temperature=0, ignore_eos=True)[0] for ids in prompts]
    long_alone = "".join(e.text for e in engine.generate("acme", prompts[1], long) if isinstance(e, Delta))
    assert wait_for(lambda: engine.queued == 0 and engine.stats["requests"] >= 4)
    time.sleep(0.05)
    before = dict(engine.stats)
    results: dict[int, str] = {}

    def run(index: int) -> None:
        results[index] = answer(engine, "acme", prompts[index], temperature=0, ignore_eos=True)[0]

    # A long request runs; three arrive meanwhile and join its batch at the next regrouping step
    # (the running row is re-prefilled from its prompt plus what it generated so far).
    running = engine.generate("acme", prompts[1], long)
    first = next(running)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    long_text = first.text + "".join(e.text for e in running if isinstance(e, Delta))
    for thread in threads:
        thread.join(30)
    assert [results[i] for i in range(3)] == alone
    assert long_text == long_alone
    assert wait_for(lambda: engine.stats["requests"] - before["requests"] == 4)
    assert engine.stats["batches"] - before["batches"] == 1
    assert engine.stats["regroups"] > before["regroups"]
    assert engine.stats["largest_batch"] >= 4


def test_cancelled_request_stops_generating(engine):
    ids = chat_ids(engine, "base", "Hello")
    before = dict(engine.stats)
    events = engine.generate("base", ids, SamplingParams(max_tokens=400, temperature=0, ignore_eos=True))
    next(events)
    events.close()  # cancels the job
    assert wait_for(lambda: engine.stats["cancelled"] == before["cancelled"] + 1)
    assert engine.stats["tokens"] - before["tokens"] < 400


def test_full_queue_is_refused(tiny_model_dir):
    with single_torch_thread():
        engine = Engine(tiny_model_dir, max_batch_size=1, max_queue=1, threads=1)
        try:
            ids = engine.chat_prompt(engine.get("base"), [{"role": "user", "content": "Hi"}])
            params = SamplingParams(max_tokens=200, temperature=0, ignore_eos=True)
            running = engine.generate("base", ids, params)
            next(running)  # the generation thread is busy with it
            waiting = engine.submit(engine.get("base"), ids, params, lambda event: None)
            with pytest.raises(Overloaded, match="queue is full"):
                engine.submit(engine.get("base"), ids, params, lambda event: None)
            waiting.cancel()
            running.close()
        finally:
            engine.close()


def test_adapter_loads_while_another_request_generates(engine, serve_workspace):
    ids = chat_ids(engine, "acme", "Where is my order?")
    reference, _ = answer(engine, "acme", ids, temperature=0, ignore_eos=True)
    finished = threading.Event()
    events = engine.generate("acme", ids, SamplingParams(max_tokens=300, temperature=0, ignore_eos=True))
    next(events)

    def drain() -> None:
        for _ in events:
            pass
        finished.set()

    threading.Thread(target=drain).start()
    engine.load("hot", resolve_model(serve_workspace, "support"))
    assert not finished.is_set(), "the load waited for the running batch to end"
    # Same weights as acme, without acme's system prompt: compare on the same prompt ids.
    assert answer(engine, "hot", ids, temperature=0, ignore_eos=True)[0] == reference
    with pytest.raises(AdapterConflict):
        engine.load("hot", resolve_model(serve_workspace, "support"))
    engine.load("hot", resolve_model(serve_workspace, "support"), replace=True)
    engine.unload("hot")
    with pytest.raises(UnknownModel):
        engine.get("hot")
    assert finished.wait(30)
    assert engine.names() == ["base", "acme"]


def test_last_adapter_unloaded_gives_back_the_plain_base(tiny_model_dir, serve_workspace):
    with single_torch_thread():
        engine = Engine(tiny_model_dir, threads=1)
        try:
            ids = chat_ids(engine, "base", "Hello")
            before, _ = answer(engine, "base", ids, temperature=0, ignore_eos=True)
            engine.load("acme", resolve_model(serve_workspace, "acme"))
            assert answer(engine, "base", ids, temperature=0, ignore_eos=True)[0] == before
            engine.unload("acme")
            assert wait_for(lambda: engine._peft is None)
            assert answer(engine, "base", ids, temperature=0, ignore_eos=True)[0] == before
        finally:
            engine.close()


def test_full_weight_model_is_loaded_separately(engine, tiny_model_dir):
    ref = ModelRef(
        name="whole",
        version=None,
        run_id="run-x",
        base_model=Path(tiny_model_dir),
        artifact_dir=Path(tiny_model_dir),
        method="full",
        system_prompt=None,
    )
    served = engine.load("whole", ref)
    assert served.kind == "full"
    ids = chat_ids(engine, "base", "Hello")
    assert answer(engine, "whole", ids, temperature=0)[0] == answer(engine, "base", ids, temperature=0)[0]
    engine.unload("whole")


def test_adapter_on_another_base_is_refused(engine, serve_workspace, tmp_path):
    ref = resolve_model(serve_workspace, "acme")
    ref.base_model = tmp_path
    with pytest.raises(AdapterError, match="trained on"):
        engine.load("other", ref)
    with pytest.raises(AdapterError, match="can't be unloaded"):
        engine.unload("base")


def test_whole_answers_come_in_one_piece(engine):
    import math

    ids = chat_ids(engine, "base", "Hello")
    events: list[object] = []
    done = threading.Event()

    def emit(event: object) -> None:
        events.append(event)
        if isinstance(event, Finished):
            done.set()

    params = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
    engine.submit(engine.get("base"), ids, params, emit, emit_interval=math.inf)
    assert done.wait(30)
    assert [type(e) for e in events] == [Delta, Finished]
    assert events[0].text == answer(engine, "base", ids, max_tokens=10, temperature=0, ignore_eos=True)[0]
