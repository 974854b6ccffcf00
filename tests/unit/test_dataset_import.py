"""Importing an existing JSONL dataset (any supported format) and training on it: bad lines refuse the
file with file:line named, unless skipped on purpose (then counted in the card)."""

from __future__ import annotations

import json

import pytest

from tailorlm.dataset_import import import_dataset
from tailorlm.dataset_splits import load_examples
from tailorlm.prepare import PrepareError
from tailorlm.registry import DatasetMeta


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def rows(n):
    return [
        {"instruction": f"Where is order ACM-{100000 + i}?", "output": f"Order ACM-{100000 + i} ships on day {i}."}
        for i in range(n)
    ]


def test_import_then_train(tiny_project, workspace, tmp_path):
    from tailorlm.train import train

    path = write(tmp_path / "alpaca.jsonl", rows(30))
    dataset = import_dataset(workspace, path, project=tiny_project)
    assert sum(dataset.meta_as(DatasetMeta).counts.values()) == 30
    assert load_examples(workspace, dataset.id, "train")[0].messages[-1].role == "assistant"
    tiny_project.train.max_steps = 2
    result = train(workspace, tiny_project, dataset=dataset.id)
    assert result.run.status == "complete"


def test_bad_line_refuses_the_file_and_names_it(tiny_project, workspace, tmp_path):
    path = write(tmp_path / "mixed.jsonl", [*rows(10), "{broken", {"foo": "bar"}])
    with pytest.raises(PrepareError) as error:
        import_dataset(workspace, path, project=tiny_project)
    assert f"{path}:11" in str(error.value) and f"{path}:12" in str(error.value)
    assert not workspace.registry.find("dataset")


def test_skip_invalid_counts_what_was_skipped(tiny_project, workspace, tmp_path):
    path = write(tmp_path / "mixed.jsonl", [*rows(10), "{broken"])
    dataset = import_dataset(workspace, path, project=tiny_project, skip_invalid=True)
    assert dataset.meta_as(DatasetMeta).skipped["dataset: invalid line"] == 1
    assert sum(dataset.meta_as(DatasetMeta).counts.values()) == 10
    card = (workspace.path_of(dataset) / "card.md").read_text()
    assert "invalid line" in card
