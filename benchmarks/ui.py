"""Benchmark: the web dashboard's server time per page on a large workspace, and the live loss curve's latency.

Builds a workspace with 100 runs (each with a 300-line metrics.jsonl), 100 evaluations and a dataset of 10,000
examples (on a tiny tokenizer built here), then times each page through the real ASGI app (median of N
requests, server time: no browser) against `/health` in the same process (the floor: routing, middleware,
session look-up). Then serves the app with uvicorn and measures, for a running run, the time from a line
appended to its metrics.jsonl to its arrival at a server-sent-events client (target < 2 s; the server polls
the file every 0.25 s).

    .venv/bin/python benchmarks/ui.py
    .venv/bin/python benchmarks/ui.py --runs 100 --examples 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi.testclient import TestClient

from tailorlm.demo import build_demo_model
from tailorlm.registry import Artifact, DatasetMeta, EvaluationMeta, RunMeta
from tailorlm.web.app import create_app
from tailorlm.web.users import add_user
from tailorlm.workspace import Workspace, atomic_write_json, atomic_write_jsonl

WORDS = [
    "thermostat",
    "hub",
    "refund",
    "warranty",
    "firmware",
    "pairing",
    "schedule",
    "install",
    "return",
    "order",
    "battery",
    "wifi",
]


def build(root: Path, runs: int, examples: int) -> tuple[Workspace, dict[str, str]]:
    rng = random.Random(0)
    workspace = Workspace(root / "ws")
    model = build_demo_model(root / "tiny", [" ".join(rng.choices(WORDS, k=30)) for _ in range(200)], hidden_size=64,
                             layers=1, heads=2, intermediate_size=128, vocab_size=300, pretrain_steps=0)  # fmt: skip
    folder = workspace.dataset_dir("big", "v1")
    rows = [
        {
            "id": f"ex{i}",
            "messages": [
                {"role": "system", "content": "You are Acme support."},
                {"role": "user", "content": " ".join(rng.choices(WORDS, k=20)) + "?"},
                {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=40)) + ". [EMAIL]"},
            ],
            "source": f"/data/file{i % 50}.csv#row {i}",
        }
        for i in range(examples)
    ]
    counts = {"train": atomic_write_jsonl(folder / "train.jsonl", rows[: int(examples * 0.9)])}
    counts["val"] = atomic_write_jsonl(folder / "val.jsonl", rows[int(examples * 0.9) : int(examples * 0.95)])
    counts["test"] = atomic_write_jsonl(folder / "test.jsonl", rows[int(examples * 0.95) :])
    atomic_write_json(folder / "card.json", {"base_model": str(model), "counts": counts})
    meta = DatasetMeta(counts=counts, task="chat", format="messages")
    workspace.registry.add(Artifact("dataset-big-v1", "dataset", "big", "h", "datasets/big/v1", meta, version="v1"))
    first = ""
    for number in range(runs):
        run_id = f"run-bench-{number:03d}"
        first = first or run_id
        run_dir = workspace.run_dir(run_id)
        lines = []
        for step in range(1, 301):
            lines.append({"step": step, "loss": 3.0 / (1 + step / 50) + rng.random() * 0.05, "lr": 1e-4})
            if step % 20 == 0:
                lines.append({"step": step, "val_loss": 3.1 / (1 + step / 50)})
        atomic_write_jsonl(run_dir / "metrics.jsonl", lines)
        (run_dir / "config.yaml").write_text("train:\n  method: lora\n")
        run_meta = RunMeta(method="lora", base_model=str(model), dataset="dataset-big-v1",
                           metrics={"train_loss": 1.2, "eval_loss": 1.3}, plan={"total_steps": 300})  # fmt: skip
        workspace.registry.add(Artifact(run_id, "run", run_id, "h", f"runs/{run_id}", run_meta), ["dataset-big-v1"])
        eval_meta = EvaluationMeta(runs=[run_id], cases=30)
        eval_id = f"eval-bench-{number:03d}"
        workspace.registry.add(Artifact(eval_id, "evaluation", eval_id, "h", f"evals/{eval_id}", eval_meta), [run_id])
        workspace.audit.append("train", outputs=[run_id])
    add_user(workspace, "bench", "admin", "benchmark password")
    return workspace, {"run": first, "dataset": "dataset-big-v1"}


def login(http: TestClient | httpx.Client) -> None:
    import re

    token = re.search(r'name="login_token" value="([^"]+)"', http.get("/login").text)[1]
    http.post("/login", data={"name": "bench", "password": "benchmark password", "login_token": token})


def page_times(workspace: Workspace, ids: dict[str, str], repeat: int) -> list[tuple[str, float, float]]:
    http = TestClient(create_app(workspace), base_url="http://127.0.0.1")
    login(http)
    pages = ["/health", "/", "/data", f"/data/{ids['dataset']}", f"/data/{ids['dataset']}?q=refund&offset=500",
             "/runs", f"/runs/{ids['run']}", f"/api/runs/{ids['run']}/metrics", "/evals", "/models", "/audit",
             f"/lineage/{ids['run']}", "/runs/new", "/jobs"]  # fmt: skip
    results = []
    for path in pages:
        http.get(path)  # warm: templates compiled, tokenizer loaded
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            response = http.get(path)
            samples.append(time.perf_counter() - start)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
        results.append((path, statistics.median(samples), max(samples)))
    return results


def live_latency(workspace: Workspace, run_id: str, lines: int) -> list[float]:
    workspace.registry.update(run_id, status="running")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(workspace), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    metrics = workspace.path_of(workspace.registry.get(run_id)) / "metrics.jsonl"
    offset = metrics.stat().st_size
    latencies: list[float] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        login(http)
        with http.stream("GET", f"/api/runs/{run_id}/stream", params={"offset": offset}) as stream:
            lines_in = stream.iter_lines()

            def writer() -> None:
                for step in range(lines):
                    time.sleep(0.37)  # not a multiple of the poll interval: the wait lands anywhere in it
                    with metrics.open("a") as handle:
                        handle.write(json.dumps({"step": 1000 + step, "loss": 1.0, "sent": time.time()}) + "\n")

            threading.Thread(target=writer, daemon=True).start()
            for line in lines_in:
                if line.startswith("data: ") and '"sent"' in line:
                    latencies.append(time.time() - json.loads(line[6:])["sent"])
                    if len(latencies) == lines:
                        break
    server.should_exit = True
    thread.join(10)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lines", type=int, default=20, help="metrics lines for the live-curve latency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        start = time.perf_counter()
        workspace, ids = build(Path(temp), args.runs, args.examples)
        print(f"workspace: {args.runs} runs, {args.runs} evaluations, {args.examples} examples "
              f"(built in {time.perf_counter() - start:.1f} s)")  # fmt: skip
        results = page_times(workspace, ids, args.repeat)
        floor = results[0][1]
        print(f"\n{'page':<48} {'median ms':>10} {'max ms':>8} {'× /health':>10}")
        for path, median, worst in results:
            print(f"{path:<48} {median * 1000:>10.1f} {worst * 1000:>8.1f} {median / floor:>10.1f}")
        slowest = max(results[1:], key=lambda r: r[1])
        print(f"slowest page: {slowest[0]} {slowest[1] * 1000:.0f} ms (target < 300 ms)")
        latencies = live_latency(workspace, ids["run"], args.lines)
        print(f"\nlive curve: metrics line → SSE client, {len(latencies)} lines: median "
              f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
              f"(target < 2000 ms; the server polls every 250 ms: median / poll = "
              f"{statistics.median(latencies) / 0.25:.2f})")  # fmt: skip
        workspace.close()


if __name__ == "__main__":
    main()
