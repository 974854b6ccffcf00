"""Finds exact and near-duplicate texts, within a dataset and across its splits.

Exact duplicates are texts equal after :func:`normalise_for_hash` (Unicode NFKC, case-folded,
punctuation removed, whitespace collapsed). Near duplicates are found with MinHash + LSH
(datasketch): each text becomes the set of its character 5-grams (after the same
normalisation), MinHash signatures estimate the Jaccard similarity of those sets, LSH proposes
candidate pairs, and a pair counts when its estimated similarity reaches the threshold. Groups
are the connected components of those pairs.

Why character shingles: the texts here are often short (an FAQ answer, an e-mail reply, ~80
words), and one edited word removes every shingle that overlaps it. With word 5-grams that is
five of ~76, so two edits already fall below 0.85; with character 5-grams it is a handful of
~470. Measured on benchmarks/dedup.py (80-word documents, copies with 1-3 words replaced), the
true Jaccard stays ≥ 0.85 for 99.8% of the copies with character 5-grams, 68% with word 3-grams
and 47% with word 5-grams; unrelated documents stay far below the threshold either way.

Signatures are computed in numpy, a batch of texts at a time, with datasketch's "affine32"
permutations — bit-for-bit what ``datasketch.MinHash.update_batch`` produces for the same
shingle hashes — rather than one Python-level ``update`` per shingle; 100k documents take well
under a minute.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import regex
from datasketch import LeanMinHash, MinHash, MinHashLSH

_SCHEME = "affine32"
# Shingles per signature batch: 32k shingles x 128 permutations x 4 bytes bounds the working
# matrix to 16 MB.
_BATCH_SHINGLES = 1 << 15
# LSH buckets up to this size are verified pair by pair; bigger ones against their first row.
_FULL_BUCKET = 64


# Unicode punctuation (general category P). ASCII text, the common case, takes the fast path of
# str.translate with the same characters; anything else goes through the regex.
_PUNCTUATION = regex.compile(r"\p{P}+")
_ASCII_PUNCTUATION = str.maketrans("", "", "".join(c for c in map(chr, range(128)) if _PUNCTUATION.fullmatch(c)))


def normalise_for_hash(text: str) -> str:
    """The form under which two texts count as the same: NFKC, case-folded, punctuation removed,
    runs of whitespace collapsed to one space, stripped."""
    if text.isascii():  # ASCII is already NFKC, and its case-folding is lower()
        text = text.lower().translate(_ASCII_PUNCTUATION)
    else:
        text = _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.split())


def exact_duplicates(texts: Sequence[str]) -> list[list[int]]:
    """Groups of indices whose texts are equal after :func:`normalise_for_hash`.

    Returns:
        Groups of size ≥ 2, each in ascending order, ordered by their first index.
    """
    by_hash: dict[bytes, list[int]] = {}
    for index, text in enumerate(texts):
        digest = hashlib.blake2b(normalise_for_hash(text).encode(), digest_size=16).digest()
        by_hash.setdefault(digest, []).append(index)
    return sorted((group for group in by_hash.values() if len(group) > 1), key=lambda g: g[0])


# --------------------------------------------------------------------------------------------
# MinHash signatures


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine permutations."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def shingle_hashes(text: str, shingle: int = 5) -> np.ndarray:
    """32-bit hashes of the character ``shingle``-grams of an already normalised text.

    A text shorter than one shingle is hashed whole; an empty text has no shingles.
    """
    return _batch_shingle_hashes([text], shingle)[0]


def _batch_shingle_hashes(texts: Sequence[str], shingle: int) -> list[np.ndarray]:
    """:func:`shingle_hashes` for many texts with a handful of numpy calls: the texts are hashed
    as one concatenated array, then each text keeps the windows that lie inside it."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codepoints = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    short = (lengths > 0) & (lengths < shingle)
    # Polynomial hash of every window of the concatenation, in wrapping uint64, folded to 32 bits.
    hashes: np.ndarray = np.zeros(max(len(codepoints) - shingle + 1, 0), dtype=np.uint64)
    for offset in range(shingle):
        hashes = hashes * np.uint64(0x100000001B3) + codepoints[offset : offset + len(hashes)]
    counts = np.where(lengths >= shingle, lengths - shingle + 1, 0)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    inside = np.repeat(starts, counts) + np.arange(bounds[-1]) - np.repeat(bounds[:-1], counts)
    folded = hashes[inside]
    folded = (folded ^ (folded >> np.uint64(32))).astype(np.uint32)
    out = [folded[bounds[i] : bounds[i + 1]] for i in range(len(texts))]
    for i in np.flatnonzero(short):  # shorter than one shingle: the whole text is the shingle
        whole: np.ndarray = np.zeros(1, dtype=np.uint64)
        for codepoint in codepoints[starts[i] : starts[i] + lengths[i]]:
            whole = whole * np.uint64(0x100000001B3) + codepoint
        out[i] = (whole ^ (whole >> np.uint64(32))).astype(np.uint32)
    return out


