"""Project file, workspace layout, registry migrations, audit chain and the offline guard."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from tailorlm import offline
from tailorlm.config import ConfigError, Project, load_project, parse_project, reference_markdown
from tailorlm.project_template import project_template
from tailorlm.registry import Artifact, DatasetMeta, DocumentMeta, RunMeta
from tailorlm.workspace import Workspace, atomic_write_text

ROOT = Path(__file__).resolve().parents[2]


def all_fields(model, seen=None):
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        yield model, name, info
        for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                yield from all_fields(candidate)


def test_every_setting_is_documented():
    undocumented = [f"{m.__name__}.{n}" for m, n, info in all_fields(Project) if not info.description]
    assert not undocumented


def test_reference_doc_is_current():
    assert (ROOT / "docs" / "project-file.md").read_text() == reference_markdown() + "\n", (
        "docs/project-file.md is stale: python -m tailorlm.config > docs/project-file.md"
    )


@pytest.mark.parametrize("name", ["tailorlm.yaml", "tickets.yaml"])
def test_shipped_project_files_load(name):
    project = load_project(ROOT / "examples" / "acme" / name)
    for source in project.sources:
        assert project.resolve(source.path).exists(), source.path


def test_init_template_loads(tmp_path):
    path = tmp_path / "tailorlm.yaml"
    path.write_text(project_template("demo", "/models/x"))
    project = load_project(path)
    assert project.project == "demo" and project.train.method == "lora"


def test_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "tailorlm.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "project": "p",
                "base_model": "m",
                "train": {"lora": {"r": 0}},
                "prepare": {"split": {"test": 0.6, "val": 0.5}},
            }
        )
    )
    with pytest.raises(ConfigError) as error:
        load_project(path)
    assert str(path) in str(error.value)
    assert "train.lora.r: Input should be greater than 0 (got 0)" in str(error.value)
    assert "prepare.split" in str(error.value)
    path.write_text("project: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project(path)


def test_relative_paths_resolve_against_the_project_folder(tmp_path):
    project = parse_project({"project": "p", "base_model": "models/base"}, root=tmp_path)
    assert project.resolve(project.base_model) == (tmp_path / "models" / "base").resolve()


def test_registry_migrations_and_lineage(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert ws.registry.schema_version >= 1
    ws.registry.add(
        Artifact(id="doc-1", kind="document", name="a.md", hash="h1", path="documents/h1.jsonl", meta=DocumentMeta())
    )
    ws.registry.add(
        Artifact(
            id="dataset-x-v1",
            kind="dataset",
            name="x",
            version="v1",
            hash="h2",
            path="datasets/x/v1",
            meta=DatasetMeta(),
        ),
        parents=["doc-1"],
    )
    run_meta = RunMeta(method="lora", base_model="models/base", dataset="dataset-x-v1")
    ws.registry.add(
        Artifact(id="run-1", kind="run", name="x", hash="h3", path="runs/run-1", meta=run_meta),
        parents=["dataset-x-v1"],
    )
    assert [a.id for a in ws.registry.lineage("run-1")] == ["dataset-x-v1", "doc-1"]
    assert ws.resolve("dataset", "x@v1").id == "dataset-x-v1" and ws.next_version("dataset", "x") == "v2"
    ws.close()
    reopened = Workspace(tmp_path / "ws")  # migrations are not applied twice
    assert reopened.registry.get("run-1").name == "x"
    journal = reopened.registry.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_unknown_reference_lists_what_exists(workspace):
    from tailorlm.workspace import NotFound

    with pytest.raises(NotFound, match="no dataset matches nope; known: none yet"):
        workspace.resolve("dataset", "nope")


def test_staging_leaves_nothing_on_failure(workspace):
    final = workspace.dataset_dir("x", "v1")
    with pytest.raises(RuntimeError), workspace.staging(final) as staging:
        atomic_write_text(staging / "train.jsonl", "{}\n")
        raise RuntimeError("crash while writing")
    assert not final.exists() and not list(final.parent.iterdir())


def test_audit_chain_detects_tampering(workspace):
    workspace.audit.append("ingest", inputs=["a.md"], outputs=["doc-1"])
    workspace.audit.append("train.start", outputs=["run-1"])
    assert workspace.audit.verify()[0]
    lines = workspace.audit.path.read_text().splitlines()
    event = json.loads(lines[0])
    event["inputs"] = ["forged.md"]
    workspace.audit.path.write_text("\n".join([json.dumps(event), *lines[1:]]) + "\n")
    ok, message = workspace.audit.verify()
    assert not ok and "line 1" in message


def test_offline_guard_refuses_other_hosts_and_allows_loopback():
    """The decision alone for a far address (no packet is sent even if the guard broke); a real connect
    only on loopback. tests/unit/test_offline.py covers a real refused connect."""
    offline.enforce()
    assert not offline.decide("203.0.113.7", 80)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), timeout=2):
        pass
    server.close()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
