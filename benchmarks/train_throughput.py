"""Training throughput: TailorLM's trainer vs TRL's SFTTrainer, on one model, data and budget.

Builds a ~30M-parameter Llama-architecture model locally (or uses a real model directory given with
`--base-model`, e.g. SmolLM2-135M-Instruct from `tailorlm base import`), prepares the sample company's
FAQ + e-mail chat dataset, then runs each configuration in its own subprocess (so peak RSS is its own):

  (a) trl-defaults  TRL SFTTrainer + the same LoRA config, everything else TRL's default (bf16
                    autocast, gradient checkpointing, loss on every token, random batches)
  (a') trl-tuned    TRL SFTTrainer + the same LoRA config, set up as a careful CPU user would: fp32,
                    no gradient checkpointing, completion-only loss, length-grouped batches
  (a2) trl-tuned-d0  trl-tuned with LoRA dropout 0 (what `lora.dropout: auto` picks on CPU, given to TRL too)
  (b) lora          tailorlm train, LoRA, every setting `auto` (what a user gets: precision measured at plan
                    time, LoRA dropout 0 on CPU, packing)
  (b2) lora-dropout lora with `lora.dropout: 0.05` (the old default; the TRL rows use it too)
  (b3) lora-nopack  lora with `packing: false`
  (b') lora-fp32    tailorlm train, LoRA in fp32
  (c) qlora         tailorlm train, QLoRA (4-bit NF4)
  (d) full          tailorlm train, full fine-tuning
  (e) lora-bf16     tailorlm train, LoRA with bf16 autocast (fp32 master weights)
  (f) lf, lf-bf16   LLaMA-Factory's `llamafactory-cli train` (its own venv; skipped when absent), fp32 / bf16

Every configuration shares batch size, steps, learning rate and max_length. The configurations run
interleaved (round 1: every configuration, round 2: every one again, …) so that a change in the
machine's load hits them all alike. Reported per configuration: the median of the rounds (min–max) of
the training loop's non-padding tokens/s, the first step excluded as warm-up (one callback times both
trainers), and per CPU-second (the comparison that holds when other jobs share the cores), their ratios
to the faster TRL row, peak RSS, validation loss after the fixed number of steps measured the same way
for every model (assistant tokens only, our masks), and model-FLOPs utilisation against matmul peaks
measured in the same run (training FLOPs ≈ 6·N·T full, 4·N·T adapters; N = base parameters).

    python benchmarks/train_throughput.py [--steps 40] [--quick]
    python benchmarks/train_throughput.py --base-model DIR [--steps 8 --batch-size 4 --max-length 384 --repeats 3]
        [--llamafactory ../lf-venv]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llamafactory_row import LF_CONFIGS, lf_python, run_lf

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    "trl-defaults",
    "trl-tuned",
    "trl-tuned-d0",
    "lora",
    "lora-dropout",
    "lora-nopack",
    "lora-fp32",
    "qlora",
    "full",
    "lora-bf16",
    *LF_CONFIGS,
]
TRL_CONFIGS = ("trl-defaults", "trl-tuned", "trl-tuned-d0")
# What a configuration sets besides the shared settings (TailorLM rows otherwise take every `auto`).
OVERRIDES: dict[str, dict] = {
    "trl-tuned-d0": {"lora": {"r": 16, "alpha": 32, "dropout": 0.0}},
    "lora-dropout": {"lora": {"r": 16, "alpha": 32, "dropout": 0.05}},
    "lora-nopack": {"packing": False},
    # LLaMA-Factory's own default LoRA dropout is 0, and our rows train with 0 on CPU: its best, not ours
    **{name: {"lora": {"r": 16, "alpha": 32, "dropout": 0.0}} for name in LF_CONFIGS},
}
# Batch size and max_length: the built ~30M model, and a real model (a 49k-token vocabulary makes the
# fp32 logits the biggest tensor: batch 8 x 1024 tokens took SmolLM2 to 13 GB RSS).
SHAPES = {"built": (8, 512), "real": (4, 384)}


def matmul_peak(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def setup(work: Path, quick: bool, base_model: Path | None = None) -> dict:
    """Build the model (unless a real one is given) and the dataset once; every configuration reads them."""
    from tailorlm.config import parse_project
    from tailorlm.demo import build_demo_model
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare
    from tailorlm.quickstart import corpus_texts
    from tailorlm.workspace import Workspace

    if base_model is not None:
        model_dir = base_model.resolve()
    else:
        model_dir = work / "model"
        size = (
            dict(hidden_size=256, layers=4, intermediate_size=704, vocab_size=4096)
            if quick
            else dict(hidden_size=512, layers=8, heads=8, intermediate_size=1408, vocab_size=8192)
        )
        build_demo_model(model_dir, corpus_texts(ROOT / "examples" / "acme"), **size)
    ws = Workspace(work / "ws")
    example = ROOT / "examples" / "acme"
    project = parse_project(
        {
            "project": "bench",
            "base_model": str(model_dir),
            "task": "chat",
            "system_prompt": "You are the Acme Care Team.",
            "sources": [
                {"path": str(example / "faq.csv"), "kind": "faq"},
                {"path": str(example / "support.mbox"), "kind": "email"},
            ],
            "prepare": {"pii": "off", "split": {"test": 0.0, "val": 0.1}},
        },
        root=work,
    )
    result = prepare(ws, project, ingest=ingest)
    return {"model": str(model_dir), "workspace": str(work / "ws"), "dataset": result.dataset.id}


def run_config(name: str, info: dict, shape: dict) -> dict:
    """Train one configuration; runs in a fresh subprocess. `shape`: steps, batch_size, max_length, lr."""
    import torch

    from tailorlm.config import parse_project
    from tailorlm.dataset_splits import load_split
    from tailorlm.modeling import load_tokenizer
    from tailorlm.train.data import tokenize_split
    from tailorlm.workspace import Workspace

    ws = Workspace(Path(info["workspace"]))
    dataset = ws.registry.get(info["dataset"])
    tokenizer = load_tokenizer(Path(info["model"]))
    common = {
        "max_steps": shape["steps"],
        "batch_size": shape["batch_size"],
        "learning_rate": shape["lr"],
        "max_length": shape["max_length"],
        "warmup_ratio": 0.05,
        "logging_steps": 5,
        "eval_steps": 10_000,
        "save_steps": 10_000,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
    }
    train_examples = load_split(ws, dataset, "train")
    precision = "bf16" if name == "trl-defaults" else "fp32"  # TRL's default turns on bf16 autocast on CPU
    dropout, packing = common["lora"]["dropout"], False
    clock = _clock()
    start = time.perf_counter()
    lf: dict = {}
    if name in LF_CONFIGS:
        lf_settings = {**common, **OVERRIDES.get(name, {})}
        dropout = lf_settings["lora"]["dropout"]
        lf = run_lf(
            name, Path(shape["llamafactory"]), info["model"], train_examples, lf_settings, Path(info["workspace"])
        )
        clock.seconds, clock.cpu_seconds, clock.tokens = lf["seconds"], lf["cpu_seconds"], lf["tokens"]
        precision = lf["precision"]
        from tailorlm.modeling import load_trained

        model, _ = load_trained(Path(lf["adapter"]), Path(info["model"]))
    elif name in TRL_CONFIGS:
        trl_settings = {**common, **OVERRIDES.get(name, {})}
        dropout = trl_settings["lora"]["dropout"]
        model = _trl(info, train_examples, trl_settings, tuned=name.startswith("trl-tuned"), clock=clock)
    else:
        from tailorlm.train import train

        method = name.split("-")[0]
        settings = {**common, "lora": {"r": 16, "alpha": 32, "dropout": "auto"}, **OVERRIDES.get(name, {})}
        settings |= {"method": method, "learning_rate": shape["lr"] / 10 if method == "full" else shape["lr"]}
        if name in ("lora-bf16", "lora-fp32"):
            settings["precision"] = name.split("-")[1]
        project = parse_project(
            {"project": "bench", "base_model": info["model"], "train": settings}, root=Path(info["workspace"])
        )
        result = train(ws, project, dataset=dataset.id, force=True, callbacks=[clock])
        precision = result.plan.precision
        dropout, packing = result.plan.lora_dropout, result.plan.packing
        from tailorlm.modeling import load_trained

        artifact = result.run_dir / ("model" if method == "full" else "adapter")
        model, _ = load_trained(artifact, Path(info["model"]))
    seconds = lf.get("call_seconds") or time.perf_counter() - start  # an lf row: its training call
    val = tokenize_split(tokenizer, load_split(ws, dataset, "val"), shape["max_length"])
    model.eval()
    losses, counts = [], []
    with torch.no_grad():
        for row in val.rows:
            ids = torch.tensor([row["input_ids"]])
            labels = torch.tensor([row["labels"]])
            out = model(input_ids=ids, labels=labels)
            n = int((labels[:, 1:] != -100).sum())
            losses.append(float(out.loss) * n)
            counts.append(n)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "lora" not in n)
    return {
        "config": name,
        "precision": precision,
        "dropout": dropout,
        "packing": packing,
        "seconds": seconds,
        "loop_seconds": clock.seconds,
        "loop_cpu_seconds": clock.cpu_seconds,
        "tokens": clock.tokens,
        "tokens_per_s": clock.tokens / clock.seconds,
        "tokens_per_cpu_s": clock.tokens / max(clock.cpu_seconds, 1e-9),
        "val_loss": sum(losses) / sum(counts),
        "params": n_params,
        "peak_rss_mb": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, lf.get("peak_rss_mb", 0)),
    }


def _clock():
    """A callback timing the training loop from the end of its first step (warm-up: allocations, kernel
    selection) to the end of its last, wall and CPU time of all the process's threads, and counting the
    non-padding tokens of those steps; the same one times both trainers, so loading, tokenising, the
    final evaluation and saving are left out. CPU time is the comparison that holds when other jobs share
    the cores."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        seconds, cpu_seconds, tokens, _start, _cpu, _tokens = 0.0, 0.0, 0, 0.0, 0.0, 0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                self._start, self._cpu = time.perf_counter(), time.process_time()
                self._tokens = int(state.num_input_tokens_seen or 0)

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds = time.perf_counter() - self._start
            self.cpu_seconds = time.process_time() - self._cpu
            self.tokens = int(state.num_input_tokens_seen or 0) - self._tokens

    return Clock()


