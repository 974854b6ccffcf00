"""Train/val/test splits that never put one source on two sides, and a check that nothing leaked.

Rules (`prepare.split`):

* **By source** (`by: source`): examples with the same `Example.source` (a document, an FAQ entry, a
  ticket, an e-mail thread) form one group and land in one split. `by: example` makes every example
  its own group.
* **Keyed on content, never on location**: a source label starts with its file as the user wrote it
  (`faq.csv#row 12`, or an absolute path for a file outside the project folder); the group key swaps
  that file for its sha256 (`<sha256>#row 12`), so one project prepared from two clone locations gets
  the same split.
* **Seeded hash, per group**: each group gets a number in [0, 1) from `sha256(seed, group)`: below
  `test` → test, below `test + val` → val, else train. It depends on nothing but the group, so the
  same seed gives the same split, and adding examples never moves existing groups.
* **Stratified by label** (classification): groups are taken per label (a group's label is its most
  common one) and, in the order of their hash numbers, fill test up to `test` x the label's examples,
  then val, then train; so each split's label mix matches the whole, rare labels included. The
  price: when data is added, a group at a quota's edge can change sides (the rest stay put).
* **Small datasets**: with three groups or more every split asked for gets at least one group,
  and train always keeps one; under `MIN_EXAMPLES` examples is an error. Such moves are deterministic
  but may be undone when data is added.

`contamination_report` then compares the inputs of train against val and test with MinHash
(`prepare.dedup.cross_split_leaks`) and reports near-identical pairs that slipped through.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tailorlm.config import SplitSettings
from tailorlm.dataset_splits import SPLITS
from tailorlm.errors import UserError
from tailorlm.formats.examples import Example

MIN_EXAMPLES = 3
SHOWN_PAIRS = 10


class SplitError(UserError, ValueError):
    """A dataset that can't be split as asked (too few examples)."""


def group_key(example: Example, by: str, files: Mapping[str, str] | None = None) -> str:
    """The unit that stays on one side: the example's source (its file named by content hash, see
    the module docstring), or the example itself."""
    if by != "source" or not example.source:
        return f"example:{example.id}"
    source = example.source
    for label in sorted(files or {}, key=len, reverse=True):
        if source == label or source.startswith(label + "#"):
            return f"{files[label]}{source[len(label) :]}"  # type: ignore[index]
    return source


