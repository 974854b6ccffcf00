"""Benchmark: the planner's memory estimate against measured peaks, and 1 vs 2 training processes.

memory   For 3 model sizes (random-weight Llama models built here) × full, LoRA, DoRA and QLoRA, train a few
         steps in a fresh process through TailorLM's own recipe (`train/sft.py`) on CPU and read the
         process's peak RSS; print it beside `tailorlm.train.memory.estimate` for the same setup.
         `--write tests/assets/planner_calibration.json` records the table the unit tests hold the
         planner to (±15 %).
scaling  The same tiny-model LoRA run with 1 process and with 2 (torchrun, gloo, DDP) at the same global
         batch; prints tokens/s of each and the scaling efficiency (on 2 cores, honestly).

    flock /work/briefs/heavy.lock .venv/bin/python benchmarks/distributed_scaling.py memory
    .venv/bin/python benchmarks/distributed_scaling.py scaling
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {  # name: (hidden, layers, heads, intermediate, vocab)
    "tiny": (64, 2, 2, 128, 512),
    "small": (512, 8, 8, 1408, 4096),
    "medium": (768, 12, 12, 2048, 8192),
}
METHODS = ("full", "lora", "dora", "qlora")
SEQ_LEN, MICRO_BATCH, STEPS = 256, 4, 3


def build_model(folder: Path, size: str) -> Path:
    """A random-weight Llama of `size` with a tokenizer (only its pad token and save matter here)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tailorlm.demo import train_tokenizer

    hidden, layers, heads, intermediate, vocab = SIZES[size]
    path = folder / size
    torch.manual_seed(0)
    tokenizer = train_tokenizer([f"word{i} token{i % 97} text" for i in range(2000)], vocab_size=512)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def measure(model: Path, method: str, seq_len: int, micro_batch: int) -> float:
    """Peak RSS (GiB) of this process training `method` for a few steps (call in a fresh process)."""
    import random

    from tailorlm.config import TrainSettings
    from tailorlm.modeling import load_tokenizer
    from tailorlm.train.data import TokenizedSplit
    from tailorlm.train.plan import make_plan
    from tailorlm.train.sft import fine_tune

    vocab = json.loads((model / "config.json").read_text())["vocab_size"]
    rng = random.Random(0)
    rows = []
    for _ in range(micro_batch * STEPS):
        ids = [rng.randrange(3, vocab) for _ in range(seq_len)]
        rows.append({"input_ids": ids, "labels": ids})
    settings = TrainSettings(
        method=method,  # type: ignore[arg-type]
        max_steps=STEPS,
        batch_size=micro_batch,
        logging_steps=1,
        save_steps=10_000,
        max_length=seq_len,
    )
    plan = make_plan(settings, len(rows), device="cpu")
    with tempfile.TemporaryDirectory() as run_dir:
        fine_tune(
            run_dir=Path(run_dir),
            base_model=model,
            tokenizer=load_tokenizer(model),
            settings=settings,
            plan=plan,
            train_split=TokenizedSplit(rows=rows),
            val_split=None,
        )
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3


def estimate_for(model: Path, method: str, seq_len: int, micro_batch: int) -> dict:
    from tailorlm.config import LoraSettings
    from tailorlm.train.memory import ModelShape, Setup, estimate

    lora = LoraSettings()
    setup = Setup(
        method=method,
        device="cpu",
        precision="fp32",
        rank=lora.r,
        lora_dropout=0.0,  # what train.lora.dropout auto picks on CPU
        seq_len=seq_len,
        micro_batch=micro_batch,
        gradient_checkpointing=False,  # TailorLM's CPU default
    )
    return estimate(ModelShape.from_config(model), setup).to_json()