def _trl(info: dict, examples: list, common: dict, *, tuned: bool, clock):
    """TRL's SFTTrainer with the same LoRA, batch size, steps, lr and max_length.

    Defaults: everything else as TRL 1.16 ships it — bf16 autocast where the CPU has bf16 and gradient
    checkpointing (both turned on silently by SFTConfig), loss on every token, random batches.
    Tuned: fp32, no checkpointing, loss on the completion only (each example given as a conversational
    prompt + completion, the completion being the last assistant turn), length-grouped batches, and our
    warmup share — what a careful user would set on a CPU."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tailorlm.modeling import load_tokenizer

    tokenizer = load_tokenizer(Path(info["model"]))
    if tuned:
        rows = [
            {
                "prompt": [m.model_dump() for m in e.messages[:-1]],
                "completion": [e.messages[-1].model_dump()],
            }
            for e in examples
        ]
    else:
        rows = [{"messages": [m.model_dump() for m in e.messages]} for e in examples]
    data = Dataset.from_list(rows)
    model = AutoModelForCausalLM.from_pretrained(info["model"], dtype="float32")
    tuning = (
        dict(
            bf16=False,
            gradient_checkpointing=False,
            completion_only_loss=True,
            train_sampling_strategy="group_by_length",  # transformers 5's name for group_by_length=True
            warmup_steps=round(common["warmup_ratio"] * common["max_steps"]),
        )
        if tuned
        else {}
    )
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=common["batch_size"],
        max_steps=common["max_steps"],
        learning_rate=common["learning_rate"],
        max_length=common["max_length"],
        report_to="none",
        save_strategy="no",
        logging_steps=5,
        use_cpu=True,
        include_num_input_tokens_seen="non_padding",
        **tuning,
    )
    lora = common["lora"]
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
        callbacks=[clock],
    )
    trainer.train()
    return trainer.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="a smaller built model, for a smoke run")
    parser.add_argument(
        "--base-model",
        type=Path,
        help="a real model directory (e.g. SmolLM2-135M-Instruct from `tailorlm base import`) instead of the built one",
    )
    parser.add_argument("--batch-size", type=int, help="default 8 for the built model, 4 with --base-model")
    parser.add_argument("--max-length", type=int, help="default 512 for the built model, 384 with --base-model")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (full fine-tuning uses a tenth)")
    parser.add_argument("--only", nargs="*", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the table shows medians")
    parser.add_argument(
        "--llamafactory",
        type=Path,
        help="LLaMA-Factory's venv (or its python / llamafactory-cli) for the lf rows (default ../lf-venv)",
    )
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if args._child:
        name, info, shape = args._child[0], json.loads(args._child[1]), json.loads(args._child[2])
        print("RESULT " + json.dumps(run_config(name, info, shape)))
        return
    if args.base_model is not None and not (args.base_model / "config.json").is_file():
        parser.error(f"--base-model {args.base_model}: not a model directory (no config.json)")
    only = list(args.only)
    python = lf_python(args.llamafactory)
    if python is None and any(name in LF_CONFIGS for name in only):
        where = args.llamafactory or "../lf-venv beside the checkout"
        print(f"skipping {', '.join(LF_CONFIGS)}: no LLaMA-Factory venv at {where} (docs/benchmarks.md has the recipe)")
        only = [name for name in only if name not in LF_CONFIGS]
        if not only:
            sys.exit("nothing left to run")
    batch_size, max_length = SHAPES["real" if args.base_model else "built"]
    shape = {
        "steps": args.steps,
        "batch_size": args.batch_size or batch_size,
        "max_length": args.max_length or max_length,
        "lr": args.lr,
        "llamafactory": str(python),
    }
    work = Path(tempfile.mkdtemp(prefix="tailorlm-bench-"))
    info = setup(work, args.quick, args.base_model)
    peaks = {"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16")}
    runs: dict[str, list[dict]] = {name: [] for name in only}
    for round_ in range(1, args.repeats + 1):
        for name in only:  # interleaved: every configuration once per round
            print(f"round {round_}/{args.repeats}: {name} …", flush=True)
            output = subprocess.run(  # the child's progress and errors go straight to stderr
                [sys.executable, __file__, "--_child", name, json.dumps(info), json.dumps(shape)],
                stdout=subprocess.PIPE,
                text=True,
                check=False,
            )
            line = next((ln for ln in output.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{name} failed (exit {output.returncode}; its error is on stderr)", flush=True)
                continue
            print(line, flush=True)  # each run as soon as it is measured: a long run interrupted keeps them
            runs[name].append(json.loads(line[7:]))
    peaks = {k: max(v, {"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16")}[k]) for k, v in peaks.items()}
    results = [summarise(rows) for rows in runs.values() if rows]
    if not results:
        sys.exit("every configuration failed")
    print_table(results, shape, args.base_model, peaks)


def summarise(rows: list[dict]) -> dict:
    """One configuration's rounds: medians, with the spread of tokens/s."""
    speeds = sorted(r["tokens_per_s"] for r in rows)
    return {
        **rows[0],
        "rounds": len(rows),
        "tokens_per_s": statistics.median(speeds),
        "tokens_per_s_range": (speeds[0], speeds[-1]),
        "tokens_per_cpu_s": statistics.median(r["tokens_per_cpu_s"] for r in rows),
        "seconds": statistics.median(r["seconds"] for r in rows),
        "val_loss": statistics.median(r["val_loss"] for r in rows),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
    }


