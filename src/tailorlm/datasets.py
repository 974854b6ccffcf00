"""Dataset helpers for the CLI and the stages: read a split by reference, and import an existing JSONL
file (messages, alpaca, sharegpt, prompt/completion, text) as a dataset version — through the same
`prepare` stage as company files, so it gets the same PII pass, dedup, split, card and registry row."""

from __future__ import annotations

from pathlib import Path

from tailorlm.config import Project, Source
from tailorlm.formats.examples import Example
from tailorlm.formats.importers import read_examples
from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace


def load_examples(workspace: Workspace, reference: str, split: str = "train") -> list[Example]:
    """Examples of a registered dataset's split, or of a JSONL file in any supported format."""
    from tailorlm.prepare import load_split

    path = Path(reference)
    if path.suffix == ".jsonl" and path.is_file():
        return read_examples(path).examples
    return load_split(workspace, workspace.resolve("dataset", reference), split)


def import_dataset(
    workspace: Workspace, path: Path, *, project: Project, name: str | None = None, skip_invalid: bool = False
) -> Artifact:
    """Import a JSONL file as a new version of dataset `name` (default: the project's dataset).

    The project's base model (token lengths), task and prepare settings apply; invalid lines refuse
    the file unless `skip_invalid` (then the skipped count is in the card and the artifact's meta).
    """
    from tailorlm.prepare import prepare

    path = Path(path).resolve()
    imported = project.model_copy(deep=True)
    imported.sources = [Source(path=path, kind="dataset", skip_invalid=skip_invalid)]
    imported.prepare.dataset = name or project.dataset_name
    if all(example.text is not None for example in read_examples(path, skip_invalid=True).examples):
        imported.task = "cpt"
    result = prepare(workspace, imported)
    return result.dataset
