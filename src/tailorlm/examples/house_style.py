"""Preference pairs that teach the sample company's house style, derived from its own answers.

Acme's style guide asks for answers in the first person plural ("we", "our"), a concrete next step, and
the signature "The Acme Care Team". For each answer of the sample company (FAQ answers, agents' e-mail
replies) `house_style_pairs` makes a pair with the same prompt:

* chosen: the answer as Acme wrote it, signed "The Acme Care Team";
* rejected: the same content in an impersonal voice ("we" → "Acme", "our" → "Acme's"), unsigned.

So the pair differs only in style, and a model that learns it moves towards the house voice without being
taught other facts. Used by the iterate tests and by the real-model measurement (docs/quality.md,
`benchmarks/preference_style.py`, `tests/real_model/test_smollm2_preference.py`), which share the rest of
this file: the pairs written with a fixed set of prompts held out (`write_style_pairs`), the DPO project
(`style_project`) and the paired table of style and content measures (`style_table`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailorlm.feedback import FeedbackRecord
from tailorlm.formats.examples import Example
from tailorlm.workspace import stable_hash

if TYPE_CHECKING:
    from tailorlm.config import Project
    from tailorlm.workspace import Workspace

SIGNATURE = "The Acme Care Team"
IMPERSONAL = [  # first person plural → the company's name; order matters (contractions first)
    (r"\bwe'll\b", "Acme will"),
    (r"\bwe're\b", "Acme is"),
    (r"\bwe've\b", "Acme has"),
    (r"\bwe'd\b", "Acme would"),
    (r"\bwe\b", "Acme"),
    (r"\bours\b", "Acme's"),
    (r"\bour\b", "Acme's"),
    (r"\bus\b", "Acme"),  # lower case only: "US" is a country
]
_SIGN_OFF = re.compile(
    r"\n*(?:(?:warm |kind |best )?regards|best|thanks|cheers)?,?\s*\n*the acme care team\.?\s*$", re.I
)


def signed(text: str) -> str:
    """The answer ending with the team's signature (once)."""
    return f"{unsigned(text)}\n\n{SIGNATURE}"


def unsigned(text: str) -> str:
    return _SIGN_OFF.sub("", text.strip()).strip()


def impersonal(text: str) -> str:
    """The answer without the first person plural and without the signature."""
    out = unsigned(text)
    for pattern, replacement in IMPERSONAL:
        flags = 0 if pattern == r"\bus\b" else re.IGNORECASE
        out = re.sub(pattern, replacement, out, flags=flags)
    return out


def house_style_pairs(examples: Iterable[Example], *, reviewer: str = "style-guide") -> list[FeedbackRecord]:
    """Two records per chat example (chosen: signed house style; rejected: impersonal, unsigned) sharing a
    pair id; examples whose answer has no first person plural are left out (nothing to contrast)."""
    records = []
    for example in examples:
        if example.messages is None:
            continue
        prompt = [m for m in example.prompt if m["role"] != "system"]
        chosen, rejected = signed(example.target), impersonal(example.target)
        if rejected == unsigned(example.target) or not prompt:
            continue
        pair = f"style-{example.id}"
        for answer, rating in ((chosen, "up"), (rejected, "down")):
            records.append(
                FeedbackRecord(
                    messages=prompt,
                    answer=answer,
                    rating=rating,
                    pair=pair,
                    reviewer=reviewer,
                    reason="house style: we, a next step, signed The Acme Care Team",
                )
            )
    return records


# --- the measurement: docs/quality.md's table, benchmarks/preference_style.py and the real-model test ----------

SYSTEM = "You are Acme's customer support assistant."
MEASURES = ("house_style", "we_voice", "signed", "rouge_l")


@dataclass
class StylePairs:
    """The house-style pairs in two feedback files: the training prompts and a fixed number held out."""

    train: Path
    held_out: Path
    pairs: int  # prompts with a pair, both files
    held_out_pairs: int


