"""Models (`/models`): registered versions with their card, evaluation and approval state; approve/reject
(four-eyes, through `tailorlm.governance`: whoever trained or registered a model can't approve it); deploy
to or undeploy from a running `tailorlm serve`; exports with their parity reports, and a new export as a
queued job."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tailorlm.errors import UserError
from tailorlm.governance import approval_state, approve, reject
from tailorlm.registry import Artifact, ModelMeta
from tailorlm.web import jobs
from tailorlm.web.common import PageError, dashboard, page, read_form, require
from tailorlm.workspace import Workspace

router = APIRouter()


def _model(workspace: Workspace, model_id: str) -> Artifact:
    artifact = workspace.lookup(model_id)
    if artifact.kind != "model":
        raise PageError(404, f"{model_id} is a {artifact.kind}, not a model")
    return artifact


def exports_of(workspace: Workspace, model: Artifact) -> list[dict[str, Any]]:
    found = []
    for label in {model.name, f"{model.name}-{model.version}", f"{model.name}@{model.version}"}:
        root = workspace.export_dir(label)
        for report in sorted(root.glob("*/export_report.json")) if root.is_dir() else []:
            data = json.loads(report.read_text("utf-8"))
            found.append({"folder": workspace.relative(report.parent), "report": data})
    return found


def _targets() -> list[str]:
    from tailorlm.export import TARGETS

    return sorted(TARGETS)


@router.get("/models")
async def models(request: Request) -> Response:
    workspace = dashboard(request).workspace
    found = workspace.registry.find("model")
    return page(request, "models.html.jinja", models=[(m, approval_state(workspace, m.id)) for m in found])


@router.get("/models/{model_id}")
async def model(request: Request, model_id: str) -> Response:
    workspace = dashboard(request).workspace
    artifact = _model(workspace, model_id)
    folder = workspace.path_of(artifact)
    card_file = folder / "MODEL_CARD.md"
    return page(
        request,
        "model.html.jinja",
        model=artifact,
        meta=artifact.meta_as(ModelMeta),
        card=card_file.read_text("utf-8") if card_file.is_file() else "",
        approval=approval_state(workspace, artifact.id),
        exports=exports_of(workspace, artifact),
        targets=_targets(),
        message=request.query_params.get("message", ""),
    )


@router.post("/models/{model_id}/decide")
async def approve_or_reject(request: Request, model_id: str) -> Response:
    user = require(request, "approver")
    form = await read_form(request)
    workspace = dashboard(request).workspace
    artifact = _model(workspace, model_id)
    note = form.get("note", "").strip()
    if form.get("decision") == "approve":
        approve(workspace, artifact.id, user=user.name, note=note or None)
    else:
        reject(workspace, artifact.id, user=user.name, reason=note)
    return RedirectResponse(f"/models/{artifact.id}", status_code=303)


@router.post("/models/{model_id}/export")
async def export(request: Request, model_id: str) -> Response:
    user = require(request, "editor")
    form = await read_form(request)
    workspace = dashboard(request).workspace
    artifact = _model(workspace, model_id)
    target = form.get("target", "")
    if target not in _targets():
        raise PageError(400, f"unknown export target {target!r}; targets: {', '.join(_targets())}")
    job = jobs.start(workspace, "export", [target, f"{artifact.name}@{artifact.version}"], user=user.name)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/models/{model_id}/deploy")
async def deploy(request: Request, model_id: str) -> Response:
    """Load this version into (or, with action=undeploy, unload its name from) a running `tailorlm serve`."""
    user = require(request, "approver")
    form = await read_form(request)
    workspace = dashboard(request).workspace
    artifact = _model(workspace, model_id)
    url, key = form.get("url", "").strip(), form.get("admin_key", "").strip() or None
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PageError(400, f"the server URL must start with http:// or https:// (got {url!r})")
    if form.get("action") == "undeploy":
        await asyncio.to_thread(_undeploy, url, artifact.name, key)
        workspace.audit.append("undeploy", inputs=[artifact.id], user=user.name, url=url)
        message = f"{artifact.name} unloaded from {url}"
    else:
        from tailorlm.serve import deploy as run_deploy

        await asyncio.to_thread(run_deploy, workspace, f"{artifact.name}@{artifact.version}", url=url, admin_key=key)
        workspace.audit.append("deploy.dashboard", inputs=[artifact.id], user=user.name, url=url)
        message = f"{artifact.name}@{artifact.version} is served at {url}"
    return RedirectResponse(f"/models/{artifact.id}?{urllib.parse.urlencode({'message': message})}", status_code=303)


def _undeploy(url: str, name: str, admin_key: str | None) -> None:
    target = urllib.parse.urljoin(url.rstrip("/") + "/", f"v1/adapters/{urllib.parse.quote(name)}")
    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
    request = urllib.request.Request(target, headers=headers, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except urllib.error.HTTPError as error:
        raise UserError(f"{url} refused to unload {name} ({error.code}): {error.reason}") from None
    except urllib.error.URLError as error:
        raise UserError(f"no server answers at {url}: {error.reason}") from None
