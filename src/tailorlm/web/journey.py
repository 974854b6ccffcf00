"""The journey strip of the overview: each stage's latest artifact, whether it is stale, and the next action.

Stale means its inputs moved on since it was made: a dataset older than the project file or a source file;
a run not trained on the latest dataset; an evaluation not of the latest run; a model not of the latest
evaluated run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace


@dataclass
class Stage:
    name: str
    artifact: Artifact | None
    summary: str
    link: str | None
    stale: str | None = None  # why it is stale, when it is
    status: str = "missing"


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp).astimezone(UTC).timestamp()


def _latest(workspace: Workspace, kind: str) -> Artifact | None:
    found = workspace.registry.find(kind)  # type: ignore[arg-type]
    return found[0] if found else None


def _newest_mtime(paths: list[Path]) -> tuple[float, Path | None]:
    newest, which = 0.0, None
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
        for file in files:
            if (moment := file.stat().st_mtime) > newest:
                newest, which = moment, file
    return newest, which


def _deployed(workspace: Workspace) -> str:
    """The latest deployment recorded in the audit log, else what to do."""
    for event in reversed(workspace.audit.events()):
        if event.get("action") in ("deploy", "deploy.dashboard"):
            details = event.get("details", {})
            return f"{', '.join(event.get('inputs', []))} → {details.get('url', 'a server')} ({event['time'][:16]})"
    return "not deployed: `tailorlm serve`, then deploy from the model's page"


def journey(workspace: Workspace, project: Any | None) -> list[Stage]:
    """The six stages, ingest → prepare → train → evaluate → register → deploy."""
    documents = workspace.registry.find("document")
    dataset, run = _latest(workspace, "dataset"), _latest(workspace, "run")
    evaluation, model = _latest(workspace, "evaluation"), _latest(workspace, "model")
    stages = [
        Stage(
            "ingest",
            documents[0] if documents else None,
            f"{len(documents)} file(s) read" if documents else "no documents yet",
            "/data",
        ),
        Stage("prepare", dataset, f"{dataset.name}@{dataset.version}" if dataset else "no dataset yet", "/data"),
        Stage("train", run, run.id if run else "no run yet", f"/runs/{run.id}" if run else "/runs"),
        Stage(
            "evaluate",
            evaluation,
            evaluation.id if evaluation else "no evaluation yet",
            f"/evals/{evaluation.id}" if evaluation else "/evals",
        ),
        Stage(
            "register",
            model,
            f"{model.name}@{model.version}" if model else "no model yet",
            f"/models/{model.id}" if model else "/models",
        ),
        Stage("deploy", None, _deployed(workspace), "/models"),
    ]
    for stage in stages:
        if stage.artifact is not None:
            stage.status = stage.artifact.status
    if dataset is not None and project is not None:
        sources = [project.resolve(source.path) for source in project.sources]
        moment, which = _newest_mtime([*sources, workspace.project_file])
        if moment > _time(dataset.created_at) + 1:
            stages[1].stale = f"{which.name if which else 'a source'} changed after {dataset.version} was built"
    if run is not None and dataset is not None and getattr(run.meta, "dataset", None) != dataset.id:
        stages[2].stale = f"trained on {getattr(run.meta, 'dataset', '?')}, not the latest {dataset.id}"
    if evaluation is not None and run is not None and run.id not in getattr(evaluation.meta, "runs", []):
        stages[3].stale = f"does not evaluate the latest run {run.id}"
    if model is not None and evaluation is not None and getattr(model.meta, "run", None) not in evaluation.meta.runs:  # type: ignore[union-attr]
        stages[4].stale = "a newer run was evaluated since this version was registered"
    return stages


def next_action(stages: list[Stage]) -> tuple[str, str]:
    """(what to do next, the page that does it)."""
    actions = {
        "ingest": ("Prepare a dataset from the project's sources", "/data"),
        "prepare": ("Prepare a new dataset version", "/data"),
        "train": ("Train a run on the latest dataset", "/runs/new"),
        "evaluate": ("Evaluate the latest run against the baselines", "/evals"),
        "register": ("Register the evaluated run (`tailorlm register`) or approve a version", "/models"),
    }
    for index, stage in enumerate(stages[:-1]):
        if stage.artifact is None and any(later.artifact for later in stages[index + 1 : -1]):
            continue  # e.g. no ingested files when the dataset was imported from JSONL
        if stage.artifact is None or stage.stale or stage.status != "complete":
            return actions[stage.name]
    return ("Chat with the model in the playground, then deploy it", "/playground")
