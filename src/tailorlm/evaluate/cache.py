"""The generation cache: answers (and held-out losses) of local models, keyed by what determines them.

A key is the hash of (model fingerprint, rendered prompt, decoding settings), so re-running an
evaluation only generates what changed: a new case, a new model, other decoding. It lives in one
SQLite file under the workspace (`<workspace>/cache/generations.sqlite`, WAL); deleting it is always
safe. Endpoint candidates and the judge are not cached: the model behind a URL can change.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tailorlm.workspace import Workspace, sha256_file

SMALL_FILE = 16 << 20  # files below this size are hashed by content; weights by name, size and mtime


def cache_path(workspace: Workspace) -> Path:
    return workspace.cache_dir / "generations.sqlite"


def model_fingerprint(path: Path) -> str:
    """A cheap identity of a model folder: configs and tokenizer by content, weight files by name,
    size and modification time (hashing tens of GB of weights on every evaluation would dominate)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(file.relative_to(path).as_posix().encode())
        if stat.st_size < SMALL_FILE:
            digest.update(sha256_file(file).encode())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cache_key(kind: str, model: str, text: str, settings: dict[str, Any]) -> str:
    """The key of one cached value: `kind` (generate, loss), model fingerprint, input text, settings."""
    payload = json.dumps([kind, model, text, settings], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class GenerationCache:
    """Key → JSON value store in SQLite; `hits` and `misses` count look-ups (for reports and tests)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
        )
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> GenerationCache:
        return cls(cache_path(workspace))

    def close(self) -> None:
        self._connection.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Cached values of the keys found (missing keys are absent from the result)."""
        found: dict[str, Any] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._connection.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        self.hits += len(found)
        self.misses += len(unique) - len(found)
        return found

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        rows = [(key, json.dumps(value, ensure_ascii=False)) for key, value in items]
        if not rows:
            return
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            self._connection.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", rows)
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def __len__(self) -> int:
        return int(self._connection.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
