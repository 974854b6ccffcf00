"""The poison batch: one bad request among concurrent streams, over real HTTP (uvicorn on a loopback
port) with the official `openai` client. The others complete, whole and unchanged.

Two kinds of poison: settings that used to break sampling for the whole batch (temperature and top_p of
5e-324: now answered, like greedy), and a request whose input makes the model itself fail (a hook on the
embeddings raises on one token): that one gets its error, the rest of its batch finishes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from helpers.serve import ServerThread, openai_client, single_torch_thread
from tailorlm.serve.app import create_app
from tailorlm.serve.engine import Engine
from tailorlm.serve.limits import Limits

pytestmark = pytest.mark.integration

STREAMS = 8
QUESTIONS = [f"Where is my order number {i}?" for i in range(STREAMS)]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    with single_torch_thread():
        # a wide batch window: the concurrent requests are generated as one batch
        engine = Engine(tiny_model_dir, max_batch_size=STREAMS, max_queue=32, threads=1, batch_window=0.5)
        app = create_app(engine, auth=None, request_log=None, limits=Limits(max_tokens_cap=64))
        with ServerThread(app) as running:
            yield running.url, engine
        engine.close()


def stream(url: str, question: str, **settings) -> tuple[str, str | None]:
    """The streamed answer's text and finish reason, as a client sees them."""
    chunks = openai_client(url).chat.completions.create(
        model="base",
        messages=[{"role": "user", "content": question}],
        max_tokens=24,
        stream=True,
        extra_body={"ignore_eos": True},
        **settings,
    )
    text, reason = "", None
    for chunk in chunks:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            reason = chunk.choices[0].finish_reason or reason
    return text, reason


def together(url: str, settings: list[dict]) -> list[tuple[str, str | None] | BaseException]:
    """Every request at once, each on its own connection; an exception is a result too."""

    def one(index: int) -> tuple[str, str | None] | BaseException:
        try:
            return stream(url, QUESTIONS[index], **settings[index])
        except Exception as error:
            return error

    with ThreadPoolExecutor(STREAMS) as pool:
        return list(pool.map(one, range(STREAMS)))


def test_tiny_sampling_settings_no_longer_break_the_batch(server):
    url, engine = server
    settings = [{"temperature": 0.7, "seed": i} for i in range(STREAMS)]
    settings[3] = {"temperature": 5e-324, "top_p": 5e-324}
    settings[5] = {"temperature": 1e-300, "top_p": 1.0}
    batches = engine.stats["batches"]
    results = together(url, settings)
    assert all(not isinstance(r, BaseException) for r in results), results
    assert [r[1] for r in results] == ["length"] * STREAMS  # type: ignore[index]
    assert engine.stats["batches"] - batches < STREAMS  # they shared batches
    greedy = stream(url, QUESTIONS[3], temperature=0)
    assert results[3] == greedy  # a vanishing temperature is greedy


def test_a_request_that_breaks_the_model_fails_alone(server):
    url, engine = server
    served = engine.get("base")
    prompts = [engine.chat_prompt(served, [{"role": "user", "content": q}]) for q in QUESTIONS]
    poison_index = 6
    others = {t for i, ids in enumerate(prompts) if i != poison_index for t in ids}
    poison = next(t for t in prompts[poison_index] if t not in others)
    settings = [{"temperature": 0} for _ in range(STREAMS)]
    alone = [stream(url, QUESTIONS[i], temperature=0) for i in range(STREAMS) if i != poison_index]

    def refuse_poison(module, args):
        if threading.current_thread().name == "tailorlm-generation" and bool((args[0] == poison).any()):
            raise RuntimeError("poisoned input")

    hook = engine._base.get_input_embeddings().register_forward_pre_hook(refuse_poison)
    try:
        results = together(url, settings)
    finally:
        hook.remove()
    healthy = [r for i, r in enumerate(results) if i != poison_index]
    assert healthy == alone  # every other stream finished, with the same text as alone
    assert isinstance(results[poison_index], openai.APIError)
    assert "internal error (RuntimeError)" in str(results[poison_index])
