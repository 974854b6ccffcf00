"""Sampling is numerically safe for every value the API accepts, and one request's failure never ends
the other requests of its batch (a fault in one row's sampling, or in the batch's forward pass)."""

from __future__ import annotations

import queue
import threading

import pytest
import torch

from tailorlm.serve.engine import Engine, SamplingParams
from tailorlm.serve.generation import Delta, Event, Failed, Finished, Job, Row

# The edges of the schema (temperature in [0, 2], top_p in (0, 1]) and the values that broke it.
TINY = (5e-324, 1e-300, 1e-45, 1e-8)
TEMPERATURES = (*TINY, 0.3, 1.0, 2.0)
TOP_PS = (*TINY, 0.5, 0.999999, 1.0)


def row(**params) -> Row:
    job = Job("base", [1], SamplingParams(**{"max_tokens": 4, **params}), emit=lambda event: None)
    return Row(job, tokenizer=None, stop_ids=frozenset(), stop_texts=())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_every_accepted_temperature_and_top_p_samples_a_token(temperature, dtype):
    logits = (torch.randn(512, generator=torch.Generator().manual_seed(0)) * 20).to(dtype)
    for top_p in TOP_PS:
        token = row(temperature=temperature, top_p=top_p, seed=1).sample(logits)
        assert 0 <= token < 512
        if temperature in TINY or top_p in TINY:  # the limit of both is greedy
            assert token == int(logits.float().argmax())


def test_non_finite_scores_fall_back_to_the_best_finite_token():
    logits = torch.full((16,), float("-inf"))
    logits[3], logits[5] = 1.0, float("nan")
    assert row(temperature=1.0, top_p=0.9).sample(logits) == 3


@pytest.mark.parametrize("seed", [0, -1, 2**63, 2**64, -(2**70), 10**40])
def test_any_json_integer_is_a_seed(seed):
    logits = torch.randn(64)
    assert row(temperature=1.0, seed=seed).sample(logits) == row(temperature=1.0, seed=seed).sample(logits)


@pytest.fixture(scope="module")
def engine(tiny_model_dir, one_torch_thread):
    engine = Engine(tiny_model_dir, max_batch_size=8, max_queue=32, threads=1, batch_window=0.2)
    yield engine
    engine.close()


def run_together(engine: Engine, prompts: list[list[int]], params: list[SamplingParams]) -> list[list[Event]]:
    """Submit every request before the batch window closes (one batch) and collect each one's events."""
    inboxes: list[queue.Queue[Event]] = [queue.Queue() for _ in prompts]
    served = engine.get("base")
    for ids, setting, inbox in zip(prompts, params, inboxes, strict=True):
        engine.submit(served, ids, setting, inbox.put)
    results = []
    for inbox in inboxes:
        events = [inbox.get(timeout=60)]
        while isinstance(events[-1], Delta):
            events.append(inbox.get(timeout=60))
        results.append(events)
    return results


def text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def test_extreme_settings_batched_with_ordinary_ones_all_finish(engine):
    ids = engine.text_prompt(engine.get("base"), "Where is my order?")
    params = [SamplingParams(max_tokens=6, temperature=t, top_p=p, ignore_eos=True) for t in TINY for p in TINY]
    params += [SamplingParams(max_tokens=6, temperature=1.0, seed=7, ignore_eos=True)] * 2
    before = engine.stats["batches"]
    results = run_together(engine, [ids] * len(params), params)
    assert all(isinstance(events[-1], Finished) and events[-1].reason == "length" for events in results)
    greedy = text(
        next(iter(run_together(engine, [ids], [SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)])))
    )
    assert all(text(events) == greedy for events in results[: len(TINY) ** 2])  # tiny settings are greedy
    assert engine.stats["batches"] - before < len(params)  # they really were batched together


def test_a_forward_failure_fails_only_the_request_that_caused_it(engine):
    """A hook on the model's embeddings raises whenever one token is in the batch: that request gets
    its error, the others answer exactly as they do alone."""
    served = engine.get("base")
    prompts = [engine.text_prompt(served, text) for text in ("Where is my order?", "Refunds", "billing urgent")]
    poison = next(t for t in prompts[2] if t not in prompts[0] and t not in prompts[1])
    greedy = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)
    alone = [text(run_together(engine, [ids], [greedy])[0]) for ids in prompts[:2]]

    def refuse_poison(module, args):
        if threading.current_thread().name == "tailorlm-generation" and bool((args[0] == poison).any()):
            raise RuntimeError("poisoned input")

    hook = engine._base.get_input_embeddings().register_forward_pre_hook(refuse_poison)
    try:
        results = run_together(engine, prompts, [greedy] * 3)
    finally:
        hook.remove()
    assert [text(events) for events in results[:2]] == alone
    assert all(isinstance(events[-1], Finished) for events in results[:2])
    assert isinstance(results[2][-1], Failed) and "poisoned input" in str(results[2][-1].error)
    # the engine still answers afterwards
    assert isinstance(run_together(engine, [prompts[2]], [greedy])[0][-1], Finished)
