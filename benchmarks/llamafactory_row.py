"""The LLaMA-Factory rows of `benchmarks/train_throughput.py`: the same model, data, LoRA, batch, steps and lr.

LLaMA-Factory lives in its own virtual environment (its transformers, TRL, PEFT and datasets pins conflict
with ours); by default `../lf-venv` beside the checkout, or `--llamafactory PATH` (the venv, its python or
its `llamafactory-cli`). The recipe is in docs/benchmarks.md. Each row writes the training split as
LLaMA-Factory's sharegpt JSON with a `dataset_info.json`, a training YAML (stage sft, LoRA on all linear
layers, cutoff_len = max_length), and runs it in a subprocess of that venv's python through
`llamafactory.train.tuner.run_exp` — what `llamafactory-cli train YAML` calls — with the benchmark's own
clock callback added, so its tokens/s are timed the same way as the other rows (non-padding tokens of the
steps after the first). The adapter it saves is then scored with the same validation loss as every row.

  lf        LLaMA-Factory 0.9.5, fp32, gradient checkpointing off (its default is on)
  lf-bf16   the same with `bf16: true` (LLaMA-Factory then loads the base weights in bf16)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

LF_CONFIGS = ("lf", "lf-bf16")
DEFAULT_VENV = Path(__file__).resolve().parents[2] / "lf-venv"


def lf_python(path: Path | None) -> Path | None:
    """The python of LLaMA-Factory's venv from a venv folder, its python or its `llamafactory-cli`; None when
    it is absent (the rows are then skipped)."""
    path = path or DEFAULT_VENV
    if path.is_dir():
        path = path / "bin" / "python"
    elif path.name.startswith("llamafactory-cli"):
        path = path.parent / "python"
    return path if path.is_file() else None


def write_inputs(work: Path, name: str, model: str, examples: list, common: dict) -> Path:
    """The sharegpt data, its dataset_info.json and the training YAML of one row; returns the YAML."""
    data = work / "data"
    data.mkdir(parents=True)
    rows = [{"messages": [{"role": m.role, "content": m.content} for m in e.messages]} for e in examples]
    (data / "bench.json").write_text(json.dumps(rows, ensure_ascii=False))
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    info = {
        "bench": {
            "file_name": "bench.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {**tags, "system_tag": "system"},
        }
    }
    (data / "dataset_info.json").write_text(json.dumps(info))
    lora = common["lora"]
    settings = {
        "model_name_or_path": model,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "lora_rank": lora["r"],
        "lora_alpha": lora["alpha"],
        "lora_dropout": lora["dropout"],
        "dataset": "bench",
        "dataset_dir": str(data),
        # no `template`: LLaMA-Factory parses the tokenizer's own chat template (the one our rows render)
        "cutoff_len": common["max_length"],
        "overwrite_cache": True,
        "output_dir": str(work / "out"),
        "per_device_train_batch_size": common["batch_size"],
        "gradient_accumulation_steps": 1,
        "max_steps": common["max_steps"],
        "learning_rate": common["learning_rate"],
        "warmup_ratio": common["warmup_ratio"],
        "logging_steps": 5,
        "save_strategy": "no",
        "report_to": "none",
        "plot_loss": False,
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "disable_gradient_checkpointing": True,
        "bf16": name == "lf-bf16",
        "include_num_input_tokens_seen": "non_padding",
    }
    path = work / "train.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def run_lf(name: str, python: Path, model: str, examples: list, common: dict, work: Path) -> dict:
    """Train one LLaMA-Factory row in its venv; its clock, the whole call's seconds, its peak RSS and adapter."""
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    config = write_inputs(work, name, model, examples, common)
    result = work / "clock.json"
    start = time.perf_counter()
    env = {**os.environ, "HF_HOME": str(work / "hf")}  # its datasets cache stays in the run's folder
    subprocess.run([str(python), __file__, "--_child", str(config), str(result)], check=True, env=env)
    seconds = time.perf_counter() - start
    clock = json.loads(result.read_text())
    return {
        **clock,
        "call_seconds": seconds,
        "precision": "bf16" if name == "lf-bf16" else "fp32",
        # the largest finished child: LLaMA-Factory runs in one process (no dataloader or map workers)
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "adapter": str(work / "out"),
    }


def _child(config: Path, result: Path) -> None:
    """Runs in LLaMA-Factory's venv: `llamafactory-cli train CONFIG` with the benchmark's clock added."""
    from llamafactory.train.tuner import run_exp
    from train_throughput import _clock  # this folder is sys.path[0]; the module imports only stdlib at the top

    clock = _clock()
    run_exp(yaml.safe_load(config.read_text()), callbacks=[clock])
    result.write_text(json.dumps({"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "tokens": clock.tokens}))


if __name__ == "__main__" and sys.argv[1:2] == ["--_child"]:
    _child(Path(sys.argv[2]), Path(sys.argv[3]))
