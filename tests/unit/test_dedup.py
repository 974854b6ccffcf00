"""Exact and near-duplicate detection: normalisation, planted near copies, cross-split leaks,
signatures identical to datasketch's, determinism."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash

from tailorlm.prepare import dedup
from tailorlm.prepare.dedup import (
    Leak,
    cross_split_leaks,
    drop_duplicates,
    exact_duplicates,
    near_duplicate_groups,
    normalise_for_hash,
    shingle_hashes,
)

WORDS = [
    "invoice", "order", "delivery", "customer", "refund", "account", "password", "reset", "printer",
    "network", "office", "manager", "contract", "payment", "warehouse", "shipment", "schedule", "holiday",
    "report", "update", "request", "error", "screen", "laptop", "battery", "monitor", "cable", "license",
    "server", "backup", "mailbox", "calendar", "meeting", "budget", "quarter", "supplier",
]  # fmt: skip


def _document(rng: random.Random, words: int = 80) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randint(0, 99)) for _ in range(words)).capitalize() + "."


def _edit(rng: random.Random, text: str, edits: int) -> str:
    words = text.split()
    for position in rng.sample(range(len(words)), edits):
        words[position] = "changed" + str(rng.randint(0, 999))
    return " ".join(words)


@pytest.fixture
def corpus() -> tuple[list[str], list[tuple[int, int]]]:
    """200 unrelated documents plus 10 copies with 1-3 words edited; returns texts and planted pairs."""
    rng = random.Random(7)
    texts = [_document(rng) for _ in range(200)]
    planted = []
    for source in rng.sample(range(200), 10):
        planted.append((source, len(texts)))
        texts.append(_edit(rng, texts[source], rng.randint(1, 3)))
    return texts, planted


def test_normalise_for_hash() -> None:
    assert normalise_for_hash("  Hello,\tWORLD!\n\n Ça  va? ") == "hello world ça va"
    assert normalise_for_hash("ＡＢＣ «quoted» — dash") == "abc quoted dash"  # NFKC, Unicode punctuation
    assert normalise_for_hash("price: $5 + 3 = 8") == "price $5 + 3 = 8"  # symbols are not punctuation
    assert normalise_for_hash("") == ""


def test_exact_duplicates_groups() -> None:
    texts = ["Hello world.", "other", "HELLO,   world", "x", "hello world!", "other", ""]
    assert exact_duplicates(texts) == [[0, 2, 4], [1, 5]]
    assert exact_duplicates([]) == []


def test_shingle_hashes_match_reference_and_datasketch() -> None:
    def reference(text: str, k: int = 5) -> list[int]:
        out = []
        for start in range(max(len(text) - k + 1, 1)):
            value = 0
            for char in text[start : start + k]:
                value = (value * 0x100000001B3 + ord(char)) % 2**64
            out.append((value ^ (value >> 32)) % 2**32)
        return out

    for text in ["hello world", "ça déjà vu 東京", "abc", "x" * 12]:
        assert shingle_hashes(text).tolist() == reference(text)
    assert len(shingle_hashes("")) == 0

    texts = ["the first text to sign", "a second, different one", "ab"]
    rows, signatures = dedup._all_signatures(texts, num_perm=64, shingle=5, seed=3)
    assert rows.tolist() == [0, 1, 2]
    for row, text in enumerate(texts):
        expected = MinHash(num_perm=64, seed=3, hashfunc=int)
        expected.update_batch(shingle_hashes(normalise_for_hash(text)).tolist())
        np.testing.assert_array_equal(signatures[row], expected.hashvalues)


def test_near_duplicates_find_planted_edits(corpus: tuple[list[str], list[tuple[int, int]]]) -> None:
    texts, planted = corpus
    groups = near_duplicate_groups(texts)
    assert sorted(map(tuple, groups)) == sorted(planted)


def test_near_duplicates_respect_threshold() -> None:
    rng = random.Random(3)
    base = _document(rng)
    heavy = _edit(rng, base, 30)  # a third of the words changed: related, not a duplicate
    assert near_duplicate_groups([base, heavy]) == []
    assert near_duplicate_groups([base, heavy], threshold=0.3) == [[0, 1]]
    with pytest.raises(ValueError, match="near_threshold"):
        near_duplicate_groups([base], threshold=0)


def test_near_duplicates_skip_empty_and_handle_short_texts() -> None:
    texts = ["", "ok", "", "OK!", "a much longer text that has nothing to do with the others"]
    assert near_duplicate_groups(texts) == [[1, 3]]


def test_groups_are_connected_components() -> None:
    rng = random.Random(11)
    a = _document(rng, 120)
    b = _edit(rng, a, 2)
    c = _edit(rng, b, 2)
    d = _document(rng, 120)
    assert near_duplicate_groups([d, c, a, b]) == [[1, 2, 3]]


def test_cross_split_leaks() -> None:
    rng = random.Random(5)
    train = [_document(rng) for _ in range(30)]
    test = [_document(rng) for _ in range(10)]
    test[4] = _edit(rng, train[12], 1)  # near copy
    test[7] = train[3].upper()  # exact after normalisation
    train.append(train[0])  # duplicate inside one split: not a leak
    leaks = cross_split_leaks({"train": train, "val": [], "test": test})
    assert [(x.split_a, x.index_a, x.split_b, x.index_b) for x in leaks] == [
        ("train", 3, "test", 7),
        ("train", 12, "test", 4),
    ]
    assert leaks[0].similarity == 1.0
    assert 0.85 <= leaks[1].similarity < 1.0
    assert isinstance(leaks[0], Leak)
    # Split order decides which side is "a".
    flipped = cross_split_leaks({"test": test, "train": train})
    assert [(x.split_a, x.index_a, x.split_b, x.index_b) for x in flipped] == [
        ("test", 4, "train", 12),
        ("test", 7, "train", 3),
    ]


def test_drop_duplicates_keeps_first_and_counts(corpus: tuple[list[str], list[tuple[int, int]]]) -> None:
    texts, planted = corpus
    texts = [*texts, texts[0].lower(), texts[planted[0][1]]]  # an exact copy of 0, of a near copy
    result = drop_duplicates(texts, threshold=0.85)
    assert result.dropped_exact == 2
    assert result.dropped_near == len(planted)
    assert len(result.keep) == len(texts) - 2 - len(planted)
    assert result.keep == sorted(result.keep)
    dropped = set(range(len(texts))) - set(result.keep)
    assert dropped == {copy for _, copy in planted} | {len(texts) - 2, len(texts) - 1}
    for group in result.groups:
        assert group == sorted(group) and group[0] in result.keep
        assert not set(group[1:]) & set(result.keep)
    assert [0, len(texts) - 2] in result.groups
    source, copy = planted[0]
    assert sorted([source, copy, len(texts) - 1]) in result.groups


def test_deterministic(corpus: tuple[list[str], list[tuple[int, int]]]) -> None:
    texts, _ = corpus
    first = drop_duplicates(texts, threshold=0.85)
    second = drop_duplicates(list(texts), threshold=0.85)
    assert first == second
    assert near_duplicate_groups(texts, seed=2) == near_duplicate_groups(texts, seed=2)


def test_a_single_text_and_batch_edges_do_not_crash():
    """np.cumsum of an empty list is float64; reduceat then refused it (seen with one text in a batch)."""
    from tailorlm.prepare.dedup import drop_duplicates

    assert drop_duplicates(["only one text here, long enough for shingles"], threshold=0.85).keep == [0]
    long_texts = ["a" * 23_000 + " tail one", "b" * 23_000 + " tail two"]
    assert sorted(drop_duplicates(long_texts, threshold=0.85).keep) == [0, 1]
