"""Files colleagues can read (artifacts follow the umask, writes stay atomic) and dependencies true to
the code (every third-party import is declared; no bitsandbytes Hub-kernel warning on model loads)."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tailorlm.workspace import Workspace, atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
# Imports of optional features whose package is not installed here, by distribution name.
NOT_INSTALLED = {"llama_cpp": "llama-cpp-python", "sentence_transformers": "sentence-transformers"}


@pytest.fixture
def umask():
    """Run with a given umask, restored afterwards."""
    previous = os.umask(0o022)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_artifacts_follow_the_umask(tmp_path, umask, mask, file_mode, folder_mode):
    umask(mask)
    ws = Workspace(tmp_path / "ws")
    target = ws.root / "exports" / "acme-v1" / "merged"
    with ws.staging(target) as staging:
        atomic_write_json(staging / "export_report.json", {"passed": True})
        (staging / "model.safetensors").write_bytes(b"weights")
    assert mode(target) == folder_mode  # was 0700 from mkdtemp
    assert mode(target / "export_report.json") == file_mode  # was 0600 from mkstemp
    assert mode(target / "model.safetensors") == file_mode
    atomic_write_text(ws.project_file, "project: acme\n")
    assert mode(ws.project_file) == file_mode
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging or temp left
    ws.close()


def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path, umask):
    umask(0o022)
    atomic_write_json(tmp_path / "card.json", {"version": 1})
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "inside").write_text("x")
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "report", "can't replace a folder")  # fails at the rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json", "report"]
    assert (tmp_path / "card.json").read_text() == '{\n  "version": 1\n}\n'


def third_party_imports() -> set[str]:
    modules = set()
    for file in (ROOT / "src" / "tailorlm").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "tailorlm"}


def declared() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {group: {_normal(Requirement(r).name) for r in reqs} for group, reqs in groups.items() if group != "dev"}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def test_every_import_of_src_is_a_declared_dependency():
    found = packages_distributions()
    every = set().union(*declared().values())
    missing = {}
    for module in sorted(third_party_imports()):
        names = [NOT_INSTALLED[module]] if module in NOT_INSTALLED else found.get(module, [module])
        if not any(_normal(name) in every for name in names):
            missing[module] = names
    assert not missing, f"imported by src but not declared in pyproject.toml: {missing}"


def test_optional_packages_are_extras_pinned_in_constraints():
    extras = {group: names for group, names in declared().items() if group}
    assert extras["embeddings"] == {"sentence-transformers"} and extras["llama-cpp"] == {"llama-cpp-python"}
    pins = {
        _normal(line.split("==")[0]) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    }
    assert {"sentence-transformers", "llama-cpp-python", "phonenumbers"} <= pins


def test_no_bitsandbytes_kernel_warning_on_a_model_load():
    code = "from tailorlm import offline; offline.enforce(); import peft, bitsandbytes; print('loaded')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert "loaded" in result.stdout
    assert "gemm_4bit_forward" not in result.stderr and "kernels-community" not in result.stderr
