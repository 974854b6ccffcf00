"""Jobs (`/jobs`): the background jobs started from the dashboard, each with its status, its log as it
grows, its error when it failed (the message, never a blank page), the run it made, and cancel."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tailorlm.web import jobs
from tailorlm.web.common import dashboard, page, read_form, require
from tailorlm.workspace import Workspace

router = APIRouter()


def run_of(workspace: Workspace, job: jobs.Job) -> str | None:
    """The run a train job made: the run it resumes, else the first one registered after it started."""
    if job.kind != "train":
        return None
    if "--resume" in job.argv:
        return job.argv[job.argv.index("--resume") + 1]
    made = [run for run in workspace.registry.find("run") if run.created_at >= job.started_at[:19]]
    return made[-1].id if made else None


@router.get("/jobs")
async def job_list(request: Request) -> Response:
    return page(request, "jobs.html.jinja", jobs=jobs.list_jobs(dashboard(request).workspace))


@router.get("/jobs/{job_id}")
async def job_detail(request: Request, job_id: str) -> Response:
    workspace = dashboard(request).workspace
    job = jobs.get_job(workspace, job_id)
    return page(request, "job.html.jinja", job=job, log=jobs.log_tail(workspace, job_id), run=run_of(workspace, job))


@router.get("/api/jobs/{job_id}")
async def job_state(request: Request, job_id: str) -> JSONResponse:
    workspace = dashboard(request).workspace
    job = jobs.get_job(workspace, job_id)
    return JSONResponse(
        {**jobs.describe(job), "log": jobs.log_tail(workspace, job_id, 8000), "run": run_of(workspace, job)}
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str) -> Response:
    user = require(request, "editor")
    await read_form(request)
    await asyncio.to_thread(jobs.cancel, dashboard(request).workspace, job_id, user=user.name)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)