def memory(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            model = build_model(Path(folder), size)
            for method in args.methods:
                child = subprocess.run(
                    [sys.executable, __file__, "_measure", str(model), method, str(SEQ_LEN), str(MICRO_BATCH)],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                if child.returncode != 0:
                    print(f"{size} {method}: failed\n{child.stderr[-2000:]}", file=sys.stderr)
                    continue
                measured = float(child.stdout.strip().splitlines()[-1])
                planned = estimate_for(model, method, SEQ_LEN, MICRO_BATCH)
                row = {
                    "size": size,
                    "config": json.loads((model / "config.json").read_text()),
                    "method": method,
                    "seq_len": SEQ_LEN,
                    "micro_batch": MICRO_BATCH,
                    "params": planned["params"],
                    "measured_gib": round(measured, 3),
                    "estimated_gib": planned["gib"]["total"],
                }
                row["ratio"] = round(row["estimated_gib"] / measured, 3)
                rows.append(row)
                print(
                    f"{size:7s} {method:6s} params {planned['params'] / 1e6:7.1f}M  measured {measured:6.3f} GiB"
                    f"  estimated {row['estimated_gib']:6.3f} GiB  ratio {row['ratio']:.3f}",
                    flush=True,
                )
    if args.write:
        keep = [
            {**{k: v for k, v in row.items() if k != "config"}, "config": _shape_keys(row["config"])} for row in rows
        ]
        Path(args.write).write_text(json.dumps(keep, indent=1) + "\n", encoding="utf-8")


def _shape_keys(config: dict) -> dict:
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    keys += ("intermediate_size", "vocab_size", "tie_word_embeddings")
    return {key: config[key] for key in keys if key in config}


def scaling(args: argparse.Namespace) -> None:
    """tokens/s of one process vs two (torchrun, gloo, DDP) at the same global batch, through the CLI."""
    import statistics

    import yaml

    from tailorlm.demo import build_demo_model
    from tailorlm.formats.examples import Example
    from tailorlm.workspace import Workspace

    corpus = [f"Order {i} ships in {i % 5 + 1} days; refunds take {i % 9 + 2} days." for i in range(400)]
    examples = [
        Example.chat(user=f"When does order {i} ship?", assistant=corpus[i], source=f"doc-{i}") for i in range(200)
    ]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        model = build_demo_model(Path(folder) / "model", corpus, hidden_size=256, layers=4, heads=4)
        for processes in (1, 2):
            ws = Workspace(Path(folder) / f"ws{processes}")
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from helpers.data import register_dataset

            register_dataset(ws, examples, name="bench")
            train = {
                "method": "lora",
                "batch_size": 8 // processes,
                "max_steps": args.steps,
                "logging_steps": 1,
                "group_by_length": False,
            }
            ws.project_file.write_text(yaml.safe_dump({"project": "bench", "base_model": str(model), "train": train}))
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
            command += ["-m", "tailorlm.cli", "train", "--workspace", str(ws.root)]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            start = time.perf_counter()
            subprocess.run(command, check=True, env=env, capture_output=True)
            wall = time.perf_counter() - start
            run = ws.registry.find("run")[0]
            rows = [json.loads(line) for line in (ws.path_of(run) / "metrics.jsonl").read_text().splitlines()]
            speeds = [row["tokens_per_s"] for row in rows if "tokens_per_s" in row]
            results[processes] = statistics.median(speeds)
            print(
                f"{processes} process(es): {results[processes]:,.0f} tokens/s"
                f" (median of {len(speeds)} steps; wall {wall:.0f} s)"
            )
    speedup = results[2] / results[1]
    print(f"speed-up {speedup:.2f}x, scaling efficiency {speedup / 2:.0%} ({os.cpu_count()} CPU cores here)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        print(measure(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    mem.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    mem.add_argument("--write", help="write the table as JSON (tests/assets/planner_calibration.json)")
    scale = sub.add_parser("scaling")
    scale.add_argument("--steps", type=int, default=30)
    scale.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    {"memory": memory, "scaling": scaling}[args.what](args)


if __name__ == "__main__":
    main()
