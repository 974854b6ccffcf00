"""Throughput and latency of `tailorlm serve` against a raw `model.generate` loop on the same model.

    python benchmarks/serve_throughput.py [--tokens 128] [--requests 2] [--concurrency 1 4 16]

Builds a small random-weight model locally (`tailorlm.demo.build_demo_model`, hidden 256, 4 layers),
starts the real server (`tailorlm.serve.serve`, no auth, loopback) in a subprocess, and measures:

* single stream: tokens/s of one streaming request vs. `model.generate` with the same prompt and
  token count in this process (ratio; the target is >= 0.9);
* 1, 4, 16 concurrent streaming clients, each sending `--requests` requests in a row: aggregate
  tokens/s, and p50/p95 of request latency and time to first token.

Every request generates exactly `--tokens` tokens (greedy, `ignore_eos`), so the numbers compare
like with like. Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CORPUS = [
    "Thank you for contacting Acme. We are happy to help with your thermostat.",
    "Your order has shipped and will arrive within three business days.",
    "Please restart the hub, then hold the pairing button for five seconds.",
    "Refunds are issued to the original payment method within ten days.",
] * 50
PROMPT = "Your order has shipped and will arrive"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_server(model_dir: str, port: int, batch: int, cap: int, threads: int) -> None:
    """The subprocess: the real `serve()` on the base model, no keys, loopback."""
    from tailorlm.serve import serve
    from tailorlm.workspace import Workspace

    workspace = Workspace(Path(model_dir).parent / "workspace")
    serve(
        workspace,
        models=[],
        base_model=Path(model_dir),
        host="127.0.0.1",
        port=port,
        no_auth=True,
        max_tokens_cap=cap,
        rate_limit_per_minute=0,
        max_batch_size=batch,
        max_queue=256,
    )


class RawGenerate:
    """The baseline: `model.generate` on the same model and prompt, in this process."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoModelForCausalLM

        from tailorlm.modeling import load_tokenizer

        self.tokenizer = load_tokenizer(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
        self.ids = self.tokenizer(PROMPT, return_tensors="pt").input_ids
        self.tokens_per_second(8)  # warm-up

    def tokens_per_second(self, tokens: int) -> float:
        import torch

        started = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                self.ids,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return (out.shape[1] - self.ids.shape[1]) / (time.perf_counter() - started)


def stream_once(client, tokens: int) -> tuple[float, float, int]:
    """One streaming completion: (latency s, time to first token s, tokens)."""
    body = {
        "model": "base",
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = None
    count = 0
    with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                count = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"] and chunk["choices"][0]["text"]:
                first = time.perf_counter() - started
    return time.perf_counter() - started, first or 0.0, count


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def concurrent_run(url: str, clients: int, requests: int, tokens: int) -> dict[str, float]:
    import httpx2

    latencies: list[float] = []
    first_tokens: list[float] = []
    total = 0
    lock = threading.Lock()

    def client_loop() -> None:
        nonlocal total
        with httpx2.Client(base_url=url, timeout=600) as client:
            for _ in range(requests):
                latency, first, count = stream_once(client, tokens)
                with lock:
                    latencies.append(latency)
                    first_tokens.append(first)
                    total += count

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "tokens_per_s": total / wall,
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "ttft_p50_s": percentile(first_tokens, 0.5),
        "ttft_p95_s": percentile(first_tokens, 0.95),
        "requests": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128, help="Tokens per request.")
    parser.add_argument("--requests", type=int, default=2, help="Requests per client, one after another.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=5, help="Single-stream repetitions (median).")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, server and baseline alike.")
    parser.add_argument("--serve", nargs=2, metavar=("MODEL_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Both sides get the same thread count, fixed before torch starts its thread pools (setting it
    # later, per thread, does not stop OpenMP workers from oversubscribing a busy machine).
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    if args.serve:
        run_server(args.serve[0], int(args.serve[1]), max(args.concurrency), args.tokens, args.threads)
        return

    import httpx2

    from tailorlm import offline
    from tailorlm.demo import build_demo_model
    from tailorlm.serve import wait_until_healthy

    offline.enforce()
    with tempfile.TemporaryDirectory(prefix="tailorlm-bench-") as temp:
        model_dir = build_demo_model(
            Path(temp) / "model",
            CORPUS,
            hidden_size=256,
            layers=4,
            heads=4,
            intermediate_size=704,
            vocab_size=2048,
            max_positions=1024,
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(model_dir),
                str(port),
                "--tokens",
                str(args.tokens),
                "--concurrency",
                *map(str, args.concurrency),
            ],
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until_healthy(url, process=server, timeout=180)
            raw = RawGenerate(model_dir)
            served_rates, raw_rates = [], []
            with httpx2.Client(base_url=url, timeout=600) as client:
                stream_once(client, 8)  # warm-up
                for _ in range(args.repeats):  # alternate, so load from other processes hits both alike
                    served_rates.append(args.tokens / stream_once(client, args.tokens)[0])
                    raw_rates.append(raw.tokens_per_second(args.tokens))
            served, raw_rate = statistics.median(served_rates), statistics.median(raw_rates)
            del raw
            rows = [concurrent_run(url, clients, args.requests, args.tokens) for clients in args.concurrency]
        finally:
            server.terminate()
            server.wait(30)

    print(
        f"model: demo Llama hidden 256, 4 layers; {args.tokens} tokens per request; {args.threads} torch thread(s); "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"single stream (median of {args.repeats}, alternating): raw model.generate {raw_rate:.1f} tok/s, "
        f"server {served:.1f} tok/s, ratio {served / raw_rate:.2f} (target >= 0.90)"
    )
    print("clients  requests  aggregate tok/s  scaling  latency p50/p95 s  first token p50/p95 s")
    base = rows[0]["tokens_per_s"]
    for row in rows:
        print(
            f"{row['clients']:>7}  {row['requests']:>8}  {row['tokens_per_s']:>15.1f}  "
            f"{row['tokens_per_s'] / base:>6.2f}x  {row['p50_s']:>8.2f} / {row['p95_s']:<6.2f}  "
            f"{row['ttft_p50_s']:>10.2f} / {row['ttft_p95_s']:.2f}"
        )


if __name__ == "__main__":
    main()
