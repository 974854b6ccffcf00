"""`tailorlm data import`: an existing JSONL file (messages, alpaca, sharegpt, prompt/completion, text)
becomes a dataset version — through the same `prepare` stage as company files, so it gets the same
PII pass, dedup, split, card and registry row. Reading datasets back is `tailorlm.dataset_splits`."""

from __future__ import annotations

from pathlib import Path

from tailorlm.config import Project, Source
from tailorlm.formats.importers import read_examples
from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace


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