def write_style_pairs(workspace: Workspace, base_model: str | Path, folder: Path, *, held_out: int) -> StylePairs:
    """Prepare the sample company's FAQ and agents' replies (PII off, no split), derive their house-style
    pairs and write them as two feedback files in `folder`: `held_out` prompts — chosen by a stable hash
    of the prompt, so the same ones every time — and the rest."""
    from tailorlm.config import parse_project
    from tailorlm.dataset_splits import load_split
    from tailorlm.examples import sample_company
    from tailorlm.feedback import write_feedback
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare

    acme = sample_company()
    answers = parse_project(
        {
            "project": "acme-answers",
            "base_model": str(base_model),
            "sources": [
                {"path": str(acme / "faq.csv"), "kind": "faq"},
                {"path": str(acme / "support.mbox"), "kind": "email"},
            ],
            "prepare": {"pii": "off", "split": {"test": 0.0, "val": 0.0}},
        },
        root=workspace.root,
    )
    dataset = prepare(workspace, answers, ingest=ingest).dataset
    records = house_style_pairs(load_split(workspace, dataset, "train"))
    pair_ids = sorted({r.pair or "" for r in records}, key=lambda pair: stable_hash(pair))
    if len(pair_ids) <= held_out:
        raise ValueError(f"only {len(pair_ids)} house-style pairs; can't hold {held_out} out")
    kept = set(pair_ids[:held_out])
    folder.mkdir(parents=True, exist_ok=True)
    train_file, held_out_file = folder / "house-style-train.jsonl", folder / "house-style-held-out.jsonl"
    write_feedback(train_file, [r for r in records if r.pair not in kept])
    write_feedback(held_out_file, [r for r in records if r.pair in kept])
    return StylePairs(train_file, held_out_file, len(pair_ids), held_out)


def style_project(base_model: str | Path, root: Path, pairs: StylePairs, **train: Any) -> Project:
    """DPO on the training pairs (LoRA on the base, which is the reference); the held-out prompts pinned to
    the test split, answered with greedy decoding and scored on ROUGE-L and we_voice. `train` overrides
    the train settings; `max_new_tokens` the evaluation's answer budget."""
    from tailorlm.config import parse_project

    max_new_tokens = train.pop("max_new_tokens", 96)
    settings = {
        "method": "dpo",
        "max_steps": 30,
        "batch_size": 4,
        "learning_rate": 5e-4,
        "max_length": 192,
        "logging_steps": 5,
        "save_steps": 10_000,
        "eval_steps": 10_000,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "preference": {"beta": 0.1},
        **train,
    }
    return parse_project(
        {
            "project": "acme-style",
            "base_model": str(base_model),
            "system_prompt": SYSTEM,
            "sources": [
                {"path": str(pairs.train.resolve()), "kind": "feedback"},
                {"path": str(pairs.held_out.resolve()), "kind": "feedback", "split": "test"},
            ],
            "prepare": {"pii": "off", "split": {"test": 0.0, "val": 0.0}},
            "train": settings,
            "evaluate": {"metrics": ["rouge_l", "we_voice"], "max_new_tokens": max_new_tokens, "batch_size": 16},
        },
        root=root,
    )


def style_table(
    rows: Iterable[dict[str, Any]], candidate: str, reference: str, n_resamples: int = 2000
) -> list[dict[str, Any]]:
    """Per measure (`MEASURES`), `candidate` vs `reference` on the cases both answered (an evaluation's
    results.jsonl rows): their means, the paired difference with its bootstrap 95% interval, wins and
    losses. `signed` = the answer's last 80 characters hold the signature; `house_style` = we_voice and signed."""
    from tailorlm.evaluate.stats import paired_comparison

    by_case: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_case.setdefault(row["case"], {})[row["candidate"]] = row
    cases = sorted(c for c, found in by_case.items() if {candidate, reference} <= set(found))

    def measure(row: dict[str, Any]) -> dict[str, float]:
        we = float(row["scores"].get("we_voice") or 0.0)
        sign = float(SIGNATURE.lower() in row["output"].lower()[-80:])
        return {"we_voice": we, "signed": sign, "house_style": we * sign, "rouge_l": row["scores"]["rouge_l"]}

    measured = {c: (measure(by_case[c][reference]), measure(by_case[c][candidate])) for c in cases}
    table = []
    for name in MEASURES:
        before = [measured[c][0][name] for c in cases]
        after = [measured[c][1][name] for c in cases]
        comparison = paired_comparison(after, before, n_resamples=n_resamples)
        table.append(
            {
                "metric": name,
                "reference": sum(before) / len(before) if before else float("nan"),
                "candidate": sum(after) / len(after) if after else float("nan"),
                "diff": comparison.mean_diff,
                "ci": list(comparison.ci),
                "wins": comparison.wins,
                "losses": comparison.losses,
                "n": comparison.n,
            }
        )
    return table
