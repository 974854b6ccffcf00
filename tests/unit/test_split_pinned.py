"""A source pinned to a split (`split: test`): all its examples land there and nowhere else, it is never
split further nor dropped as a duplicate, and another source's copy of one of its rows is dropped instead."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers.classify import tickets
from tailorlm.config import parse_project
from tailorlm.ingest import ingest
from tailorlm.prepare import prepare


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["body", "category"])
        writer.writerows(rows)


def test_a_pinned_test_source_is_the_test_split_and_wins_over_duplicates(workspace, tiny_model_dir, tmp_path):
    audited = tickets(12, seed=7)
    # Unique rows (the generator can repeat), and one audited row also in the training file.
    train_rows = list(dict.fromkeys(tickets(90, seed=3)))
    train_rows = [r for r in train_rows if r not in audited] + [audited[0]]
    write_csv(tmp_path / "tickets.csv", train_rows)
    write_csv(tmp_path / "audited.csv", list(dict.fromkeys(audited)))
    project = parse_project(
        {
            "project": "tickets",
            "base_model": str(tiny_model_dir),
            "task": "classify",
            "sources": [
                {"path": "tickets.csv", "kind": "table", "input": "body", "label": "category"},
                {"path": "audited.csv", "kind": "table", "input": "body", "label": "category", "split": "test"},
            ],
            "prepare": {"pii": "off", "dedup": {"near_threshold": None}, "split": {"test": 0.2, "val": 0.1}},
        },
        root=tmp_path,
    )
    result = prepare(workspace, project, ingest=ingest)
    folder = result.path
    splits = {
        name: [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]
        for name in ("train", "val", "test")
    }
    audited_inputs = {text for text, _ in audited}
    test_inputs = {e["meta"]["input"] for e in splits["test"]}
    assert audited_inputs <= test_inputs  # every pinned row is in test
    assert all(e["meta"]["split"] == "test" for e in splits["test"] if e["meta"]["input"] in audited_inputs)
    for name in ("train", "val"):  # and none of them (nor the training file's copy) anywhere else
        assert not audited_inputs & {e["meta"]["input"] for e in splits[name]}, name
    assert all("audited.csv" in e["source"] for e in splits["test"] if e["meta"]["input"] == audited[0][0])
    assert splits["val"] and splits["train"]  # the other source is still split as asked
    assert any("tickets.csv" in e["source"] for e in splits["test"])