def hash_unit(seed: int, key: str) -> float:
    """A stable number in [0, 1) for a group."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_examples(
    examples: Sequence[Example],
    settings: SplitSettings,
    *,
    stratify_by_label: bool,
    files: Mapping[str, str] | None = None,
) -> dict[str, list[Example]]:
    """Split examples into train/val/test by group (see the module docstring); order is kept in each split.

    `files` maps each source file's label (as it starts `Example.source`) to its sha256.

    Raises:
        SplitError: with fewer than `MIN_EXAMPLES` examples while val or test is asked for.
    """
    if len(examples) < MIN_EXAMPLES and (settings.test or settings.val):
        raise SplitError(
            f"only {len(examples)} example(s): at least {MIN_EXAMPLES} are needed to make train, val and "
            "test splits (add data, or set prepare.split.test and prepare.split.val to 0)"
        )
    members: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        members.setdefault(group_key(example, settings.by, files), []).append(index)
    unit = {key: hash_unit(settings.seed, key) for key in members}
    place = {key: _by_threshold(unit[key], settings) for key in members}
    shares = {"test": settings.test, "val": settings.val}

    if stratify_by_label:
        strata: dict[str, list[str]] = {}
        for key, indices in members.items():
            labels = Counter(examples[i].label or "" for i in indices)
            label = min(labels, key=lambda name: (-labels[name], name))
            strata.setdefault(label, []).append(key)
        for keys in strata.values():
            _allocate_by_rank(keys, members, unit, settings, place)
    everything = list(members)
    if len(everything) >= 3:
        for split, share in shares.items():
            if share:
                _fill(split, everything, place, unit)
    if "train" not in place.values():
        place[max(everything, key=lambda key: unit[key])] = "train"

    result: dict[str, list[Example]] = {split: [] for split in SPLITS}
    for key, indices in members.items():
        result[place[key]].extend(examples[i] for i in indices)
    order = {id(example): i for i, example in enumerate(examples)}
    for split in SPLITS:
        result[split].sort(key=lambda example: order[id(example)])
    return result


def _by_threshold(value: float, settings: SplitSettings) -> str:
    if value < settings.test:
        return "test"
    if value < settings.test + settings.val:
        return "val"
    return "train"


def _allocate_by_rank(
    keys: Sequence[str],
    members: Mapping[str, Sequence[int]],
    unit: Mapping[str, float],
    settings: SplitSettings,
    place: dict[str, str],
) -> None:
    """Fill test, then val, with the lowest-hash groups of one stratum up to their share of its examples."""
    total = sum(len(members[key]) for key in keys)
    quota = {"test": settings.test * total, "val": settings.val * total}
    taken = {"test": 0, "val": 0}
    for key in sorted(keys, key=lambda key: unit[key]):
        size = len(members[key])
        # A group joins a split while that brings the split nearer its quota (rounding, not flooring).
        chosen = next((s for s in ("test", "val") if taken[s] + size / 2 < quota[s]), "train")
        place[key] = chosen
        if chosen != "train":
            taken[chosen] += size


def _fill(split: str, keys: Sequence[str], place: dict[str, str], unit: dict[str, float]) -> None:
    """Move the lowest-hash train group of `keys` into `split` if it has none and train keeps one."""
    if any(place[key] == split for key in keys):
        return
    train = sorted((key for key in keys if place[key] == "train"), key=lambda key: unit[key])
    if len(train) >= 2:
        place[train[0]] = split


# --- leakage -------------------------------------------------------------------------------------


def strip_shared_prefix(texts: Sequence[str]) -> list[str]:
    """Texts without the instruction they share, so comparisons see what differs.

    Texts are grouped by their first line; in a group of two or more, the common prefix up to its last
    line break (a classification or extraction instruction) is removed. Without this, every ticket
    behind one long instruction would look like a near-duplicate of every other.
    """
    groups: dict[str, list[int]] = {}
    for index, text in enumerate(texts):
        first, newline, _ = text.partition("\n")
        if newline:
            groups.setdefault(first, []).append(index)
    result = list(texts)
    for indices in groups.values():
        if len(indices) < 2:
            continue
        prefix = _common_prefix([texts[i] for i in indices])
        cut = prefix.rfind("\n") + 1
        if cut:
            for i in indices:
                result[i] = texts[i][cut:]
    return result


def _common_prefix(texts: Sequence[str]) -> str:
    first, last = min(texts), max(texts)  # the sorted extremes share what all share
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]


def contamination_report(splits: Mapping[str, Sequence[Example]], threshold: float = 0.85) -> dict[str, Any]:
    """Near-identical inputs between train and val/test: counts per pair of splits and the first pairs."""
    from tailorlm.prepare.dedup import cross_split_leaks

    names = [name for name in SPLITS if name in splits]
    flat = [(name, example) for name in names for example in splits[name]]
    stripped = strip_shared_prefix([example.input_text for _, example in flat])
    texts: dict[str, list[str]] = {name: [] for name in names}
    for (name, _), text in zip(flat, stripped, strict=True):
        texts[name].append(text)
    leaks = [
        leak
        for leak in cross_split_leaks(texts, threshold=threshold)
        if leak.split_a != leak.split_b and "train" in (leak.split_a, leak.split_b)
    ]
    counts = {f"train-{other}": 0 for other in names if other != "train"}
    pairs: list[dict[str, Any]] = []
    for leak in sorted(leaks, key=lambda item: -item.similarity):
        if leak.split_a == "train":
            train_index, other, other_index = leak.index_a, leak.split_b, leak.index_b
        else:
            train_index, other, other_index = leak.index_b, leak.split_a, leak.index_a
        counts[f"train-{other}"] = counts.get(f"train-{other}", 0) + 1
        if len(pairs) < SHOWN_PAIRS:
            train_example, other_example = splits["train"][train_index], splits[other][other_index]
            pairs.append(
                {
                    "similarity": round(float(leak.similarity), 3),
                    "train": {
                        "id": train_example.id,
                        "source": train_example.source,
                        "input": train_example.input_text[:200],
                    },
                    other: {
                        "id": other_example.id,
                        "source": other_example.source,
                        "input": other_example.input_text[:200],
                    },
                }
            )
    return {
        "threshold": threshold,
        "compared": "input text (user turn or text), shared instruction removed",
        "counts": counts,
        "total": sum(counts.values()),
        "pairs": pairs,
    }
