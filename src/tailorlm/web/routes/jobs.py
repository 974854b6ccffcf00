"""Jobs (`/jobs`): the queued jobs (from the dashboard or `tailorlm jobs submit`), each with its status, its log as it
grows, its error when it failed (the message, never a blank page), the run it made, and cancel."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tailorlm.web import jobs
from tailorlm.web.common import dashboard, page, read_form, require

router = APIRouter()


@router.get("/jobs")
async def job_list(request: Request) -> Response:
    return page(request, "jobs.html.jinja", jobs=jobs.list_jobs(dashboard(request).workspace))


@router.get("/jobs/{job_id}")
async def job_detail(request: Request, job_id: str) -> Response:
    workspace = dashboard(request).workspace
    job = jobs.get_job(workspace, job_id)
    return page(request, "job.html.jinja", job=job, log=jobs.log_tail(workspace, job_id), run=job.run)


@router.get("/api/jobs/{job_id}")
async def job_state(request: Request, job_id: str) -> JSONResponse:
    workspace = dashboard(request).workspace
    job = jobs.get_job(workspace, job_id)
    return JSONResponse({**job.to_json(), "log": jobs.log_tail(workspace, job_id, 8000)})


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str) -> Response:
    user = require(request, "editor")
    await read_form(request)
    await asyncio.to_thread(jobs.cancel, dashboard(request).workspace, job_id, user=user.name)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)
