"""Dataset access shared by the stages and the CLI: the splits a prepared dataset has, and its examples
read back by reference (a registered dataset) or from a JSONL file in any supported format.

    train = load_split(workspace, workspace.resolve("dataset", "acme-support@v2"), "train")
    examples = load_examples(workspace, "acme-support@v2", "test")   # or a path to a .jsonl file
"""

from __future__ import annotations

from pathlib import Path

from tailorlm.formats.examples import Example
from tailorlm.formats.importers import read_examples
from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace, read_jsonl

SPLITS = ("train", "val", "test")


def load_split(workspace: Workspace, dataset: Artifact, split: str) -> list[Example]:
    """The examples of one split (`train`, `val` or `test`) of a dataset artifact."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    path = workspace.path_of(dataset) / f"{split}.jsonl"
    return [Example.model_validate(row) for row in read_jsonl(path)]


def load_examples(workspace: Workspace, reference: str, split: str = "train") -> list[Example]:
    """Examples of a registered dataset's split, or of a JSONL file in any supported format."""
    path = Path(reference)
    if path.suffix == ".jsonl" and path.is_file():
        return read_examples(path).examples
    return load_split(workspace, workspace.resolve("dataset", reference), split)
