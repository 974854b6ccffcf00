"""Benchmark: PII detection quality per type on the labelled set, and redaction throughput.

Runs, in the same process, TailorLM's detector (presidio + validators) and a baseline: a plain
regex pass with typical patterns and no validation. Prints per-type precision / recall / F1 on
tests/assets/pii/labelled.jsonl (exact span match) for both, then throughput in MB/s on a few MB
of mixed multilingual text (ordinary prose with numbers, about one line in eight carrying PII).

    .venv/bin/python benchmarks/pii.py
    .venv/bin/python benchmarks/pii.py --mb 2
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

from tailorlm import pii

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "assets" / "pii" / "labelled.jsonl"

# What a quick regex-only scrubber typically uses.
BASELINE = {
    pii.EMAIL: r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    pii.PHONE: r"(?:\+|\b0)\d[\d ().-]{6,}\d|\(\d{3}\) ?\d{3}-\d{4}|\b\d{3}[.-]\d{3}[.-]\d{4}\b",
    pii.IBAN: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
    pii.CREDIT_CARD: r"\b(?:\d[ -]?){12,18}\d\b",
    pii.IP_ADDRESS: r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{1,4}\b",
    pii.URL_SECRET: r"\b\w+://[^\s:@/]+:[^\s@/]+@\S+|\bhttps?://\S*[?&#](?:token|api_key|key|access_token|sig)=\S+",
    pii.US_SSN: r"\b\d{3}-\d{2}-\d{4}\b",
    pii.UK_NINO: r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
    pii.DE_STEUER_ID: r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b",
    pii.FR_NIR: r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b",
    pii.IT_FISCAL_CODE: r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b",
    pii.ES_DNI: r"\b\d{8}-?[A-Z]\b",
    pii.ES_NIE: r"\b[XYZ]-?\d{7}-?[A-Z]\b",
}
_BASELINE_COMPILED = {kind: re.compile(pattern) for kind, pattern in BASELINE.items()}

PROSE = [
    "The quarterly report shows revenue of 4,560,000 USD, up 12.5% on 2023.",
    "Please restart the T5 unit if error E07 appears after the 2.3.1 update.",
    "Die Lieferung vom 12.03.2024 umfasst 1.500 Stück zu je 3,49 EUR.",
    "La réunion du 15/04/2024 est reportée à 14h30, salle 4.12.",
    "L'ordine 2024/00789 è stato spedito il 03/05/2024 con corriere espresso.",
    "El pedido 2024-00991 llegará entre el 10 y el 12 de marzo.",
    "De bestelling met nummer 2024-556677 wordt morgen geleverd.",
    "A encomenda n.º 2024-1122 foi enviada para o armazém de Lisboa.",
    "Order ACM-104233 was split into three parcels of 2.5 kg each.",
    "Customers on plan B pay 19.99 per month; plan C costs 49.00.",
    "Version 10.4.2 removes the legacy importer and adds a CSV export.",
    "Our support team answers within 24 hours on working days.",
]


def labelled() -> list[dict]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]


def baseline_find(text: str) -> set[tuple[str, int, int]]:
    return {(kind, m.start(), m.end()) for kind, rx in _BASELINE_COMPILED.items() for m in rx.finditer(text)}


def ours_find(text: str) -> set[tuple[str, int, int]]:
    return {(s.type, s.start, s.end) for s in pii.find_pii(text)}


def quality(rows: list[dict], find) -> dict[str, tuple[int, int, int]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for row in rows:
        gold = {(s["type"], s["start"], s["end"]) for s in row["spans"]}
        found = find(row["text"])
        for kind, *_ in found & gold:
            tp[kind] += 1
        for kind, *_ in found - gold:
            fp[kind] += 1
        for kind, *_ in gold - found:
            fn[kind] += 1
    return {kind: (tp[kind], fp[kind], fn[kind]) for kind in sorted(pii.PATTERN_TYPES)}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def mixed_text(rows: list[dict], megabytes: float, seed: int) -> str:
    """Prose with about one PII line in eight; PII lines get fresh digits so no value repeats."""
    rng = random.Random(seed)
    positives = [row["text"] for row in rows if row["spans"]]
    negatives = [row["text"] for row in rows if not row["spans"]] + PROSE
    lines, size = [], 0
    while size < megabytes * 1_000_000:
        if rng.random() < 0.125:
            line = re.sub(r"\d", lambda _: str(rng.randint(0, 9)), rng.choice(positives))
        else:
            line = rng.choice(negatives)
        lines.append(line)
        size += len(line.encode()) + 1
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="size of the throughput text")
    args = parser.parse_args()

    rows = labelled()
    pii.find_pii("warm-up: a@b.example")  # imports presidio and builds the analyzer once
    ours, base = quality(rows, ours_find), quality(rows, baseline_find)
    spans = sum(len(row["spans"]) for row in rows)
    print(f"Labelled set: {len(rows)} lines, {spans} spans, {sum(not r['spans'] for r in rows)} hard negatives\n")
    print("| type | n | P | R | F1 | baseline P | baseline R | baseline F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = {"ours": [0, 0, 0], "base": [0, 0, 0]}
    for kind in sorted(pii.PATTERN_TYPES):
        n = ours[kind][0] + ours[kind][2]
        p, r, f = prf(*ours[kind])
        bp, br, bf = prf(*base[kind])
        print(f"| {kind} | {n} | {p:.3f} | {r:.3f} | {f:.3f} | {bp:.3f} | {br:.3f} | {bf:.3f} |")
        for name, counts in (("ours", ours[kind]), ("base", base[kind])):
            totals[name] = [a + b for a, b in zip(totals[name], counts, strict=True)]
    p, r, f = prf(*totals["ours"])
    bp, br, bf = prf(*totals["base"])
    print(f"| **micro** | {spans} | {p:.3f} | {r:.3f} | {f:.3f} | {bp:.3f} | {br:.3f} | {bf:.3f} |")

    text = mixed_text(rows, args.mb, seed=0)
    megabytes = len(text.encode()) / 1e6
    start = time.perf_counter()
    found = pii.find_pii(text)
    find_s = time.perf_counter() - start
    start = time.perf_counter()
    redacted = pii.redact(text, "redact")
    redact_s = time.perf_counter() - start
    lines = text.split("\n")
    start = time.perf_counter()
    for line in lines:
        pii.find_pii(line)
    per_line_s = time.perf_counter() - start
    start = time.perf_counter()
    base_found = baseline_find(text)
    base_s = time.perf_counter() - start
    print(f"\nThroughput on {megabytes:.1f} MB of mixed text ({len(found)} spans found, baseline {len(base_found)}):")
    print(f"  find_pii            {megabytes / find_s:6.2f} MB/s")
    print(f"  redact              {megabytes / redact_s:6.2f} MB/s ({sum(redacted.counts.values())} replaced)")
    per_call_us = per_line_s / len(lines) * 1e6
    print(f"  find_pii per line   {megabytes / per_line_s:6.2f} MB/s ({len(lines)} calls, {per_call_us:.0f} µs each)")
    print(f"  regex-only baseline {megabytes / base_s:6.2f} MB/s")
    print(f"  ratio find_pii / baseline time: {find_s / base_s:.1f}x")


if __name__ == "__main__":
    main()
