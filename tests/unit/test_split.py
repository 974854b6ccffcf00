"""Splits keep each source on one side, are deterministic and stable, stratify labels and survive
tiny datasets; the contamination report finds near-identical inputs across splits."""

from __future__ import annotations

from collections import Counter

import pytest

from tailorlm.config import SplitSettings
from tailorlm.formats.examples import Example
from tailorlm.prepare.split import SPLITS, SplitError, contamination_report, split_examples, strip_shared_prefix


def examples_for(
    sources: int, per_source: int = 2, *, start: int = 0, labels: list[str] | None = None
) -> list[Example]:
    made = []
    for s in range(start, start + sources):
        label = labels[s % len(labels)] if labels else None
        for i in range(per_source):
            made.append(
                Example.chat(
                    user=f"question {i} about document {s}",
                    assistant=f"answer {i} / {s}",
                    source=f"doc-{s}",
                    label=label,
                )
            )
    return made


def placement(splits: dict[str, list[Example]]) -> dict[str, str]:
    return {example.id: name for name, items in splits.items() for example in items}


def test_no_source_on_two_sides_and_shares_roughly_right():
    examples = examples_for(400, per_source=3)
    splits = split_examples(examples, SplitSettings(test=0.1, val=0.05), stratify_by_label=False)
    assert sum(len(v) for v in splits.values()) == len(examples)
    sides: dict[str, set[str]] = {}
    for name, items in splits.items():
        for example in items:
            sides.setdefault(example.source, set()).add(name)
    assert all(len(names) == 1 for names in sides.values())
    assert 0.05 < len(splits["test"]) / len(examples) < 0.15
    assert 0.02 < len(splits["val"]) / len(examples) < 0.09


def test_same_seed_same_split_other_seed_other_split():
    examples = examples_for(100)
    first = split_examples(examples, SplitSettings(seed=7), stratify_by_label=False)
    again = split_examples(list(reversed(examples)), SplitSettings(seed=7), stratify_by_label=False)
    assert placement(first) == placement(again)
    other = split_examples(examples, SplitSettings(seed=8), stratify_by_label=False)
    assert placement(first) != placement(other)


def test_adding_examples_does_not_move_existing_groups():
    settings = SplitSettings(test=0.2, val=0.1)
    before = placement(split_examples(examples_for(200), settings, stratify_by_label=False))
    after = placement(
        split_examples(examples_for(200) + examples_for(50, start=200), settings, stratify_by_label=False)
    )
    assert all(after[example_id] == side for example_id, side in before.items())


def test_by_example_spreads_one_source():
    examples = examples_for(1, per_source=60)
    splits = split_examples(examples, SplitSettings(test=0.2, val=0.1, by="example"), stratify_by_label=False)
    assert all(splits[name] for name in SPLITS)
    by_source = split_examples(examples, SplitSettings(test=0.2, val=0.1), stratify_by_label=False)
    assert len(by_source["train"]) == 60  # one source: all on one side, and train is never empty


def test_stratified_every_label_everywhere_and_proportions_close():
    labels = ["billing"] * 6 + ["shipping"] * 3 + ["technical"]  # 60% / 30% / 10% of the sources
    examples = examples_for(300, per_source=1, labels=labels)
    splits = split_examples(examples, SplitSettings(test=0.1, val=0.05), stratify_by_label=True)
    whole = Counter(e.label for e in examples)
    for name in SPLITS:
        counts = Counter(e.label for e in splits[name])
        assert set(counts) == set(whole), name
        for label, n in whole.items():
            assert abs(counts[label] / len(splits[name]) - n / len(examples)) < 0.15, (name, label)


def test_rare_label_gets_a_test_example():
    # 40 billing sources and 10 refund sources: refund expects one test source at test=0.1.
    examples = examples_for(40, per_source=1, labels=["billing"]) + [
        Example.chat(user=f"refund please {i}", assistant="refund", source=f"r-{i}", label="refund") for i in range(10)
    ]
    for seed in range(20):
        splits = split_examples(examples, SplitSettings(test=0.1, val=0.0, seed=seed), stratify_by_label=True)
        assert any(e.label == "refund" for e in splits["test"]), seed
        assert any(e.label == "refund" for e in splits["train"]), seed


def test_tiny_datasets():
    three = examples_for(3, per_source=1)
    splits = split_examples(three, SplitSettings(test=0.1, val=0.05), stratify_by_label=False)
    assert [len(splits[name]) for name in SPLITS] == [1, 1, 1]
    with pytest.raises(SplitError, match="only 2 example"):
        split_examples(three[:2], SplitSettings(), stratify_by_label=False)
    only_train = split_examples(three[:1], SplitSettings(test=0, val=0), stratify_by_label=False)
    assert len(only_train["train"]) == 1


def test_shared_instruction_prefix_is_ignored():
    texts = [
        "Classify this into: a, b.\n\nmy card was charged twice",
        "Classify this into: a, b.\n\nparcel never arrived",
        "A question with no instruction",
    ]
    assert strip_shared_prefix(texts) == ["my card was charged twice", "parcel never arrived", texts[2]]


def test_contamination_report_finds_near_copies():
    shared = "my thermostat shows error e4 after the firmware update and the heating does not start at all"
    train = [
        Example.chat(user=shared, assistant="Reset it.", source="a"),
        Example.chat(
            user="how do I change my billing address on the account page", assistant="Go to billing.", source="b"
        ),
    ]
    test = [
        Example.chat(user=shared + " today", assistant="Reset it now.", source="c"),
        Example.chat(user="where is my parcel, it was shipped a week ago", assistant="Tracking.", source="d"),
    ]
    report = contamination_report({"train": train, "val": [], "test": test}, threshold=0.7)
    assert report["counts"] == {"train-val": 0, "train-test": 1} and report["total"] == 1
    (pair,) = report["pairs"]
    assert pair["train"]["source"] == "a" and pair["test"]["source"] == "c" and pair["similarity"] >= 0.7
