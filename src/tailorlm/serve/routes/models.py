"""`GET /health`, `GET /v1/models`, `GET /v1/models/{model}` and the service root."""

from __future__ import annotations

from fastapi import APIRouter

from tailorlm.serve.errors import error_responses
from tailorlm.serve.routes.common import ChatCaller, ServerState, served_for
from tailorlm.serve.schemas import Health, ModelCard, ModelList, ServiceInfo

router = APIRouter()


@router.get("/health", response_model=Health, tags=["server"])
async def health(server: ServerState) -> Health:
    """Liveness: always answers while the server runs (no key needed)."""
    engine = server.engine
    return Health(models=engine.names(), queued=engine.queued, stats=dict(engine.stats))


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401, 429), tags=["models"])
async def list_models(who: ChatCaller, server: ServerState) -> ModelList:
    """The models this key may use."""
    cards = [
        ModelCard(id=m.name, created=m.created)
        for m in server.engine.models()
        if who.models is None or m.name in who.models
    ]
    return ModelList(data=cards)


@router.get(
    "/v1/models/{model}", response_model=ModelCard, responses=error_responses(401, 403, 404, 429), tags=["models"]
)
async def get_model(model: str, who: ChatCaller, server: ServerState) -> ModelCard:
    served = served_for(server, model, who)
    return ModelCard(id=served.name, created=served.created)


@router.get("/", include_in_schema=False)
async def root() -> ServiceInfo:
    return ServiceInfo()
