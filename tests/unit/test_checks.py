"""One project check: `problems(project)` finds every mistake at once, naming the field; `tailorlm validate`
prints them all and exits non-zero, and prepare and train refuse with the same messages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tailorlm.checks import problems
from tailorlm.config import Project, load_project
from tailorlm.prepare import PrepareError, prepare
from tailorlm.registry import Artifact
from tailorlm.train import TrainError, train

KIND = "sources[0].kind: 'email' is not a source for task 'classify' (allowed: dataset, documents, table)"
SYNTHESIZE = "prepare.synthesize: synthesis writes question/answer chat examples; it fits task 'chat' or 'generate'"


def three_errors(root: Path) -> Path:
    """The file `tailorlm validate` used to pass: an e-mail source under classify, synthesis under
    classify, and an empty base-model folder."""
    (root / "model").mkdir(parents=True)
    (root / "support.mbox").write_text("", encoding="utf-8")
    project = {
        "project": "acme",
        "base_model": "model",
        "task": "classify",
        "sources": [{"path": "support.mbox", "kind": "email"}],
        "prepare": {"synthesize": {"teacher": "http://127.0.0.1:9/v1"}},
    }
    path = root / "tailorlm.yaml"
    path.write_text(yaml.safe_dump(project), encoding="utf-8")
    return path


def test_problems_names_every_field_at_once(tmp_path):
    found = problems(load_project(three_errors(tmp_path)))
    assert [problem.field for problem in found] == ["base_model", "sources[0].kind", "prepare.synthesize"]
    assert str(found[1]) == KIND
    assert str(found[2]).startswith(SYNTHESIZE)
    assert "is not a usable model directory: missing config.json" in found[0].message


def test_validate_prints_all_three_and_fails(tmp_path):
    file = three_errors(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", "validate", str(file)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "3 problem(s)" in result.stderr
    assert "base_model: " in result.stderr and KIND in result.stderr and SYNTHESIZE in result.stderr
    assert "Traceback" not in result.stderr


def test_prepare_and_train_refuse_with_the_same_messages(tmp_path, workspace):
    project = load_project(three_errors(tmp_path))
    found = {problem.field: str(problem) for problem in problems(project)}
    with pytest.raises(PrepareError) as refused:
        prepare(workspace, project)
    assert str(refused.value) == f"{found['sources[0].kind']}\n{found['prepare.synthesize']}"
    with pytest.raises(TrainError) as refused:
        train(workspace, project)
    assert str(refused.value) == found["base_model"]


def test_unknown_kind_and_missing_path_are_named(tmp_path, tiny_model_dir):
    (tmp_path / "faq.csv").write_text("question,answer\n", encoding="utf-8")
    project = yaml.safe_dump(
        {
            "project": "acme",
            "base_model": str(tiny_model_dir),
            "sources": [{"path": "faq.csv", "kind": "emial"}, {"path": "nowhere/tickets.csv", "kind": "table"}],
        }
    )
    (tmp_path / "tailorlm.yaml").write_text(project, encoding="utf-8")
    found = [str(problem) for problem in problems(load_project(tmp_path / "tailorlm.yaml"))]
    assert found[0].startswith("sources[1].path: not found: nowhere/tickets.csv")
    assert found[1:] == [
        "sources[0].kind: unknown source kind 'emial' (known: dataset, documents, email, extraction, faq, feedback, table)"
    ]


def test_a_sound_project_has_no_problems(tmp_path, tiny_model_dir):
    (tmp_path / "faq.csv").write_text("question,answer\n", encoding="utf-8")
    (tmp_path / "tailorlm.yaml").write_text(
        yaml.safe_dump(
            {"project": "acme", "base_model": str(tiny_model_dir), "sources": [{"path": "faq.csv", "kind": "faq"}]}
        ),
        encoding="utf-8",
    )
    assert problems(load_project(tmp_path / "tailorlm.yaml")) == []


def project_on(tmp_path: Path, base_model: str) -> Project:
    (tmp_path / "tailorlm.yaml").write_text(yaml.safe_dump({"project": "acme", "base_model": base_model}), "utf-8")
    return load_project(tmp_path / "tailorlm.yaml")


def register_base(workspace, model: Path, name: str) -> None:
    """A registered base as `tailorlm base import` leaves it: a model directory and its registry row."""
    shutil.copytree(model, workspace.base_dir(name))
    path = workspace.relative(workspace.base_dir(name))
    meta = {"sha256": "0" * 64, "dtype": "float32", "architecture": "LlamaForCausalLM", "parameters": 1}
    workspace.registry.add(Artifact(id=f"base-{name}", kind="base", name=name, hash="0" * 64, path=path, meta=meta))


def test_base_model_may_be_a_gguf_a_package_or_a_registered_base(tmp_path, workspace, tiny_model_dir):
    missing = [str(p) for p in problems(project_on(tmp_path, "models/company.gguf"))]
    assert missing == [f"base_model: GGUF file not found: {tmp_path / 'models' / 'company.gguf'}"]
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf at all")
    [broken] = problems(project_on(tmp_path, "fake.gguf"))
    assert broken.field == "base_model" and "fake.gguf" in broken.message

    unknown = project_on(tmp_path, "company-llama")
    [alone] = problems(unknown)
    assert "'company-llama' is not a directory, a .gguf file or an installed model package" in alone.message
    [named] = problems(unknown, workspace=workspace)
    assert "registered: none yet" in named.message

    register_base(workspace, tiny_model_dir, "company-llama")
    assert problems(unknown, workspace=workspace) == []


def test_validate_looks_up_bases_in_the_workspace_holding_the_file(workspace, tiny_model_dir):
    register_base(workspace, tiny_model_dir, "company-llama")
    project = project_on(workspace.root, "company-llama")
    assert problems(project) and not problems(project, workspace=workspace)
    result = subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", "validate", str(workspace.project_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0 and "is valid" in result.stdout, result.stderr
