"""Request and response bodies of the OpenAI-compatible API (pydantic), as the OpenAPI schema shows them.

Fields the server does not implement are ignored, as OpenAI-compatible servers commonly do, except
those whose silent absence would change the answer (`n` > 1, `logprobs`, tools): they get a 400.

The schema states every limit the server enforces (one answer, at most 8 stop strings, one prompt,
an adapter name other than `base`...), and types are strict: `0` is not a boolean, `"10"` is not an
integer (422), so what a client sends is what the server reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    model_serializer,
)

MAX_STOP_SEQUENCES = 8
STRICT = ConfigDict(extra="ignore", strict=True)
NonEmpty = Annotated[str, Field(min_length=1)]


def not_text_or_boolean(value: Any) -> Any:
    """Refuse `"10"` and `true` where an integer is expected (the integer types below)."""
    if isinstance(value, str | bool):
        raise ValueError(f"Input should be an integer, not a {'boolean' if isinstance(value, bool) else 'string'}")
    return value


# An integer as JSON Schema has it: `10` or `10.0`, never `"10"` or `true` (strict mode alone would refuse 10.0).
Integer = Annotated[int, Strict(False), BeforeValidator(not_text_or_boolean)]
PositiveInteger = Annotated[int, Strict(False), annotated_types.Ge(1), BeforeValidator(not_text_or_boolean)]


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, in words; names the field when one is at fault.")
    type: str = Field(description="Error family, e.g. invalid_request_error, authentication_error.")
    param: str | None = Field(None, description="The request field at fault, if any.")
    code: str | None = Field(None, description="A stable machine-readable code, e.g. model_not_found.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class TextPart(BaseModel):
    model_config = STRICT

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = STRICT

    role: Literal["system", "developer", "user", "assistant"] = Field(description="Who speaks.")
    content: str | list[TextPart] = Field(description="The text, or a list of text parts (joined).")
    name: str | None = Field(None, description="Ignored; accepted for compatibility.")

    def as_template_message(self) -> dict[str, str]:
        """The message as the chat template takes it (`developer` is OpenAI's newer word for system)."""
        content = self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": content}


class StreamOptions(BaseModel):
    model_config = STRICT

    include_usage: bool = Field(False, description="Send a last chunk with the token counts.")


class SamplingFields(BaseModel):
    """Fields shared by chat and text completions."""

    model_config = STRICT

    model: str = Field(description="A served model: `base` or a registered model's served name.", examples=["base"])
    max_tokens: PositiveInteger | None = Field(
        None,
        description="Most tokens to generate (at least 1); a larger value is lowered to the server's cap "
        "(`max_tokens_cap`) and to the room left in the model's context.",
    )
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 is greedy; higher is more random.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Sample only from the smallest top set with this mass.")
    stop: NonEmpty | Annotated[list[NonEmpty], Field(max_length=MAX_STOP_SEQUENCES)] | None = Field(
        None, description=f"Up to {MAX_STOP_SEQUENCES} non-empty strings that end the answer (not included in it)."
    )
    seed: Integer | None = Field(None, description="Makes sampling reproducible (same request, same seed, same text).")
    n: Integer = Field(1, ge=1, description="Number of answers; only 1 is supported.", json_schema_extra={"maximum": 1})
    stream: bool = Field(False, description="Send the answer as server-sent events while it is generated.")
    stream_options: StreamOptions | None = Field(None, description="Streaming options.")
    logprobs: bool | Integer | None = Field(
        None,
        description="Not supported; must be absent, null, false or 0.",
        json_schema_extra={
            "anyOf": [{"type": "boolean", "enum": [False]}, {"type": "integer", "enum": [0]}, {"type": "null"}]
        },
    )
    user: str | None = Field(None, description="Ignored; accepted for compatibility.")
    ignore_eos: bool = Field(False, description="Extension (as in vLLM): keep generating past end-of-text.")

    def stop_list(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    max_completion_tokens: PositiveInteger | None = Field(None, description="Newer name for max_tokens (wins if both).")
    tools: list[Any] | None = Field(
        None, description="Not supported; must be absent or empty.", json_schema_extra={"maxItems": 0}
    )

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingFields):
    prompt: str | Annotated[list[str], Field(json_schema_extra={"minItems": 1, "maxItems": 1})] = Field(
        description="The text to continue (a list must hold exactly one string)."
    )
    echo: bool = Field(False, description="Not supported; must be false.", json_schema_extra={"enum": [False]})
    suffix: str | None = Field(
        None, description="Not supported; must be absent, null or empty.", json_schema_extra={"maxLength": 0}
    )


class AdapterRequest(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")  # the name's pattern needs a lookahead

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^(?!base$)[A-Za-z0-9][A-Za-z0-9._@:-]*$",
        description="The name clients will put in `model`: letters, digits and `._@:-`, not `base` (the base model).",
        examples=["acme"],
    )
    model: str = Field(
        min_length=1,
        max_length=256,
        description="A registered model (`name`, `name@vN`) or run id in the server's workspace.",
        examples=["acme@v1"],
    )
    replace: bool = Field(False, description="Swap an adapter already served under this name.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    """The new part of a streamed chat answer; fields that did not change are left out (`{}` at the end)."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _changed_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    finish_reason: str | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat answer; `usage` only in the last one, when asked for."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage


class CompletionChunk(BaseModel):
    """One server-sent event of a streamed text completion; `usage` only in the last one, when asked for."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tailorlm"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AdapterInfo(BaseModel):
    name: str
    kind: str = Field(description="adapter, full or base.")
    source: str | None = Field(None, description="The registered model or run it was loaded from.")
    context_length: int


class AdapterList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdapterInfo]


class Deleted(BaseModel):
    id: str
    object: Literal["adapter"] = "adapter"
    deleted: bool = True


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: list[str] = Field(description="Served model names.")
    queued: int = Field(description="Requests waiting for the generation thread.")
    stats: dict[str, int] = Field(description="Batches, requests, tokens generated, cancelled requests.")


class ServiceInfo(BaseModel):
    service: Literal["tailorlm"] = "tailorlm"
    docs: str = "/docs"
    openapi: str = "/openapi.json"
