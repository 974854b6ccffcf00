"""Adapters, for admin keys: `GET|POST /v1/adapters` and `DELETE /v1/adapters/{name}` — serve a
registered model under a name without restarting, or stop serving it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tailorlm.serve.errors import APIError, error_responses
from tailorlm.serve.routes.common import AdminCaller, ServerState, generative_models, note
from tailorlm.serve.schemas import AdapterInfo, AdapterList, AdapterRequest, Deleted
from tailorlm.workspace import NotFound

router = APIRouter(tags=["adapters"])


@router.get("/v1/adapters", response_model=AdapterList, responses=error_responses(401, 403, 429))
async def list_adapters(who: AdminCaller, server: ServerState) -> AdapterList:
    """Every served model with where it came from (admin)."""
    return AdapterList(data=[AdapterInfo(**m.describe()) for m in generative_models(server)])


@router.post(
    "/v1/adapters",
    response_model=AdapterInfo,
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429, 500, 503),
)
async def load_adapter(body: AdapterRequest, request: Request, who: AdminCaller, server: ServerState) -> AdapterInfo:
    """Serve a registered model under `name` without restarting (admin)."""
    note(request, model=body.name)
    if server.resolve_model is None:
        raise APIError(400, "this server has no workspace to load registered models from", code="no_workspace")
    if server.engine is None:
        raise APIError(
            400,
            "this server serves only classification models: it has no base model to load adapters on; "
            "restart `tailorlm serve` with a generative model too",
            code="no_engine",
        )
    try:
        ref = server.resolve_model(body.model)
    except NotFound:
        raise  # a 404 that names the known models (see errors.as_api_error)
    except KeyError:  # a run id that is not in the registry
        raise APIError(
            404,
            f"no registered model or run {body.model!r} in the server's workspace",
            code="model_not_found",
            param="model",
        ) from None
    served = await run_in_threadpool(server.engine.load, body.name, ref, replace=body.replace)
    if server.audit is not None:
        server.audit(
            "serve.adapter.load", inputs=[served.source], name=body.name, key_id=who.key_id, replace=body.replace
        )
    return AdapterInfo(**served.describe())


@router.delete("/v1/adapters/{name}", response_model=Deleted, responses=error_responses(400, 401, 403, 404, 429))
async def unload_adapter(name: str, request: Request, who: AdminCaller, server: ServerState) -> Deleted:
    """Stop serving `name`; its memory is freed when its last request ends (admin)."""
    note(request, model=name)
    if server.engine is None:
        raise APIError(404, f"model {name!r} is not an adapter served here", code="model_not_found", param="model")
    await run_in_threadpool(server.engine.unload, name)
    if server.audit is not None:
        server.audit("serve.adapter.unload", name=name, key_id=who.key_id)
    return Deleted(id=name)