def _signatures(hash_lists: Sequence[np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (one uint32 row per non-empty hash list) under datasketch's "affine32"
    scheme: ``min(a * fmix32(h) + b)`` per permutation, in wrapping uint32 arithmetic."""
    hashes = _fmix32(np.concatenate(hash_lists))
    permuted = a[:, None] * hashes[None, :]  # permutations x shingles: the min runs along memory
    permuted += b[:, None]
    offsets = np.concatenate(([0], np.cumsum([len(h) for h in hash_lists[:-1]], dtype=np.int64)))  # int even if empty
    return np.minimum.reduceat(permuted, offsets, axis=1).T


def _all_signatures(texts: Sequence[str], num_perm: int, shingle: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Signatures of the texts that have shingles, and those texts' positions."""
    a, b = (p.astype(np.uint32) for p in MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME).permutations)
    rows, blocks = [], []
    batch: list[np.ndarray] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if batch:
            blocks.append(_signatures(batch, a, b))
        batch, size = [], 0

    for first in range(0, len(texts), 256):
        chunk = [normalise_for_hash(t) for t in texts[first : first + 256]]
        for offset, hashes in enumerate(_batch_shingle_hashes(chunk, shingle)):
            if not len(hashes):
                continue
            if size + len(hashes) > _BATCH_SHINGLES:
                flush()
            batch.append(hashes)
            size += len(hashes)
            rows.append(first + offset)
    flush()
    signatures = np.concatenate(blocks) if blocks else np.empty((0, num_perm), dtype=np.uint32)
    return np.asarray(rows, dtype=np.int64), signatures


@dataclass
class _Index:
    """Signatures of the texts that have shingles, and the LSH index over them."""

    rows: np.ndarray  # position in the input for each signature row
    signatures: np.ndarray
    lsh: MinHashLSH
    seed: int

    def minhash(self, row: int) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=self.signatures[row], scheme=_SCHEME)

    def similarity(self, row_a: int, row_b: int) -> float:
        return float(np.count_nonzero(self.signatures[row_a] == self.signatures[row_b])) / self.signatures.shape[1]

    def buckets(self) -> Iterator[list[int]]:
        """Rows that share an LSH band, one list per band bucket with at least two rows."""
        for table in self.lsh.hashtables:
            for key in table.keys():  # noqa: SIM118 (a datasketch storage, not a dict)
                rows = table.get(key)
                if len(rows) > 1:
                    yield sorted(rows)


def _build_index(texts: Sequence[str], threshold: float, num_perm: int, shingle: int, seed: int) -> _Index:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"prepare.dedup.near_threshold must be in (0, 1] (got {threshold})")
    rows, signatures = _all_signatures(texts, num_perm, shingle, seed)
    # datasketch's default weighting makes a pair at exactly the threshold a candidate only ~46% of
    # the time (b=8, r=16 at 0.85); weighting false negatives 9:1 gives b=11, r=11: ~87% at the
    # threshold, ~98% at 0.9, and still almost nothing below 0.5. Candidates are verified anyway.
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    index = _Index(rows, signatures, lsh, seed)
    with index.lsh.insertion_session() as session:
        for row in range(len(rows)):
            session.insert(row, index.minhash(row), check_duplication=False)
    return index


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def groups(self) -> list[list[int]]:
        members: dict[int, list[int]] = {}
        for item in range(len(self.parent)):
            members.setdefault(self.find(item), []).append(item)
        return sorted((g for g in members.values() if len(g) > 1), key=lambda g: g[0])


