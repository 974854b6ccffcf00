"""docs/architecture.md matches the tree: every module and package it lists exists, every one that exists
(two levels deep) is listed, and every source file its recipes name is there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tailorlm"
DOC = ROOT / "docs" / "architecture.md"
NAME = re.compile(r"^[\w.]+(?:\.py|/)$")


def layout() -> set[Path]:
    """The paths of the layout block, relative to src/tailorlm: names lead each line (several may share
    one), their folder is the nearest less indented line ending in '/'."""
    block = DOC.read_text(encoding="utf-8").split("## Layout", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines() if line.strip()][1:]  # after `src/tailorlm/`
    parents: list[tuple[int, Path]] = []
    paths: set[Path] = set()
    for line in lines:
        indent = len(line) - len(line.lstrip())
        parents = [(level, path) for level, path in parents if level < indent]
        folder = parents[-1][1] if parents else Path()
        for token in line.split():
            if not NAME.match(token):
                break
            paths.add(folder / token.rstrip("/"))
            if token.endswith("/"):
                parents.append((indent, folder / token.rstrip("/")))
    return paths


def tree(depth: int = 2) -> set[Path]:
    """Modules and folders of src/tailorlm up to `depth` levels, without __init__.py and caches."""
    found = set()
    for path in PACKAGE.rglob("*"):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) > depth or "__pycache__" in relative.parts or path.name == "__init__.py":
            continue
        if path.is_dir() or path.suffix == ".py":
            found.add(relative)
    return found


def test_every_listed_path_exists():
    missing = sorted(str(p) for p in layout() if not (PACKAGE / p).exists())
    assert not missing, f"docs/architecture.md lists what is not in src/tailorlm: {missing}"


def test_every_module_and_package_is_listed():
    unlisted = sorted(str(p) for p in tree() - layout())
    assert not unlisted, f"add these to the layout of docs/architecture.md: {unlisted}"


def test_files_named_in_the_text_exist():
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:src/tailorlm/|tests/)[\w/.]+?\.py)`", text))
    relative = re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py)`", text)  # written from src/tailorlm
    named |= {f"src/tailorlm/{m}" for m in relative if not m.startswith(("src/", "tests/"))}
    missing = sorted(p for p in named if "<" not in p and not (ROOT / p).exists())
    assert named and not missing, f"docs/architecture.md names files that don't exist: {missing}"
