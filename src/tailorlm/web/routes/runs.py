"""Runs (`/runs`): the list; a run's plan, resolved config and loss curves (train and validation, live over
server-sent events while it trains, several runs overlaid); a form built from the documented train
settings that starts a run as a background job; stop and resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from tailorlm.config import TrainSettings
from tailorlm.registry import Artifact, RunMeta
from tailorlm.web import jobs
from tailorlm.web.common import PageError, dashboard, page, read_form, require
from tailorlm.web.forms import form_fields, parse_form
from tailorlm.web.projects import load_workspace_project, project_with_train
from tailorlm.workspace import Workspace

router = APIRouter()
POLL_SECONDS = 0.25


def read_metrics(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Whole lines of metrics.jsonl from byte `offset`: (rows, the offset after the last whole line)."""
    if not path.is_file():
        return [], offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
    rows = []
    for line in chunk[:end].splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows, offset + end


def _run(workspace: Workspace, run_id: str) -> Artifact:
    artifact = workspace.registry.get(run_id)
    if artifact.kind != "run":
        raise PageError(404, f"{run_id} is a {artifact.kind}, not a run")
    return artifact


def job_of_run(workspace: Workspace, run: Artifact) -> jobs.Job | None:
    """The queued job that is training `run`, while it runs."""
    return next((job for job in jobs.list_jobs(workspace) if job.run == run.id and not job.finished), None)


@router.get("/runs")
async def runs(request: Request) -> Response:
    workspace = dashboard(request).workspace
    return page(request, "runs.html.jinja", runs=workspace.registry.find("run"))


@router.get("/runs/compare")
async def compare(request: Request, run: list[str] = Query(default=[])) -> Response:
    workspace = dashboard(request).workspace
    chosen = [_run(workspace, run_id) for run_id in run[:8]]
    if not chosen:
        raise PageError(400, "choose at least one run to compare", hint="tick runs on the Runs page")
    return page(request, "compare.html.jinja", runs=chosen)


@router.get("/runs/new")
async def new_run(request: Request) -> Response:
    workspace = dashboard(request).workspace
    project, problem = load_workspace_project(workspace)
    values = project.train.model_dump() if project else {}
    return page(request, "train_form.html.jinja", fields=form_fields(TrainSettings, values), problem=problem)


@router.post("/runs/new")
async def start_run(request: Request) -> Response:
    user = require(request, "editor")
    form = await read_form(request)
    workspace = dashboard(request).workspace
    settings, problem = parse_form(TrainSettings, form)
    if settings is None:
        fields = form_fields(TrainSettings, _submitted(form))
        return page(request, "train_form.html.jinja", status=400, fields=fields, problem=problem)
    argv = ["--force"] if form.get("force") else []
    job = jobs.start(workspace, "train", argv, user=user.name, project=project_with_train(workspace, settings))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def _submitted(form: dict[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in form.items():
        *parents, leaf = key.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


@router.get("/runs/{run_id}")
async def run_detail(request: Request, run_id: str) -> Response:
    workspace = dashboard(request).workspace
    run = _run(workspace, run_id)
    folder = workspace.path_of(run)
    config = (folder / "config.yaml").read_text("utf-8") if (folder / "config.yaml").is_file() else ""
    meta = run.meta_as(RunMeta)
    checkpoints = sorted(p.name for p in (folder / "checkpoints").glob("checkpoint-*")) if folder.is_dir() else []
    return page(
        request,
        "run.html.jinja",
        run=run,
        meta=meta,
        config=config,
        plan=yaml.safe_dump(meta.plan, sort_keys=False) if meta.plan else "",
        checkpoints=checkpoints,
        job=job_of_run(workspace, run),
        evaluations=[e for e in workspace.registry.find("evaluation") if run.id in getattr(e.meta, "runs", [])],
    )


@router.post("/runs/{run_id}/stop")
async def stop(request: Request, run_id: str) -> Response:
    user = require(request, "editor")
    await read_form(request)
    workspace = dashboard(request).workspace
    job = job_of_run(workspace, _run(workspace, run_id))
    if job is None:
        raise PageError(409, f"{run_id} is not training in a queued job; nothing to stop here")
    await asyncio.to_thread(jobs.cancel, workspace, job.id, user=user.name)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/resume")
async def resume(request: Request, run_id: str) -> Response:
    user = require(request, "editor")
    await read_form(request)
    workspace = dashboard(request).workspace
    run = _run(workspace, run_id)
    if run.status not in ("interrupted", "failed"):
        raise PageError(409, f"{run_id} is {run.status}: only an interrupted or failed run can be resumed")
    job = jobs.start(workspace, "train", ["--resume", run_id], user=user.name)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/api/runs/{run_id}/metrics")
async def metrics(request: Request, run_id: str) -> JSONResponse:
    workspace = dashboard(request).workspace
    run = _run(workspace, run_id)
    rows, offset = read_metrics(workspace.path_of(run) / "metrics.jsonl")
    return JSONResponse({"run": run_id, "status": run.status, "rows": rows, "offset": offset})


@router.get("/api/runs/{run_id}/stream")
async def stream(request: Request, run_id: str, offset: int = 0) -> StreamingResponse:
    """Server-sent events: one `metrics` event per new line of metrics.jsonl, then `done` with the status."""
    workspace = dashboard(request).workspace
    run = _run(workspace, run_id)
    path = workspace.path_of(run) / "metrics.jsonl"

    async def events() -> AsyncIterator[str]:
        position = offset
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            rows, position = read_metrics(path, position)
            for row in rows:
                yield f"event: metrics\ndata: {json.dumps(row)}\nid: {position}\n\n"
            status = workspace.registry.get(run_id).status
            if status != "running" and not rows:
                yield f"event: done\ndata: {json.dumps({'status': status})}\n\n"
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})
