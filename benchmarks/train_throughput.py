"""Training throughput: TailorLM's trainer vs TRL's SFTTrainer defaults, on one model, data and budget.

Builds a ~30M-parameter Llama-architecture model locally, prepares the sample company's FAQ + e-mail
chat dataset, then runs each configuration in its own subprocess (so peak RSS is its own):

  (a) trl-defaults  TRL SFTTrainer + the same LoRA config, everything else TRL's default
  (b) lora          tailorlm train, LoRA
  (c) qlora         tailorlm train, QLoRA (4-bit NF4)
  (d) full          tailorlm train, full fine-tuning
  (e) lora-bf16     tailorlm train, LoRA with bf16 autocast (fp32 master weights)

Reported: non-padding tokens/s, ratio to (a), peak RSS, final validation loss measured the same way
for every model (assistant tokens only, our masks), and model-FLOPs utilisation against a matmul peak
measured in the same run (training FLOPs ≈ 6·N·T full, 4·N·T adapters; N = base parameters).

    python benchmarks/train_throughput.py [--steps 40] [--quick]
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

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["trl-defaults", "lora", "qlora", "full", "lora-bf16"]


def matmul_peak(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def setup(work: Path, quick: bool) -> dict:
    """Build the model and the dataset once; every configuration reads them."""
    from tailorlm.config import parse_project
    from tailorlm.demo import build_demo_model
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare
    from tailorlm.quickstart import corpus_texts
    from tailorlm.workspace import Workspace

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


def run_config(name: str, info: dict, steps: int) -> dict:
    """Train one configuration; runs in a fresh subprocess."""
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
        "max_steps": steps,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "max_length": 512,
        "warmup_ratio": 0.05,
        "logging_steps": 5,
        "eval_steps": 10_000,
        "save_steps": 10_000,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
    }
    train_examples = load_split(ws, dataset, "train")
    start = time.perf_counter()
    if name == "trl-defaults":
        model, tokens = _trl(info, train_examples, common)
    else:
        from tailorlm.train import train

        method = "lora" if name == "lora-bf16" else name
        settings = {**common, "method": method, "learning_rate": 1e-4 if method == "full" else 1e-3}
        if name == "lora-bf16":
            settings["precision"] = "bf16"
        project = parse_project(
            {"project": "bench", "base_model": info["model"], "train": settings}, root=Path(info["workspace"])
        )
        result = train(ws, project, dataset=dataset.id, force=True)
        rows = result.metrics_rows()
        tokens = max(row.get("tokens_seen", 0) for row in rows)
        from tailorlm.modeling import load_trained

        artifact = result.run_dir / ("model" if method == "full" else "adapter")
        model, _ = load_trained(artifact, Path(info["model"]))
    seconds = time.perf_counter() - start
    val = tokenize_split(tokenizer, load_split(ws, dataset, "val"), 512)
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
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "val_loss": sum(losses) / sum(counts),
        "params": n_params,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _trl(info: dict, examples: list, common: dict):
    """TRL's SFTTrainer with its defaults: only batch size, steps, lr and the LoRA config are ours."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tailorlm.modeling import load_tokenizer

    tokenizer = load_tokenizer(Path(info["model"]))
    data = Dataset.from_list([{"messages": [m.model_dump() for m in e.messages]} for e in examples])
    model = AutoModelForCausalLM.from_pretrained(info["model"])
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=common["batch_size"],
        max_steps=common["max_steps"],
        learning_rate=common["learning_rate"],
        report_to="none",
        save_strategy="no",
        logging_steps=5,
        use_cpu=True,
        include_num_input_tokens_seen="non_padding",
    )
    lora = common["lora"]
    seen = {}

    class Tokens(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen["tokens"] = state.num_input_tokens_seen

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
        callbacks=[Tokens()],
    )
    trainer.train()
    return trainer.model, seen.get("tokens", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="a smaller model, for a smoke run")
    parser.add_argument("--only", nargs="*", default=CONFIGS)
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if args._child:
        name, info = args._child[0], json.loads(args._child[1])
        print("RESULT " + json.dumps(run_config(name, info, args.steps)))
        return
    work = Path(tempfile.mkdtemp(prefix="tailorlm-bench-"))
    info = setup(work, args.quick)
    results = []
    for name in args.only:
        output = subprocess.run(
            [sys.executable, __file__, "--steps", str(args.steps), "--_child", name, json.dumps(info)],
            capture_output=True,
            text=True,
            check=False,
        )
        line = next((ln for ln in output.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{name} failed:\n{output.stderr[-3000:]}")
            continue
        results.append(json.loads(line[7:]))
    peak32, peak16 = matmul_peak("float32"), matmul_peak("bfloat16")
    base = next((r for r in results if r["config"] == "trl-defaults"), results[0])
    print(f"\nmatmul peak on this machine: fp32 {peak32 / 1e12:.2f} TFLOP/s, bf16 {peak16 / 1e12:.2f} TFLOP/s")
    print(f"model: {results[0]['params'] / 1e6:.1f}M parameters; {args.steps} steps, batch 8, max_length 512\n")
    print("| config | tokens/s | × trl-defaults | peak RSS MB | val loss | MFU |")
    print("|---|---|---|---|---|---|")
    for r in results:
        factor = 6 if r["config"] == "full" else 4
        peak = peak16 if r["config"].endswith("bf16") or r["config"] == "trl-defaults" else peak32
        mfu = factor * r["params"] * r["tokens_per_s"] / peak
        print(
            f"| {r['config']} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base['tokens_per_s']:.2f}× | "
            f"{r['peak_rss_mb']:.0f} | {r['val_loss']:.3f} | {mfu:.1%} |"
        )


if __name__ == "__main__":
    main()
