"""The workspace on disk and its registry: the only module that knows where artifacts live.

```
<workspace>/ tailorlm.yaml tailorlm.db audit.jsonl
  documents/<source-sha256>.jsonl   datasets/<name>/<version>/   runs/<run-id>/
  evals/<eval-id>/                  models/<name>/<version>/
  exports/<model>/                  base-models/<name>/ (imported GGUFs)
  dashboard/ (settings of runs started from the web dashboard)
  cache/ (safe to delete)
```
Every write is atomic: files go to a temp name, are fsynced and renamed; artifact folders are built
under a hidden staging name and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailorlm import offline
from tailorlm.audit import AuditLog
from tailorlm.errors import NotFound, UserError
from tailorlm.lifecycle import process_alive
from tailorlm.registry import Artifact, Kind, Registry

DEFAULT_WORKSPACE = "tailorlm-workspace"
PROJECT_FILE = "tailorlm.yaml"
REGISTRY_FILE = "tailorlm.db"


class MissingWorkspace(UserError, FileNotFoundError):
    """A workspace folder that does not exist (or holds no workspace) where one was expected."""


# --- atomic writes and hashing -------------------------------------------------------------------


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(*, folder: bool = False, executable: bool = False) -> int:
    """The mode `open()` or `mkdir()` would give under the umask (mkstemp/mkdtemp give 0600/0700):
    0644 files and 0755 folders under umask 022, so colleagues and service accounts can read artifacts."""
    return (0o777 if folder or executable else 0o666) & ~current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp")
    try:
        os.fchmod(handle, default_mode())
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> int:
    lines = [json.dumps(row, ensure_ascii=False, default=str) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """Content hash of a folder: relative names and file contents, in sorted order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def stable_hash(data: Any) -> str:
    """Hash of JSON-serialisable settings (keys sorted), for skip-if-unchanged keys."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


_STAGING = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+\.(staging|tmp)$")


def _owner_tag() -> str:
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', socket.gethostname())}-{os.getpid()}"


def remove_abandoned_staging(folder: Path) -> list[Path]:
    """Remove the hidden staging folders and temp files in `folder` left by a process that was killed:
    those of a process of this machine that no longer runs, and those without an owner (earlier
    versions). Returns what was removed."""
    removed = []
    host = _owner_tag().rsplit("-", 1)[0]
    for path in [*folder.glob(".*.staging"), *folder.glob(".*.tmp")]:
        match = _STAGING.match(path.name)
        if match and (match["host"] != host or process_alive(int(match["pid"]))):
            continue  # its owner may still be writing it
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# --- the workspace -------------------------------------------------------------------------------


class Workspace:
    """A workspace folder: artifacts on disk plus the registry and audit log that describe them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._governance_cache: tuple[int | None, dict[str, Any]] = (None, {})
        for folder in ("documents", "datasets", "runs", "evals", "models"):
            (self.root / folder).mkdir(exist_ok=True)
        self.registry = Registry(self.root / REGISTRY_FILE)
        self.audit = AuditLog(self.root / "audit.jsonl", key_file=self._audit_key_file)
        offline.report_to(self.audit.append)  # a refused connection is audited in the workspace in use

    @classmethod
    def open(cls, root: Path | str | None = None, *, create: bool = True) -> Workspace:
        """The workspace at `root`, else `$TAILORLM_WORKSPACE`, else ./tailorlm-workspace.

        With `create=False` a folder that is not a workspace yet (no registry, no project file) is
        refused with `MissingWorkspace` instead of being made into an empty one: a typo is not a
        new workspace.
        """
        chosen = Path(root or os.environ.get("TAILORLM_WORKSPACE") or DEFAULT_WORKSPACE)
        if not create and not cls.exists(chosen):
            raise MissingWorkspace(
                f"no workspace at {chosen.expanduser().resolve()}",
                hint="check --workspace / $TAILORLM_WORKSPACE, or create one with `tailorlm init --workspace "
                f"{chosen}`",
            )
        return cls(chosen)

    @staticmethod
    def exists(root: Path | str) -> bool:
        """True when `root` holds a workspace: its registry or its project file."""
        root = Path(root).expanduser()
        return (root / REGISTRY_FILE).is_file() or (root / PROJECT_FILE).is_file()

    def close(self) -> None:
        self.registry.close()

    def governance_setting(self, name: str) -> Any:
        """A key of the project file's `governance:` section, read without validating the whole project
        (the audit log and the approval gate need it where no project is loaded); None when absent."""
        try:
            stat = self.project_file.stat()
        except OSError:
            return None
        if self._governance_cache[0] != stat.st_mtime_ns:
            import yaml

            try:
                data = yaml.safe_load(self.project_file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                data = None
            section = data.get("governance") if isinstance(data, dict) else None
            self._governance_cache = (stat.st_mtime_ns, section if isinstance(section, dict) else {})
        return self._governance_cache[1].get(name)

    def _audit_key_file(self) -> Path | None:
        chosen = self.governance_setting("audit_key_file")
        return (self.root / Path(str(chosen)).expanduser()) if chosen else None

    # paths -----------------------------------------------------------------------------------
    @property
    def project_file(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def documents_dir(self) -> Path:
        return self.root / "documents"

    def documents_file(self, source_sha256: str) -> Path:
        return self.documents_dir / f"{source_sha256}.jsonl"

    def dataset_dir(self, name: str, version: str) -> Path:
        return self.root / "datasets" / name / version

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def eval_dir(self, eval_id: str) -> Path:
        return self.root / "evals" / eval_id

    def iteration_dir(self, iteration_id: str) -> Path:
        """The report of a `tailorlm iterate` loop and its rounds' files."""
        return self.root / "iterations" / iteration_id

    def model_dir(self, name: str, version: str) -> Path:
        return self.root / "models" / name / version

    def base_dir(self, name: str) -> Path:
        """A base model imported into the workspace (a GGUF converted to a model directory)."""
        return self.root / "base-models" / name

    def export_dir(self, name: str) -> Path:
        return self.root / "exports" / name

    @property
    def tracking_dir(self) -> Path:
        """MLflow's file store when a project reports to it (train.report_to)."""
        return self.root / "mlruns"

    def job_log(self, job_id: str) -> Path:
        """What a queued job printed (see tailorlm.jobs)."""
        return self.root / "jobs" / f"{job_id}.log"

    @property
    def dashboard_dir(self) -> Path:
        """Files the web dashboard writes: the settings a run was started with from its form."""
        return self.root / "dashboard"

    @property
    def cache_dir(self) -> Path:
        """Caches that can be deleted at any time (generations, judge verdicts)."""
        path = self.root / "cache"
        path.mkdir(exist_ok=True)
        return path

    def path_of(self, artifact: Artifact) -> Path:
        return self.root / artifact.path

    def relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    @contextmanager
    def staging(self, final: Path) -> Iterator[Path]:
        """Build an artifact folder under a hidden name; rename it into place only if the block succeeds.

        The hidden name carries this process's host and pid (`.v3.host-1234.x8k2.staging`), so the
        staging folders of a process killed before it could clean up are removed by the next one."""
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_staging(final.parent)
        temp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{_owner_tag()}.", suffix=".staging"))
        try:
            temp.chmod(default_mode(folder=True))
            yield temp
            if final.exists():
                shutil.rmtree(final)
            os.replace(temp, final)
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)

    def integrity_problems(self) -> list[str]:
        """What is wrong with the workspace's records: the database's own checks, and complete artifacts
        whose folder or file is missing. Empty when sound."""
        problems = self.registry.integrity_problems()
        for artifact in self.registry.find(status="complete"):
            if artifact.path and not self.path_of(artifact).exists():
                problems.append(f"{artifact.id}: its {artifact.kind} at {artifact.path} is missing")
        return problems

    # registry look-ups ------------------------------------------------------------------------
    def next_version(self, kind: Kind, name: str) -> str:
        versions = [a.version for a in self.registry.find(kind, name=name) if a.version and a.version[1:].isdigit()]
        return f"v{max((int(v[1:]) for v in versions), default=0) + 1}"

    def resolve(self, kind: Kind, reference: str | None = None) -> Artifact:
        """Find an artifact by id, `name@version`, `name` (latest complete) or, with None, the latest."""
        registry = self.registry
        if reference is None:
            found = registry.find(kind, status="complete")
        else:
            try:
                artifact = registry.get(reference)
                if artifact.kind == kind:
                    return artifact
            except KeyError:
                pass
            name, _, version = reference.partition("@")
            found = registry.find(kind, name=name, version=version or None, status="complete")
        if not found:
            known = sorted({f"{a.name}@{a.version}" if a.version else a.id for a in registry.find(kind)})
            shown = ", ".join(known[:10]) or "none yet"
            raise NotFound(f"no {kind} matches {reference or '(latest)'}; known: {shown}")
        return found[0]

    def lookup(self, reference: str) -> Artifact:
        """Any artifact by id (`run-…`, `model-acme-v1`) or by `name` / `name@version` of a model or dataset."""
        try:
            return self.registry.get(reference)
        except NotFound:
            pass
        for kind in ("model", "dataset"):
            with contextlib.suppress(NotFound):
                return self.resolve(kind, reference)
        raise NotFound(
            f"nothing in {self.root} matches {reference!r}",
            hint="give an id (run-…, model-…, dataset-…, eval-…) or a model/dataset as name or name@version; "
            "see `tailorlm runs` and `tailorlm models`",
        )

    def find_complete(self, kind: Kind, key: str) -> Artifact | None:
        """The newest complete artifact built from the same inputs and settings (for skipping)."""
        for artifact in self.registry.find(kind, key=key, status="complete"):
            if self.path_of(artifact).exists():
                return artifact
        return None
