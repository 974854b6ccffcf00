"""Benchmark: person-name detection (PERSON) with the default spaCy pipelines, on a labelled set written
separately from the detector (tests/assets/pii/persons.jsonl, English and French).

Two passes in the same process: `auto` — what `prepare` does by default, the installed pipeline of each
text's detected language (English when a line is too short to tell) — and `en only`, the English
pipeline on every line, to show what choosing by language is worth. Prints precision and recall (a
predicted span is right when it overlaps a labelled name; a name is found when a prediction overlaps
it) with 95% bootstrap CIs over lines, per language; then how many PERSON spans each pass predicts on
the older multilingual PII set (tests/assets/pii/labelled.jsonl), which has no names in it.

    .venv/bin/python benchmarks/pii_person.py
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tailorlm.pii import PERSON, find_pii
from tailorlm.pii.ner import choose, pipeline_for
from tailorlm.prepare.clean import detect_language

ASSETS = Path(__file__).resolve().parents[1] / "tests" / "assets" / "pii"


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (ASSETS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def predict(text: str, mode: str) -> list[tuple[int, int]]:
    pipeline = pipeline_for("en") if mode == "en only" else choose(detect_language(text) or "en")
    if pipeline is None:
        return []
    return [(s.start, s.end) for s in find_pii(text, types=[PERSON], ner_model=pipeline)]


def counts(row: dict, predicted: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    """(right predictions, predictions, found names, names) for one line."""
    gold = [(s["start"], s["end"]) for s in row["spans"] if s["type"] == PERSON]

    def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] < b[1] and b[0] < a[1]

    right = sum(any(overlaps(p, g) for g in gold) for p in predicted)
    found = sum(any(overlaps(g, p) for p in predicted) for g in gold)
    return right, len(predicted), found, len(gold)


def score(rows: list[tuple[int, int, int, int]], *, resamples: int = 2000, seed: int = 0) -> dict:
    def ratio(sample: list[tuple[int, int, int, int]], top: int, bottom: int) -> float:
        below = sum(r[bottom] for r in sample)
        return sum(r[top] for r in sample) / below if below else float("nan")

    rng = random.Random(seed)
    boot = [[rng.choice(rows) for _ in rows] for _ in range(resamples)]
    out = {}
    for name, top, bottom in (("precision", 0, 1), ("recall", 2, 3)):
        values = sorted(v for v in (ratio(s, top, bottom) for s in boot) if v == v)
        out[name] = (ratio(rows, top, bottom), values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1])
    out["names"] = sum(r[3] for r in rows)
    out["predicted"] = sum(r[1] for r in rows)
    return out


def main() -> None:
    persons = load("persons.jsonl")
    older = load("labelled.jsonl")
    print(f"pipelines: en {pipeline_for('en')}, fr {pipeline_for('fr')}")
    print("| pass | lang | names | predicted | precision [95% CI] | recall [95% CI] |")
    print("|---|---|---:|---:|---|---|")
    for mode in ("auto", "en only"):
        started = time.perf_counter()
        by_language: dict[str, list[tuple[int, int, int, int]]] = {}
        for row in persons:
            by_language.setdefault(row["lang"], []).append(counts(row, predict(row["text"], mode)))
        by_language["all"] = [c for lang in ("en", "fr") for c in by_language[lang]]
        for lang, rows in by_language.items():
            s = score(rows)
            cells = [f"{s[k][0]:.3f} [{s[k][1]:.3f}, {s[k][2]:.3f}]" for k in ("precision", "recall")]
            print(f"| {mode} | {lang} | {s['names']} | {s['predicted']} | {cells[0]} | {cells[1]} |")
        false_names = sum(len(predict(row["text"], mode)) for row in older)
        seconds = time.perf_counter() - started
        print(
            f"|   {mode}: {false_names} PERSON spans on the {len(older)} lines of labelled.jsonl (no names); "
            f"{seconds:.1f} s |||||"
        )


if __name__ == "__main__":
    main()
