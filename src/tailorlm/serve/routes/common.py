"""What every route shares: the server's state (`Server`, on `app.state`), who is calling (API key,
scope, rate limit) as a FastAPI dependency, and the sampling settings a request may ask for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tailorlm.modeling import ModelRef
from tailorlm.serve.auth import InvalidKey, KeyStore
from tailorlm.serve.engine import Engine, SamplingParams, ServedModel
from tailorlm.serve.errors import APIError
from tailorlm.serve.limits import Limits, RateLimiter
from tailorlm.serve.schemas import SamplingFields


@dataclass
class Server:
    """The engine and the settings the routes answer with (see `create_app` for each); no engine when only
    classification models are served."""

    engine: Engine | None
    auth: KeyStore | None
    limits: Limits
    limiter: RateLimiter
    resolve_model: Callable[[str], ModelRef] | None = None
    audit: Callable[..., Any] | None = None
    feedback: Callable[[Any], Any] | None = None  # stores a FeedbackRecord (see routes/feedback.py)
    answers: Any = None  # RecentAnswers: the latest answers by completion id, for feedback
    logged_completion: Callable[[str], dict[str, Any] | None] = lambda completion_id: None
    classifiers: dict[str, Any] = field(default_factory=dict)  # name → tailorlm.classifier.Classifier


def server_of(request: Request) -> Server:
    return request.app.state.server


@dataclass(frozen=True)
class Caller:
    """Who is calling: their key (None without auth) and what it allows."""

    key_id: str | None
    scope: str
    models: tuple[str, ...] | None

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise APIError(
                403,
                f"this API key may only use: {', '.join(self.models)} (asked for {model!r})",
                code="model_not_allowed",
                param="model",
            )


bearer = HTTPBearer(auto_error=False, description="An API key from `tailorlm keys create`.")


def caller(scope: str) -> Callable[..., Any]:
    """A dependency that checks the API key (when the server has keys), its scope and its rate limit."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Caller:
        server = server_of(request)
        if server.auth is None:
            who = Caller(key_id=None, scope="admin", models=None)
            bucket = request.client.host if request.client else "local"
        else:
            if credentials is None:
                raise APIError(
                    401, "missing API key: send the header `Authorization: Bearer <key>`", code="missing_api_key"
                )
            try:
                key = server.auth.verify(credentials.credentials)
            except InvalidKey as error:
                raise APIError(401, str(error), code="invalid_api_key") from None
            who = Caller(key_id=key.id, scope=key.scope, models=key.models)
            bucket = key.id
            request.state.key_id = key.id
        if scope == "admin" and who.scope != "admin":
            raise APIError(
                403,
                "this API key has scope 'chat'; managing adapters needs an 'admin' key",
                code="insufficient_scope",
            )
        wait = server.limiter.take(bucket)
        if wait:
            raise APIError(
                429,
                f"rate limit of {server.limits.rate_limit_per_minute} requests per minute reached; "
                f"retry in {wait:.1f} s",
                code="rate_limit_exceeded",
                headers={"retry-after": server.limiter.retry_after(wait)},
            )
        return who

    return dependency


ServerState = Annotated[Server, Depends(server_of)]
ChatCaller = Annotated[Caller, Depends(caller("chat"))]
AdminCaller = Annotated[Caller, Depends(caller("admin"))]


def served_for(server: Server, model: str, who: Caller) -> ServedModel:
    """The served model a request names, if its key may use it."""
    who.check_model(model)
    if server.engine is None:
        raise APIError(
            404,
            f"model {model!r} can't generate here: this server serves only classification models "
            f"({', '.join(server.classifiers)}), through /v1/classify and /v1/chat/completions",
            code="model_not_found",
            param="model",
        )
    return server.engine.get(model)


def generative_models(server: Server) -> list[ServedModel]:
    return server.engine.models() if server.engine is not None else []


def sampling(server: Server, body: SamplingFields, served: ServedModel, prompt_tokens: int) -> SamplingParams:
    """The request's sampling settings, refused where unsupported and capped by the server and the context."""
    if body.n != 1:
        raise APIError(
            400,
            f"only n=1 is supported (got n={body.n}); send separate requests",
            param="n",
            code="unsupported_value",
        )
    if body.logprobs:
        raise APIError(400, "logprobs are not supported by this server", param="logprobs", code="unsupported_value")
    cap = server.limits.max_tokens_cap
    room = served.context_length - prompt_tokens
    return SamplingParams(
        max_tokens=min(body.requested_max_tokens() or cap, cap, room),
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stop_list(),
        ignore_eos=body.ignore_eos,
    )


def note(request: Request, **values: Any) -> None:
    """What the request log records for this request; a finished answer is also kept for feedback."""
    noted = request.scope.setdefault("state", {}).setdefault("log", {})
    noted.update(values)
    answers = server_of(request).answers
    if "completion_text" in values and answers is not None:
        answers.remember(noted, request.scope["state"].get("key_id"))
