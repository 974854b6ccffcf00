"""`GET /health`, `GET /v1/models`, `GET /v1/models/{model}` and the service root."""

from __future__ import annotations

from fastapi import APIRouter

from tailorlm.serve.errors import error_responses
from tailorlm.serve.routes.common import ChatCaller, Server, ServerState, generative_models, served_for
from tailorlm.serve.schemas import Health, ModelCard, ModelList, ServiceInfo

router = APIRouter()


@router.get("/health", response_model=Health, tags=["server"])
async def health(server: ServerState) -> Health:
    """Liveness: always answers while the server runs (no key needed)."""
    engine = server.engine
    names = [m.name for m in generative_models(server)] + list(server.classifiers)
    return Health(models=names, queued=engine.queued if engine else 0, stats=dict(engine.stats) if engine else {})


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401, 429), tags=["models"])
async def list_models(who: ChatCaller, server: ServerState) -> ModelList:
    """The models this key may use."""
    cards = [
        ModelCard(id=name, created=created)
        for name, created in _created(server).items()
        if who.models is None or name in who.models
    ]
    return ModelList(data=cards)


@router.get(
    "/v1/models/{model}", response_model=ModelCard, responses=error_responses(401, 403, 404, 429), tags=["models"]
)
async def get_model(model: str, who: ChatCaller, server: ServerState) -> ModelCard:
    if model in server.classifiers:
        who.check_model(model)
        return ModelCard(id=model, created=server.classifiers[model].created)
    served = served_for(server, model, who)
    return ModelCard(id=served.name, created=served.created)


def _created(server: Server) -> dict[str, int]:
    """Every served model, generative then classification, with when it was loaded."""
    return {
        **{m.name: m.created for m in generative_models(server)},
        **{name: classifier.created for name, classifier in server.classifiers.items()},
    }


@router.get("/", include_in_schema=False)
async def root() -> ServiceInfo:
    return ServiceInfo()
