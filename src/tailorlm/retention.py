"""`tailorlm gc`: apply the project's retention (`governance.retention`) and audit what it removed.

Three kinds of data age out, each only when its retention is set (null keeps it forever):

* request-log rows older than `request_log_days` (default: `serve.log_retention_days`), through the
  server's own purge (`serve.request_log.purge_request_log`);
* ingested documents (the raw text of source files) older than `documents_days`; the registry row stays,
  so lineage still names the file and its hash, and the next ingest of an unchanged file reads it again;
* intermediates older than `intermediates_days`: checkpoints of complete runs (the final weights stay),
  abandoned staging folders and the cache.

Datasets, runs' weights, evaluations and models are never removed by gc.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.config import GovernanceSettings, RetentionSettings, ServeSettings
from tailorlm.workspace import Workspace

DAY = 86_400.0


@dataclass
class Removal:
    """What gc removed (or, with dry_run, would remove)."""

    request_log_rows: int = 0
    documents: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    staging: list[str] = field(default_factory=list)
    cache: list[str] = field(default_factory=list)
    bytes: int = 0
    dry_run: bool = False
    kept: dict[str, str] = field(default_factory=dict)  # kind → why nothing of it was removed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _old(path: Path, days: float, now: float) -> bool:
    return now - path.stat().st_mtime > days * DAY


def retention_of(workspace: Workspace) -> tuple[RetentionSettings, float | None]:
    """The workspace project's retention and the request-log days it implies."""
    governance = GovernanceSettings.model_validate(
        {"retention": workspace.governance_setting("retention") or {}}
    ).retention
    serve_days = ServeSettings().log_retention_days
    if workspace.project_file.is_file():
        import yaml

        data = yaml.safe_load(workspace.project_file.read_text(encoding="utf-8")) or {}
        serve = data.get("serve") if isinstance(data, dict) else None
        if isinstance(serve, dict) and "log_retention_days" in serve:
            serve_days = ServeSettings.model_validate(
                {"log_retention_days": serve["log_retention_days"]}
            ).log_retention_days
    days = governance.request_log_days if governance.request_log_days is not None else serve_days
    return governance, days


def gc(workspace: Workspace, *, retention: RetentionSettings | None = None, dry_run: bool = False) -> Removal:
    """Remove what the retention says has aged out; audited as a `gc` event (not when `dry_run`)."""
    from tailorlm.serve.request_log import purge_request_log

    settings, request_days = retention_of(workspace)
    if retention is not None:
        settings = retention
        request_days = retention.request_log_days if retention.request_log_days is not None else request_days
    now = time.time()
    removal = Removal(dry_run=dry_run)

    if request_days is None:
        removal.kept["request_log"] = "no retention (serve.log_retention_days: null)"
    elif dry_run:
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - request_days * DAY))
        (removal.request_log_rows,) = workspace.registry.execute(
            "SELECT COUNT(*) FROM request_log WHERE time < ?", (cutoff,)
        ).fetchone()
    else:
        removal.request_log_rows = purge_request_log(workspace, request_days)

    doomed: list[Path] = []
    if settings.documents_days is None:
        removal.kept["documents"] = "no retention (governance.retention.documents_days)"
    else:
        for file in sorted(workspace.documents_dir.glob("*.jsonl")):
            if _old(file, settings.documents_days, now):
                removal.documents.append(workspace.relative(file))
                doomed.append(file)
    if settings.intermediates_days is None:
        removal.kept["intermediates"] = "no retention (governance.retention.intermediates_days)"
    else:
        days = settings.intermediates_days
        for run in workspace.registry.find("run", status="complete"):
            checkpoints = workspace.path_of(run) / "checkpoints"
            if checkpoints.is_dir() and _old(checkpoints, days, now):
                removal.checkpoints.append(workspace.relative(checkpoints))
                doomed.append(checkpoints)
        for staging in sorted(workspace.root.rglob(".*.staging")):
            if staging.is_dir() and _old(staging, days, now):
                removal.staging.append(workspace.relative(staging))
                doomed.append(staging)
        for entry in sorted(workspace.cache_dir.iterdir()):
            if _old(entry, days, now):
                removal.cache.append(workspace.relative(entry))
                doomed.append(entry)
    removal.bytes = sum(_size(path) for path in doomed)
    if dry_run:
        return removal
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    workspace.audit.append(
        "gc",
        outputs=[*removal.documents, *removal.checkpoints, *removal.staging, *removal.cache],
        request_log_rows=removal.request_log_rows,
        bytes=removal.bytes,
        kept=removal.kept,
    )
    return removal
