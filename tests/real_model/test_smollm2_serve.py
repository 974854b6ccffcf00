"""The fine-tuned SmolLM2 served by a real uvicorn on a loopback port and called with the official
`openai` client: greedy answers streamed and not streamed are the same text, and the text the trained
model gives offline."""

from __future__ import annotations

import pytest

from helpers.real_models import MAX_NEW_TOKENS, acme_conversations, greedy, prompt_ids
from helpers.serve import ServerThread, openai_client

pytestmark = pytest.mark.real_model


def test_streamed_answer_equals_answer(real_workspace, smollm2_dir, acme_dataset, smollm2_run):
    from tailorlm.modeling import load_trained, resolve_model
    from tailorlm.serve.app import create_app
    from tailorlm.serve.engine import Engine
    from tailorlm.serve.limits import Limits

    conversations = acme_conversations(real_workspace, acme_dataset, n=2)
    adapter, tokenizer = load_trained(smollm2_run.run_dir / "adapter", smollm2_dir)
    offline = [
        tokenizer.decode(tokens, skip_special_tokens=True)
        for tokens in greedy(adapter, prompt_ids(tokenizer, conversations), tokenizer)
    ]
    del adapter

    engine = Engine(smollm2_dir, device="cpu", max_batch_size=2)
    try:
        engine.load("acme", resolve_model(real_workspace, smollm2_run.run.id))
        app = create_app(engine, auth=None, limits=Limits(max_tokens_cap=64), request_log=None)
        with ServerThread(app) as server:
            client = openai_client(server.url)
            assert "acme" in [m.id for m in client.models.list().data]
            for messages, expected in zip(conversations, offline, strict=True):
                options = {"model": "acme", "messages": messages, "temperature": 0, "max_tokens": MAX_NEW_TOKENS}
                answer = client.chat.completions.create(**options)
                text = answer.choices[0].message.content
                chunks = list(client.chat.completions.create(**options, stream=True))
                streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

                assert text.strip(), "the model answered nothing"
                assert streamed == text
                assert text.strip() == expected.strip()
                assert answer.usage.completion_tokens <= MAX_NEW_TOKENS
                finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
                assert finish == [answer.choices[0].finish_reason]
    finally:
        engine.close()
