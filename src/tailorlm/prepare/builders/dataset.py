"""The `dataset` builder: a JSONL file (or a folder of them) already in an example format — OpenAI
messages, alpaca, sharegpt, prompt/completion or plain text — imported with `read_examples`.

This is the one builder that reads a file itself: its input is already examples, not documents, so
the ingest readers (which turn files into prose and table rows) have nothing to add, and
`read_examples` names every bad line by file and line number (with `source.skip_invalid`, bad lines
are skipped and counted instead). The stage hashes the file for the dataset's key and card, and
still cleans and redacts the imported text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tailorlm.config import TASKS, Project, Source
from tailorlm.documents import Document
from tailorlm.formats.importers import DatasetError, read_examples
from tailorlm.prepare.builders import BuilderError, BuilderOutput, Skipped, builder


def dataset_files(source: Source, project: Project) -> list[Path]:
    """The JSONL files of a `dataset` source: the file, or every *.jsonl under the folder (sorted)."""
    path = project.resolve(source.path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        if not files:
            raise BuilderError(f"{source.path}: no .jsonl files in this folder")
        return files
    if not path.is_file():
        raise BuilderError(f"{source.path}: file not found ({path})")
    return [path]


@builder("dataset", tasks=TASKS, files=dataset_files)
def dataset(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    """JSONL already in messages/alpaca/sharegpt/prompt-completion/text format → those examples.

    `documents` is unused: the builder reads the source's files itself (see the module docstring).
    """
    for path in dataset_files(source, project):
        try:
            result = read_examples(path, skip_invalid=source.skip_invalid)
        except DatasetError as error:
            raise BuilderError(str(error)) from None
        for problem in result.errors:  # only with source.skip_invalid; otherwise read_examples raised
            yield Skipped("invalid line", problem)
        for number, example in enumerate(result.examples, start=1):
            if not example.source:
                example.source = f"{_label(path, project)}#{number}"
            example.meta.setdefault("file", _label(path, project))
            yield example


def _label(path: Path, project: Project) -> str:
    try:
        return path.relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
