"""API errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.

Each has a status code the official `openai` client maps to its exceptions:

| status | when | client exception |
|---|---|---|
| 400 | invalid JSON, unsupported option (`n` > 1), prompt longer than the context, bad adapter | BadRequestError |
| 401 | missing, malformed, unknown or revoked API key | AuthenticationError |
| 403 | key scope or model list does not allow this | PermissionDeniedError |
| 404 | unknown model, adapter, or path | NotFoundError |
| 405 | a method the path does not have (`Allow` names those it has; OPTIONS gets 204) | APIStatusError |
| 409 | adapter name already served (without `replace`) | ConflictError |
| 413 | request body over the limit | APIStatusError (413) |
| 422 | body is JSON but breaks the schema (wrong type, negative `max_tokens`...) | UnprocessableEntityError |
| 429 | rate limit (with `retry-after`) | RateLimitError |
| 500 | a bug; the message names the exception, the server stays up | InternalServerError |
| 503 | request queue full or shutting down (with `retry-after`) | InternalServerError |
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tailorlm.formats.templates import TemplateError
from tailorlm.governance import NotApproved
from tailorlm.serve.engine import AdapterConflict, AdapterError, Overloaded, PromptTooLong, UnknownModel
from tailorlm.serve.schemas import ErrorResponse
from tailorlm.workspace import NotFound

logger = logging.getLogger(__name__)

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}


class APIError(Exception):
    """An error response: status, message, and OpenAI's type/param/code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_ or TYPES.get(status, "server_error")
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: these error statuses, documented with the error schema."""
    return {status: {"model": ErrorResponse, "description": TYPES.get(status, "server_error")} for status in statuses}


def as_api_error(error: BaseException) -> APIError:
    """The API error for an exception from the engine or the workspace (500 for anything else)."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, UnknownModel | NotFound):
        return APIError(404, str(error), code="model_not_found", param="model")
    if isinstance(error, NotApproved):
        return APIError(403, str(error), code="not_approved", param="model")
    if isinstance(error, PromptTooLong):
        return APIError(400, str(error), code="context_length_exceeded", param="messages")
    if isinstance(error, Overloaded):
        return APIError(503, str(error), code="overloaded", headers={"retry-after": "1"})
    if isinstance(error, AdapterConflict):
        return APIError(409, str(error), code="adapter_exists", param="name")
    if isinstance(error, AdapterError):
        return APIError(400, str(error), code="adapter_error", param="model")
    if isinstance(error, TemplateError):
        return APIError(400, str(error), code="invalid_messages", param="messages")
    logger.error("internal error", exc_info=error)
    return APIError(
        500, f"internal error ({type(error).__name__}); the server logs have the details", code="internal_error"
    )


def _validation_error(error: RequestValidationError) -> APIError:
    problems = error.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        detail = next(p for p in problems if p.get("type") == "json_invalid")
        return APIError(
            400,
            f"the request body is not valid JSON: {detail.get('ctx', {}).get('error', detail['msg'])}",
            code="invalid_json",
        )
    messages, param = [], None
    for problem in problems[:5]:
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        field = ".".join(location) or "body"
        param = param or field
        messages.append(f"{field}: {problem.get('msg', 'invalid')}")
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return APIError(422, "; ".join(messages) + more, code="invalid_value", param=param)


def allowed_methods(request: Request) -> list[str]:
    """The methods the app answers on this request's path (a path has one route per method), with
    OPTIONS, which every path answers; from the routes `create_app` lists in `app.state.routes`."""
    methods = {"OPTIONS"}
    path = request.url.path
    for route in getattr(request.app.state, "routes", ()):
        if route.path_regex.match(path):
            methods.update(route.methods or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, error: Exception) -> JSONResponse:
        return as_api_error(error).response()

    async def validation(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _validation_error(error).response()

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        headers = getattr(error, "headers", None)
        if error.status_code == 405:  # name every method of the path, not only the first route's
            allow = {"Allow": ", ".join(allowed_methods(request))}
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=allow)
            headers = {**(headers or {}), **allow}
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        return APIError(error.status_code, str(error.detail), code=code, headers=headers).response()

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for kind in (APIError, UnknownModel, NotFound, PromptTooLong, Overloaded, AdapterError, TemplateError, Exception):
        app.add_exception_handler(kind, api_error)
