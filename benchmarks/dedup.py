"""Benchmark: near-duplicate detection on synthetic documents with planted duplicates.

Builds N documents (~80 words each), then plants copies: 2% of the documents get a copy with
1-3 words replaced, 0.5% an exact copy that differs only in case and punctuation. Runs, in the
same process, exact-hash dedup (the baseline) and MinHash-LSH near-dup detection, and prints
wall time, recall of the planted pairs and pair precision for both; then, on a sample, how long
datasketch's MinHash.bulk takes to sign the documents against the numpy path used here.

    .venv/bin/python benchmarks/dedup.py            # 100k documents
    .venv/bin/python benchmarks/dedup.py --docs 20000
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

from datasketch import MinHash

from tailorlm.prepare import dedup
from tailorlm.prepare.dedup import exact_duplicates, near_duplicate_groups

_SYLLABLES = [
    "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "di", "pa", "ri", "zu", "mo", "be", "la", "fi", "go", "hu",
]  # fmt: skip


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def corpus(docs: int, seed: int) -> tuple[list[str], list[tuple[int, int]]]:
    """Documents and the planted (original, copy) pairs."""
    rng = random.Random(seed)
    vocab = vocabulary(20_000, rng)
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocab))))  # Zipf-like
    n_near, n_exact = int(docs * 0.02), int(docs * 0.005)
    n_original = docs - n_near - n_exact
    texts = []
    for _ in range(n_original):
        words = rng.choices(vocab, cum_weights=cumulative, k=rng.randint(70, 90))
        texts.append(" ".join(words).capitalize() + ".")
    planted = []
    for _ in range(n_near):
        source = rng.randrange(n_original)
        words = texts[source].split()
        for position in rng.sample(range(len(words)), rng.randint(1, 3)):
            words[position] = rng.choice(vocab)
        planted.append((source, len(texts)))
        texts.append(" ".join(words))
    for _ in range(n_exact):
        source = rng.randrange(n_original)
        planted.append((source, len(texts)))
        texts.append(texts[source].upper().replace(".", "!"))
    return texts, planted


def score(groups: list[list[int]], planted: list[tuple[int, int]]) -> tuple[float, float, int]:
    """Recall of planted pairs; precision of predicted pairs (same planted family = correct)."""
    family = {}
    for source, copy in planted:
        family.setdefault(source, source)
        family[copy] = family[source]
    group_of = {index: g for g, group in enumerate(groups) for index in group}
    found = sum(1 for a, b in planted if a in group_of and group_of[a] == group_of.get(b))
    pairs = correct = 0
    for group in groups:
        for a, b in itertools.combinations(group, 2):
            pairs += 1
            correct += a in family and family.get(a) == family.get(b)
    return found / len(planted), (correct / pairs if pairs else 1.0), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=0.85)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=2000, help="documents for the signature comparison")
    args = parser.parse_args()

    texts, planted = corpus(args.docs, args.seed)
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(f"{len(texts)} documents, {words:.0f} words on average, {len(planted)} planted pairs")

    start = time.perf_counter()
    exact = exact_duplicates(texts)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    near = near_duplicate_groups(texts, threshold=args.threshold)
    near_s = time.perf_counter() - start

    print(f"\n{'method':<26}{'time s':>9}{'recall':>9}{'precision':>11}{'pairs':>8}")
    for name, groups, seconds in (("exact hash (baseline)", exact, exact_s), ("MinHash LSH", near, near_s)):
        recall, precision, pairs = score(groups, planted)
        print(f"{name:<26}{seconds:>9.2f}{recall:>9.3f}{precision:>11.3f}{pairs:>8}")
    print(f"\ntime ratio MinHash / exact: {near_s / exact_s:.1f}x")

    # How the signatures are computed, on a sample: datasketch's own MinHash.bulk (one SHA-1 per
    # shingle, from Python) against the numpy path near_duplicate_groups uses.
    sample = texts[: args.sample]
    start = time.perf_counter()
    shingles = []
    for text in sample:
        norm = dedup.normalise_for_hash(text)
        shingles.append([norm[i : i + 5].encode() for i in range(max(len(norm) - 4, 1))])
    MinHash.bulk(shingles, num_perm=128, seed=1)
    bulk_s = time.perf_counter() - start
    start = time.perf_counter()
    dedup._all_signatures(sample, num_perm=128, shingle=5, seed=1)
    numpy_s = time.perf_counter() - start
    print(
        f"signatures for {len(sample)} documents: MinHash.bulk {bulk_s:.2f} s, numpy {numpy_s:.2f} s "
        f"({bulk_s / numpy_s:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
