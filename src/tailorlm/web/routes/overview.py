"""The overview (`/`): the project, its sources, the journey strip with what is stale, the next action."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tailorlm.web.common import dashboard, page
from tailorlm.web.journey import journey, next_action
from tailorlm.web.projects import load_workspace_project

router = APIRouter()


@router.get("/")
async def overview(request: Request) -> Response:
    workspace = dashboard(request).workspace
    project, problem = load_workspace_project(workspace)
    stages = journey(workspace, project)
    action, link = next_action(stages)
    return page(
        request,
        "overview.html.jinja",
        project=project,
        problem=problem,
        stages=stages,
        action=action,
        action_link=link,
        workspace=workspace,
    )
