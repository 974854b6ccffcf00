"""SQLite store for artifacts and lineage; the schema changes only through numbered migrations."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailorlm.errors import NotFound, UserError
from tailorlm.registry.meta import (
    META_MODELS,
    ArtifactMeta,
    Kind,
    M,
    MetaError,
    Status,
    check_kind,
    check_status,
    parse_meta,
)
from tailorlm.registry.migrations import all_migrations


class NewerSchema(UserError, RuntimeError):
    """A registry written by a newer TailorLM, whose schema this version does not know; it is not touched."""


def now() -> str:
    """The current UTC time, ISO 8601 to the second (the registry's timestamps)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Artifact:
    """One row of the registry: a folder (or file) in the workspace with its content hash.

    `meta` is the kind's model (`RunMeta` for a run, ...); a dict is validated into it, so a wrong field fails
    here, naming it.
    """

    id: str
    kind: Kind
    name: str
    hash: str
    path: str
    meta: ArtifactMeta
    status: Status = "complete"
    version: str | None = None
    key: str | None = None
    created_at: str = field(default_factory=now)

    def __post_init__(self) -> None:
        self.kind = check_kind(self.kind)
        self.status = check_status(self.status)
        if not isinstance(self.meta, META_MODELS[self.kind]):  # a dict, or another kind's model
            self.meta = parse_meta(self.kind, self.meta, where=self.id)

    def meta_as(self, model: type[M]) -> M:
        """The meta as the model the caller expects (`run.meta_as(RunMeta).base_model`); `MetaError` when
        the artifact is another kind (e.g. a dataset id given where a run was expected)."""
        if not isinstance(self.meta, model):
            raise MetaError(f"{self.id} is a {self.kind}, not a {model.kind}")
        return self.meta

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Artifact:
        """The artifact of a stored row (rows from earlier versions read too)."""
        data = dict(row)
        data["meta"] = parse_meta(data["kind"], json.loads(data["meta"] or "{}"), where=data["id"], stored=True)
        return cls(**data)


PRIVATE_MODE = 0o600


def make_private(path: Path) -> None:
    """Create the registry file readable by its owner only (it holds key hashes and the request log),
    whatever the umask, before SQLite opens it; SQLite gives its -wal and -shm files the same mode.
    An existing registry loses any permission for others (a group may keep read access)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_MODE))
    except FileExistsError:
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                status = file.stat()
                mode = stat.S_IMODE(status.st_mode)
                if stat.S_ISREG(status.st_mode) and mode & 0o037:
                    os.chmod(file, mode & 0o740)
            except FileNotFoundError:
                continue
            except PermissionError:  # someone else's file (a shared read-only workspace): leave it
                continue


class Registry:
    """The workspace's SQLite registry (WAL mode). Opening it applies pending migrations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_private(path)
        self._connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        from tailorlm.lifecycle import pause_point

        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
            pause_point("registry.write")  # the chaos tests kill a process here, mid-transaction
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def _migrate(self) -> None:
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)"
        )
        applied = {row[0] for row in self._connection.execute("SELECT number FROM schema_migrations")}
        known = all_migrations()
        newest = max((number for number, _, _ in known), default=0)
        if applied and max(applied) > newest:
            self._connection.close()
            raise NewerSchema(
                f"{self.path} was written by a newer TailorLM (registry schema {max(applied)}; this version knows "
                f"up to {newest}); it was left unchanged",
                hint="upgrade TailorLM (pip install -U tailorlm) to use this workspace",
            )
        for number, name, module in known:
            if number in applied:
                continue
            with self.transaction() as connection:
                for statement in module.SQL.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, now()))

    @property
    def schema_version(self) -> int:
        row = self._connection.execute("SELECT MAX(number) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run one statement (for tables added by later migrations, e.g. API keys)."""
        return self._connection.execute(sql, parameters)

    def add(self, artifact: Artifact, parents: list[str] | tuple[str, ...] = (), relation: str = "input") -> Artifact:
        """Insert (or replace) an artifact row and link it to its parents."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO artifacts (id, kind, name, version, hash, key, path, status, created_at,"
                " meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    artifact.id,
                    artifact.kind,
                    artifact.name,
                    artifact.version,
                    artifact.hash,
                    artifact.key,
                    artifact.path,
                    artifact.status,
                    artifact.created_at,
                    _dump(parse_meta(artifact.kind, artifact.meta, where=artifact.id)),
                ),
            )
            for parent in dict.fromkeys(parents):
                connection.execute(
                    "INSERT OR IGNORE INTO lineage (child_id, parent_id, relation) VALUES (?, ?, ?)",
                    (artifact.id, parent, relation),
                )
        return artifact

    def update(self, artifact_id: str, **changes: Any) -> Artifact:
        """Change some columns of a row (status, hash, meta...); a new status and meta are validated."""
        if "status" in changes:
            check_status(changes["status"])
        if "meta" in changes:
            changes["meta"] = _dump(parse_meta(self.get(artifact_id).kind, changes["meta"], where=artifact_id))
        columns = ", ".join(f"{column} = ?" for column in changes)
        with self.transaction() as connection:
            connection.execute(f"UPDATE artifacts SET {columns} WHERE id = ?", (*changes.values(), artifact_id))
        return self.get(artifact_id)

    def beat(self, artifact_id: str, at: str) -> None:
        """Set a running artifact's `meta.owner.heartbeat` (from the heartbeat thread: its own connection)."""
        with sqlite3.connect(self.path, timeout=30) as connection:
            connection.execute(
                "UPDATE artifacts SET meta = json_set(meta, '$.owner.heartbeat', ?)"
                " WHERE id = ? AND status = 'running' AND json_extract(meta, '$.owner') IS NOT NULL",
                (at, artifact_id),
            )
        connection.close()

    def integrity_problems(self) -> list[str]:
        """What SQLite's `PRAGMA integrity_check` and `foreign_key_check` find wrong (empty when sound)."""
        found = [row[0] for row in self._connection.execute("PRAGMA integrity_check")]
        problems = [line for line in found if line != "ok"]
        problems += [f"foreign key: {tuple(row)}" for row in self._connection.execute("PRAGMA foreign_key_check")]
        return problems

    def get(self, artifact_id: str) -> Artifact:
        row = self._connection.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        if row is None:
            raise NotFound(f"no artifact {artifact_id!r} in this workspace")
        return Artifact.from_row(row)

    def find(
        self,
        kind: Kind | None = None,
        *,
        name: str | None = None,
        version: str | None = None,
        key: str | None = None,
        hash: str | None = None,
        status: Status | None = None,
    ) -> list[Artifact]:
        """Rows matching every given column, newest first."""
        clauses, parameters = [], []
        for column, value in (
            ("kind", kind),
            ("name", name),
            ("version", version),
            ("key", key),
            ("hash", hash),
            ("status", status),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._connection.execute(
            f"SELECT * FROM artifacts {where} ORDER BY created_at DESC, rowid DESC", parameters
        )
        return [Artifact.from_row(row) for row in rows]

    def parents(self, artifact_id: str) -> list[Artifact]:
        rows = self._connection.execute(
            "SELECT a.* FROM artifacts a JOIN lineage l ON l.parent_id = a.id WHERE l.child_id = ?",
            (artifact_id,),
        )
        return [Artifact.from_row(row) for row in rows]

    def children(self, artifact_id: str) -> list[Artifact]:
        rows = self._connection.execute(
            "SELECT a.* FROM artifacts a JOIN lineage l ON l.child_id = a.id WHERE l.parent_id = ?"
            " ORDER BY a.created_at, a.rowid",
            (artifact_id,),
        )
        return [Artifact.from_row(row) for row in rows]

    def lineage(self, artifact_id: str) -> list[Artifact]:
        """Every ancestor of an artifact, nearest first (so a model traces back to its files)."""
        seen: dict[str, Artifact] = {}
        frontier = [artifact_id]
        while frontier:
            parents = [p for child in frontier for p in self.parents(child) if p.id not in seen]
            for parent in parents:
                seen[parent.id] = parent
            frontier = [p.id for p in parents]
        return list(seen.values())


def _dump(meta: ArtifactMeta) -> str:
    return json.dumps(meta.model_dump(mode="json"))
