"""Evaluation generation speed: batched (left-padded) against one case at a time, on the same model,
cases and greedy decoding, in the same run; transformers' continuous batching (`generate_batch`) on the
same cases where it runs; and what the generation cache saves on a re-run.

    .venv/bin/python benchmarks/eval_throughput.py                       # a demo model built on the fly
    .venv/bin/python benchmarks/eval_throughput.py --model /models/Qwen2.5-0.5B-Instruct --cases 64
    .venv/bin/python benchmarks/eval_throughput.py --base-model DIR    # the same flag as train_throughput.py

Prints cases/s by wall clock and per CPU-second (what a busy machine distorts least), the ratio of
batched to one-at-a-time, how many answers are identical between the two (greedy decoding; left
padding can shift a float here and there), and the time to serve the same cases from the cache
(`<workspace>/cache/generations.sqlite`) against generating them.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = ["my order", "the hub", "a refund", "the thermostat", "my password", "the invoice", "delivery", "returns"]
ASKS = ["Where is", "How do I reset", "Why did I not get", "Can you explain", "What happens to", "Who handles"]
CORPUS = [
    "Thank you for contacting Acme. We are happy to help with your thermostat.",
    "Your order has shipped and will arrive within three business days.",
    "Please restart the hub, then hold the pairing button for five seconds.",
    "Refunds are issued to the original payment method within ten days.",
] * 50


def conversations(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Questions of varied length with a system prompt, as an evaluation's cases are asked."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        detail = " ".join(rng.choice(TOPICS) for _ in range(rng.randint(1, 12)))
        question = f"{rng.choice(ASKS)} {rng.choice(TOPICS)}? Ticket {i}: {detail}."
        cases.append([{"role": "system", "content": "You are Acme support."}, {"role": "user", "content": question}])
    return cases


def timed(function: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        "--base-model",
        type=Path,
        help="a local model folder, e.g. SmolLM2 from `tailorlm base import` (default: a demo model built here)",
    )
    parser.add_argument("--cases", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    arguments = parser.parse_args()

    import torch

    from tailorlm.evaluate.cache import GenerationCache, model_fingerprint
    from tailorlm.evaluate.generation import Decoding, LocalModel
    from tailorlm.formats.templates import render

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = arguments.model
        if model_dir is None:
            from tailorlm.demo import build_demo_model

            model_dir = build_demo_model(Path(scratch) / "demo", CORPUS)  # hidden 256, 4 layers
        model = LocalModel("bench", model_dir, None, model_fingerprint(model_dir))
        decoding = Decoding(max_new_tokens=arguments.max_new_tokens)
        cases = conversations(arguments.cases)
        prompts = [render(model.tokenizer, c, add_generation_prompt=True) for c in cases]
        lengths = [len(model.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        print(
            f"model {model_dir} on {model.device} ({torch.get_num_threads()} threads), {len(cases)} cases, "
            f"prompts {min(lengths)}-{max(lengths)} tokens, {arguments.max_new_tokens} new tokens at most, greedy"
        )
        model.generate(prompts[:2], decoding, batch_size=2)  # warm-up: weights loaded, kernels picked

        single, single_wall, single_cpu = timed(lambda: model.generate(prompts, decoding, batch_size=1))
        batched, batched_wall, batched_cpu = timed(
            lambda: model.generate(prompts, decoding, batch_size=arguments.batch_size)
        )
        same = sum(a.text == b.text for a, b in zip(single, batched, strict=True))
        n = len(cases)
        print(f"{'':30}{'cases/s (wall)':>16}{'cases/CPU-s':>14}")
        print(f"{'one at a time':30}{n / single_wall:16.2f}{n / single_cpu:14.2f}")
        print(f"{f'batched ({arguments.batch_size})':30}{n / batched_wall:16.2f}{n / batched_cpu:14.2f}")
        print(
            f"batched / one at a time: {single_wall / batched_wall:.2f}x wall, {single_cpu / batched_cpu:.2f}x CPU; "
            f"identical answers: {same}/{n}"
        )
        try:
            continuous, cb_wall, cb_cpu = timed(lambda: continuous_batching(model, prompts, arguments.max_new_tokens))
        except Exception as error:  # an optional comparison: say why it couldn't run
            print(f"transformers continuous batching (generate_batch): could not run here: {error!r:.300}")
        else:
            print(f"{'continuous batching (transformers)':30}{n / cb_wall:16.2f}{n / cb_cpu:14.2f}")
            agree = sum(a == b.text for a, b in zip(continuous, batched, strict=True))
            print(
                f"ours batched / continuous batching: {cb_wall / batched_wall:.2f}x wall; identical answers {agree}/{n}"
            )

        cache = GenerationCache(Path(scratch) / "cache" / "generations.sqlite")
        _, miss_wall, _ = timed(lambda: model.answer(cases, decoding, batch_size=arguments.batch_size, cache=cache))
        hits, hit_wall, _ = timed(lambda: model.answer(cases, decoding, batch_size=arguments.batch_size, cache=cache))
        assert all(h.cached for h in hits)
        print(
            f"cache: first run {miss_wall:.2f} s (generates {n}), re-run {hit_wall * 1000:.1f} ms "
            f"(all {n} from the cache): {miss_wall / hit_wall:.0f}x faster"
        )
        cache.close()


def continuous_batching(model: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The same greedy answers through transformers' continuous batching (`generate_batch`): requests join
    and leave a running batch as they finish, with a paged KV cache."""
    from transformers import GenerationConfig

    tokenizer = model.tokenizer
    inputs = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    outputs = model.model.generate_batch(inputs=inputs, generation_config=config)
    by_request = list(outputs.values())
    texts = [""] * len(prompts)
    for output in by_request:
        index = next(i for i, ids in enumerate(inputs) if list(output.prompt_ids) == ids)
        texts[index] = tokenizer.decode(output.generated_tokens, skip_special_tokens=True).strip()
    return texts


if __name__ == "__main__":
    main()
