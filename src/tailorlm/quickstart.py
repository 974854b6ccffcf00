"""`tailorlm quickstart`: the whole journey on the bundled sample company (examples/acme).

Without `--base-model` it builds a small demo model locally — a Llama-architecture network with
random weights, given about a minute of pretraining on the sample company's documents so it has
some language to start from — and says plainly that it is a demo model. With a real local model
directory the same journey runs on that model.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tailorlm.config import load_project
from tailorlm.pipeline import PipelineResult, run_project
from tailorlm.workspace import Workspace, atomic_write_text

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme"

# Settings for the demo model: it is small and starts nearly blank, so it needs a higher learning
# rate and a wider adapter than a real model would (the project file keeps the real-model defaults).
DEMO_TRAIN = {
    "method": "lora",
    "epochs": 6,
    "learning_rate": 3e-3,
    "batch_size": 8,
    "max_length": 384,
    "lora": {"r": 64, "alpha": 128, "dropout": 0.0},
    "logging_steps": 10,
}
# The demo's own objective: the project file's `rouge_l >= 0.15` is meant for a real model; a
# 2M-parameter demo model starting from ~0.01 (base) is held to 0.10 — the gate still decides.
DEMO_EVALUATE = {"max_new_tokens": 64, "limit": 24, "objectives": {"rouge_l": 0.10}}
PRETRAIN_STEPS = 150
DEMO_MODEL = {"hidden_size": 192, "layers": 4, "heads": 3, "intermediate_size": 512, "vocab_size": 2048}

# `--smoke`: the same journey in about a minute with a tiny model, to check an installation (and in tests).
SMOKE_TRAIN = {**DEMO_TRAIN, "epochs": 1, "max_steps": 12, "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}
SMOKE_EVALUATE = {"max_new_tokens": 16, "limit": 6, "few_shot_k": 1, "rag_k": 1, "objectives": {}}
SMOKE_MODEL = {"hidden_size": 64, "layers": 2, "heads": 2, "intermediate_size": 128, "vocab_size": 1024}


def example_dir() -> Path:
    if not (EXAMPLE / "tailorlm.yaml").is_file():
        raise FileNotFoundError(f"the sample company is not found at {EXAMPLE} (run from a clone of TailorLM)")
    return EXAMPLE


def corpus_texts(folder: Path) -> list[str]:
    """Text of the sample company's documents and FAQ, to train the demo tokenizer and pretrain the demo
    model (not the raw mailbox: its MIME headers would be what the demo model learns to write)."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((folder / "docs").glob("*")) if p.is_file()]
    for name in ("faq.csv",):
        if (folder / name).is_file():
            texts.append((folder / name).read_text(encoding="utf-8", errors="replace"))
    return texts


def run_quickstart(
    workspace: Workspace,
    *,
    base_model: Path | None = None,
    smoke: bool = False,
    say: Callable[..., None] = print,
) -> PipelineResult:
    source = example_dir()
    project_data: dict[str, Any] = yaml.safe_load((source / "tailorlm.yaml").read_text(encoding="utf-8"))
    project_data["sources"] = [{**s, "path": str((source / s["path"]).resolve())} for s in project_data["sources"]]
    if base_model is None:
        base_model = workspace.root / "base-models" / ("acme-smoke" if smoke else "acme-demo")
        say(
            "[yellow]No --base-model given: using a small DEMO model built on this machine[/] (random weights "
            "and ~1 minute of pretraining on the sample documents). Its answers show the mechanics, not the "
            "quality of a real model; pass --base-model /path/to/a/local/model for that."
        )
        if not (base_model / "config.json").is_file():
            from tailorlm.demo import build_demo_model

            if base_model.exists():
                shutil.rmtree(base_model)
            build_demo_model(
                base_model,
                corpus_texts(source),
                pretrain_steps=0 if smoke else PRETRAIN_STEPS,
                say=say,
                **(SMOKE_MODEL if smoke else DEMO_MODEL),
            )
        project_data["train"] = {**project_data.get("train", {}), **(SMOKE_TRAIN if smoke else DEMO_TRAIN)}
        project_data["evaluate"] = {**project_data.get("evaluate", {}), **(SMOKE_EVALUATE if smoke else DEMO_EVALUATE)}
    project_data["base_model"] = str(Path(base_model).resolve())
    atomic_write_text(workspace.project_file, yaml.safe_dump(project_data, sort_keys=False, allow_unicode=True))
    project = load_project(workspace.project_file)
    say(f"Project file: {workspace.project_file}")
    result = run_project(workspace, project, say=say)
    report = result.evaluation.path / "report.html"
    say(f"\n[bold green]Done.[/] Report: {report}")
    if result.model is not None:
        say(f"Serve it:  tailorlm serve --workspace {workspace.root} --model {result.model.name} --no-auth")
    return result
