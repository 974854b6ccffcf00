"""The LLaMA-Factory rows of benchmarks/train_throughput.py: where its venv is looked for (the rows are skipped
when it is absent) and the inputs written for it (sharegpt data, dataset_info.json, a training YAML that carries
the benchmark's shared settings)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tailorlm.formats.examples import Example

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
_spec = importlib.util.spec_from_file_location("llamafactory_row", BENCH / "llamafactory_row.py")
assert _spec is not None and _spec.loader is not None
row = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(row)

COMMON = {
    "max_steps": 6,
    "batch_size": 4,
    "learning_rate": 2e-4,
    "max_length": 384,
    "warmup_ratio": 0.05,
    "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
}


def test_venv_found_from_its_folder_python_or_cli_and_absent_is_none(tmp_path):
    venv = tmp_path / "lf-venv"
    (venv / "bin").mkdir(parents=True)
    assert row.lf_python(venv) is None  # a folder without a python
    python = venv / "bin" / "python"
    python.write_text("")
    assert row.lf_python(venv) == python
    assert row.lf_python(python) == python
    assert row.lf_python(venv / "bin" / "llamafactory-cli") == python
    assert row.lf_python(tmp_path / "missing") is None


def test_inputs_carry_the_same_data_and_settings(tmp_path):
    examples = [
        Example.model_validate(
            {
                "messages": [
                    {"role": "system", "content": "You are the Acme Care Team."},
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer {i}."},
                ]
            }
        )
        for i in range(3)
    ]
    config = yaml.safe_load(row.write_inputs(tmp_path, "lf-bf16", "/models/m", examples, COMMON).read_text())
    info = json.loads((tmp_path / "data" / "dataset_info.json").read_text())["bench"]
    data = json.loads((tmp_path / "data" / info["file_name"]).read_text())
    assert [d["messages"] for d in data] == [[m.model_dump() for m in e.messages] for e in examples]
    assert info["formatting"] == "sharegpt" and info["tags"]["system_tag"] == "system"
    assert config["dataset"] == "bench" and config["dataset_dir"] == str(tmp_path / "data")
    assert (config["stage"], config["finetuning_type"], config["lora_target"]) == ("sft", "lora", "all")
    assert (config["lora_rank"], config["lora_alpha"], config["lora_dropout"]) == (16, 32, 0.05)
    assert (config["cutoff_len"], config["per_device_train_batch_size"], config["max_steps"]) == (384, 4, 6)
    assert config["learning_rate"] == 2e-4 and config["bf16"] is True
    assert config["include_num_input_tokens_seen"] == "non_padding"


def test_benchmark_skips_the_rows_with_a_message_when_the_venv_is_absent(tmp_path):
    """Only the lf rows asked for, no venv: the script says so and exits before building anything."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run(
        [sys.executable, str(BENCH / "train_throughput.py"), "--only", "lf", "--llamafactory", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0
    assert f"skipping lf, lf-bf16: no LLaMA-Factory venv at {tmp_path / 'none'}" in done.stdout
    assert "nothing left to run" in done.stderr