def print_table(results: list[dict], shape: dict, base_model: Path | None, peaks: dict[str, float]) -> None:
    """The Markdown table: each row's speed against the faster TRL row (or the first row without one)."""
    trl_rows = [r for r in results if r["config"] in TRL_CONFIGS]
    base = max(trl_rows, key=lambda r: r["tokens_per_s"]) if trl_rows else results[0]
    model = f"{base_model.name if base_model else 'built model'} ({results[0]['params'] / 1e6:.1f}M parameters)"
    print(
        f"\nmatmul peak on this machine (best of the start and the end of the run): "
        f"fp32 {peaks['fp32'] / 1e12:.2f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.2f} TFLOP/s"
    )
    print(
        f"model: {model}; {shape['steps']} steps (the first one excluded as warm-up), batch "
        f"{shape['batch_size']}, max_length {shape['max_length']}, lr {shape['lr']:g} (full {shape['lr'] / 10:g}); "
        f"median of {max(r['rounds'] for r in results)} interleaved rounds\n"
    )
    print(
        f"| config | precision | LoRA dropout | packing | tokens/s median (min–max) | × {base['config']} | "
        f"tokens per CPU-s | × {base['config']} | wall s | peak RSS MB | × {base['config']} | val loss | MFU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        factor = 6 if r["config"] == "full" else 4
        mfu = factor * r["params"] * r["tokens_per_s"] / peaks[r["precision"]]
        low, high = r["tokens_per_s_range"]
        print(
            f"| {r['config']} | {r['precision']} | {r.get('dropout', '–')} | {'on' if r.get('packing') else 'off'} | "
            f"{r['tokens_per_s']:.0f} ({low:.0f}–{high:.0f}) | "
            f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}× | "
            f"{r['tokens_per_cpu_s']:.1f} | {r['tokens_per_cpu_s'] / base['tokens_per_cpu_s']:.2f}× | "
            f"{r['seconds']:.0f} | {r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}× | "
            f"{r['val_loss']:.3f} | {mfu:.1%} (of {r['precision']} peak) |"
        )


if __name__ == "__main__":
    main()
