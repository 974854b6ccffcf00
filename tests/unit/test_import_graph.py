"""The house rule of the package layout (DESIGN.md §3, docs/architecture.md): stage packages (ingest,
prepare, train, evaluate, serve, export) never import each other — what two stages share lives in a
shared module (modeling, endpoints, pii, documents, dataset_splits, registry, formats) — and nothing
but the CLI imports `tailorlm.cli`. Every module is read with `ast`, so imports inside functions and
under `TYPE_CHECKING` count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tailorlm

PACKAGE = Path(tailorlm.__file__).resolve().parent
STAGES = frozenset({"ingest", "prepare", "train", "evaluate", "serve", "export"})


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of a module file under the package folder `root`, and whether it is an __init__."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative ones resolved; for
    `from tailorlm import name` it is `tailorlm.name` (the name may be a stage package)."""
    module, is_package = _module_name(path, root)
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == root.name:
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def _top(name: str) -> str | None:
    """The top-level part of a tailorlm module name (`tailorlm.train.sft` → `train`)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "tailorlm" and len(parts) > 1 else None


def violations(root: Path = PACKAGE) -> list[str]:
    """Every forbidden import under `root`, as `file:line imports module (why)`."""
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module, _ = _module_name(path, root)
        own = _top(module)
        shown = path.relative_to(root.parent).as_posix()
        for line, target in imported_modules(path, root):
            other = _top(target)
            if other == "cli" and own != "cli":
                problems.append(f"{shown}:{line} imports {target} (only the CLI imports tailorlm.cli)")
            elif own in STAGES and other in STAGES and other != own:
                problems.append(
                    f"{shown}:{line} imports {target} (stage {own!r} imports stage {other!r}; "
                    "move what they share to a shared module)"
                )
    return sorted(set(problems))


def test_stages_import_shared_pieces_never_each_other() -> None:
    found = violations()
    assert not found, "forbidden imports:\n" + "\n".join(found)


def test_the_walk_sees_every_stage_and_real_imports() -> None:
    """Guards the guard: the walk finds the stage packages, and reads the imports a module really has,
    top-level and inside functions."""
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages >= STAGES
    assert "tailorlm.modeling" in {name for _, name in imported_modules(PACKAGE / "train" / "sft.py")}
    suite = (PACKAGE / "evaluate" / "suite.py").read_text(encoding="utf-8").splitlines()
    local = [(line, name) for line, name in imported_modules(PACKAGE / "evaluate" / "suite.py")
             if suite[line - 1].startswith("    ")]  # fmt: skip
    assert "tailorlm.dataset_splits" in {name for _, name in local}


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        (
            "prepare/synth.py",
            "def f():\n    from tailorlm.evaluate.cases import EvalError\n",
            "stage 'prepare' imports",
        ),
        ("serve/log.py", "from tailorlm import prepare\n", "tailorlm.prepare"),
        ("export/x.py", "from ..train import model\n", "tailorlm.train"),
        ("evaluate/metrics/m.py", "import tailorlm.serve.app as app\n", "tailorlm.serve.app"),
        ("audit.py", "from tailorlm.cli import main\n", "only the CLI imports tailorlm.cli"),
    ],
)
def test_a_forbidden_import_is_reported_with_file_and_line(
    tmp_path: Path, where: str, source: str, expected: str
) -> None:
    root = tmp_path / "tailorlm"
    for stage in STAGES:
        (root / stage).mkdir(parents=True)
        (root / stage / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    target = root / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    found = violations(root)
    assert len(found) == 1 and found[0].startswith(f"tailorlm/{where}:") and expected in found[0], found


def test_shared_modules_and_same_stage_imports_are_allowed(tmp_path: Path) -> None:
    root = tmp_path / "tailorlm"
    (root / "prepare").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "prepare" / "__init__.py").write_text(
        "from tailorlm.modeling import load_tokenizer\nfrom tailorlm.pii import redact\n"
        "from tailorlm.prepare.split import SPLITS\nfrom . import clean\n"
    )
    (root / "pipeline.py").write_text("from tailorlm.prepare import prepare\nfrom tailorlm.train import train\n")
    assert violations(root) == []