def near_duplicate_groups(
    texts: Sequence[str], *, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5, seed: int = 1
) -> list[list[int]]:
    """Groups of indices whose texts are near duplicates (exact duplicates included).

    Args:
        texts: The texts.
        threshold: Minimum estimated Jaccard similarity of the texts' character-shingle sets for
            two texts to be linked; groups are connected components of those links.
        num_perm: MinHash permutations (more: a finer similarity estimate, slower).
        shingle: Characters per shingle.
        seed: Seed of the MinHash permutations; the result is deterministic for a given seed.

    Returns:
        Groups of size ≥ 2, each in ascending order, ordered by their first index. Empty texts
        (nothing left after normalisation) are never grouped here; :func:`exact_duplicates` does.
    """
    index = _build_index(texts, threshold, num_perm, shingle, seed)
    components = _UnionFind(len(index.rows))
    for rows in index.buckets():
        # A bucket of many copies would cost a comparison per pair; beyond a few dozen rows each
        # one is compared with the first only (the other bands still link the rest).
        firsts = rows if len(rows) <= _FULL_BUCKET else rows[:1]
        for position, row_a in enumerate(firsts):
            for row_b in rows[position + 1 :]:
                if components.find(row_a) != components.find(row_b) and index.similarity(row_a, row_b) >= threshold:
                    components.union(row_a, row_b)
    return [[int(index.rows[row]) for row in group] for group in components.groups()]


@dataclass(frozen=True)
class Leak:
    """A text in one split that near-duplicates a text in another (``split_a`` comes first)."""

    split_a: str
    index_a: int
    split_b: str
    index_b: int
    similarity: float


def cross_split_leaks(
    splits: Mapping[str, Sequence[str]],
    *,
    threshold: float = 0.85,
    num_perm: int = 128,
    shingle: int = 5,
    seed: int = 1,
) -> list[Leak]:
    """Near-duplicate pairs whose members sit in different splits (train/val/test contamination).

    Returns:
        One Leak per pair, ``split_a`` being the earlier split in ``splits``' order, sorted by
        (split_a, index_a, split_b, index_b) in that order.
    """
    names = list(splits)
    owners: list[tuple[int, int]] = [(n, i) for n, name in enumerate(names) for i in range(len(splits[name]))]
    texts = [text for name in names for text in splits[name]]
    index = _build_index(texts, threshold, num_perm, shingle, seed)
    seen: set[tuple[int, int]] = set()
    leaks = []
    for rows in index.buckets():
        for position, row_a in enumerate(rows):
            for row_b in rows[position + 1 :]:
                if (row_a, row_b) in seen:
                    continue
                seen.add((row_a, row_b))
                (split_a, index_a), (split_b, index_b) = owners[index.rows[row_a]], owners[index.rows[row_b]]
                if split_a == split_b:
                    continue
                similarity = index.similarity(row_a, row_b)
                if similarity >= threshold:
                    if split_a > split_b:
                        split_a, index_a, split_b, index_b = split_b, index_b, split_a, index_a
                    leaks.append((split_a, index_a, split_b, index_b, similarity))
    return [Leak(names[sa], ia, names[sb], ib, sim) for sa, ia, sb, ib, sim in sorted(leaks)]


@dataclass
class DedupResult:
    """What :func:`drop_duplicates` kept and why the rest went.

    Attributes:
        keep: Indices kept, ascending: the first text of every group and every unique text.
        dropped_exact: Texts dropped as exact duplicates (after normalisation) of a kept one.
        dropped_near: Texts dropped as near duplicates.
        groups: Every duplicate group (exact and near merged), ascending indices, the kept
            text first; ordered by that first index.
    """

    keep: list[int]
    dropped_exact: int
    dropped_near: int
    groups: list[list[int]] = field(default_factory=list)


def drop_duplicates(
    texts: Sequence[str], *, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5, seed: int = 1
) -> DedupResult:
    """Keep the first text of each exact or near-duplicate group; deterministic.

    Exact duplicates are removed first; near duplicates are then searched among what is left, so
    each dropped text is counted once, under the first reason that applies.
    """
    exact = exact_duplicates(texts)
    members = {group[0]: group for group in exact}
    dropped = {index for group in exact for index in group[1:]}
    survivors = [index for index in range(len(texts)) if index not in dropped]
    near = near_duplicate_groups(
        [texts[i] for i in survivors], threshold=threshold, num_perm=num_perm, shingle=shingle, seed=seed
    )
    groups: list[list[int]] = []
    dropped_near = 0
    for group in near:
        originals = [survivors[i] for i in group]
        dropped_near += len(originals) - 1
        dropped.update(originals[1:])
        groups.append(sorted(i for first in originals for i in members.pop(first, [first])))
    groups.extend(members.values())
    groups.sort(key=lambda g: g[0])
    keep = [index for index in range(len(texts)) if index not in dropped]
    return DedupResult(keep, len(dropped) - dropped_near, dropped_near, groups)
