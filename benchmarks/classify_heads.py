"""Quality on a real decoder LLM: SmolLM2-135M-Instruct routing the sample company's tickets two ways, on the
same split and the same test cases — answering with the team's name (LoRA, `train.head: generative`) and with
a classification head (`LlamaForSequenceClassification`, LoRA + the head trained in full) — against the base
model prompted with the teams. Accuracy and macro-F1 with 95% bootstrap intervals, and the head against the
generative run item by item (paired bootstrap). The table of docs/quality.md ("a classification head on
SmolLM2").

    flock /work/briefs/heavy.lock python benchmarks/classify_heads.py --workspace /tmp/heads   # ~15 min, 2 cores
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import yaml
from quality import TICKETS, table  # the generative half's settings, as measured there (benchmarks/quality.py)

HEAD_TRAIN = {"head": "classification", "learning_rate": 1e-3, "max_length": 192}  # a new head: a higher rate


def tickets_project(root: Path, train: dict[str, Any], base_model: str | None = None) -> Any:
    from tailorlm.config import parse_project
    from tailorlm.examples import sample_company

    acme = sample_company()
    project = yaml.safe_load((acme / "tickets.yaml").read_text())
    project["sources"] = [{**s, "path": str(acme / s["path"])} for s in project["sources"]]
    project.update({k: copy.deepcopy(v) for k, v in TICKETS.items() if k not in ("train", "evaluate")})
    project["train"] = {**project.get("train", {}), **TICKETS["train"], **train}
    project["evaluate"] = {**project.get("evaluate", {}), **TICKETS["evaluate"], "baselines": ["base"]}
    project["evaluate"].pop("objectives", None)
    if base_model:
        project["base_model"] = base_model
    return parse_project(project, root=root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("heads-workspace"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--base-model", default=None, help="Another decoder (default: SmolLM2-135M-Instruct).")
    parser.add_argument("--max-steps", type=int, default=None, help="Cut each training short (a quick check).")
    parser.add_argument(
        "--head-only",
        action="store_true",
        help="Train only the classification head and compare it with the prompted base (a busy machine: the "
        "generative run's numbers on the same split are in docs/quality.md).",
    )
    arguments = parser.parse_args()

    from tailorlm.evaluate import evaluate
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare
    from tailorlm.train import train
    from tailorlm.workspace import Workspace

    arguments.workspace.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(arguments.workspace)
    length = {"epochs": arguments.epochs, **({"max_steps": arguments.max_steps} if arguments.max_steps else {})}
    generative = tickets_project(arguments.workspace, {"head": "generative", **length}, arguments.base_model)
    head = tickets_project(arguments.workspace, {**HEAD_TRAIN, **length}, arguments.base_model)
    dataset = prepare(workspace, generative, ingest=ingest).dataset
    seconds = {}
    runs = {}
    trainings = [("head", head)] if arguments.head_only else [("generative", generative), ("head", head)]
    for name, project in trainings:
        started = time.perf_counter()
        result = train(workspace, project, dataset=dataset.id)
        seconds[name] = time.perf_counter() - started
        runs[name] = result.run.id
        print(f"{name}: run {result.run.id}, {seconds[name]:.0f} s{' (reused)' if result.skipped else ''}")
    started = time.perf_counter()
    reference = runs.get("generative", "base")
    evaluation = evaluate(workspace, generative, runs=list(runs.values()), reference=reference)
    summary = evaluation.summary
    print(f"evaluation: {time.perf_counter() - started:.0f} s, {summary['cases']['total']} test cases")
    print(f"runs: {runs}; reference {reference}\n")
    print(table(summary))
    print()
    head_name = "finetuned" if len(runs) == 1 else runs["head"]
    against = "generative" if "generative" in runs else "base"
    for metric, versus in summary["comparisons"].get(head_name, {}).items():
        low, high = versus["ci"]
        print(
            f"head vs {against}, {metric}: {versus['mean_diff']:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"(wins/losses/ties {versus['wins']}/{versus['losses']}/{versus['ties']} of {versus['n']})"
        )
    confidence = summary.get("confidence", {}).get(head_name)
    if confidence:
        print(
            f"head calibration on test: ECE {confidence['ece']:.3f}, T {confidence['temperature']:.2f}; abstain below "
            f"{confidence['min_confidence']:.3f} answers {confidence['coverage']:.0%} "
            f"with precision {confidence['precision_kept']}"
        )
    workspace.close()


if __name__ == "__main__":
    main()
