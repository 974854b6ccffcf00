"""The split depends on the sources' content, never on where they lie: one project prepared from two
absolute locations (two clones, or a workspace copy outside the project folder) gets identical splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tailorlm.config import load_project
from tailorlm.ingest import ingest
from tailorlm.prepare import prepare
from tailorlm.workspace import Workspace, read_jsonl

ACME = Path(__file__).resolve().parents[2] / "examples" / "acme"


def _prepare_from(root: Path, workspace_dir: Path) -> dict[str, list[str]]:
    data_dir = root / "company"
    shutil.copytree(ACME, data_dir, ignore=shutil.ignore_patterns("docs", "tickets.*"))
    # The project file lives apart from the data, so the sources are named by absolute path — the case
    # where the split used to follow the path.
    project_file = workspace_dir / "tailorlm.yaml"
    workspace_dir.mkdir(parents=True)
    project_file.write_text(
        yaml.safe_dump(
            {
                "project": "acme",
                "base_model": str(root / "no-model"),
                "sources": [
                    {"path": str(data_dir / "faq.csv"), "kind": "faq"},
                    {"path": str(data_dir / "support.mbox"), "kind": "email"},
                ],
                "prepare": {"pii": "off", "split": {"test": 0.15, "val": 0.05, "by": "source"}},
            }
        )
    )
    ws = Workspace(workspace_dir)
    result = prepare(ws, load_project(project_file), ingest=ingest)
    return {
        split: [row["id"] for row in read_jsonl(result.path / f"{split}.jsonl")] for split in ("train", "val", "test")
    }


def test_same_project_from_two_locations_gets_identical_splits(tmp_path: Path) -> None:
    first = _prepare_from(tmp_path / "clone-a" / "deep", tmp_path / "ws-a")
    second = _prepare_from(tmp_path / "elsewhere" / "clone-b", tmp_path / "ws-b")
    assert first["test"] and first["val"] and first["train"]
    assert first == second
