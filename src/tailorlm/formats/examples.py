"""The Example: one training or evaluation item, as stored in `datasets/<name>/<version>/*.jsonl`.

A chat example holds `messages` (system/user/assistant); a continued-pretraining example holds
`text`. Classification and extraction are chat examples whose last assistant turn is the label or
the JSON, with `label` (or `meta.fields`) kept for metrics. `source` names the document an example
came from, so splits never put one document on both sides.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = ""
    messages: list[Message] | None = None
    text: str | None = None
    label: str | None = None
    source: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Example:
        if (self.messages is None) == (self.text is None):
            raise ValueError("an example has either `messages` or `text`, not both or neither")
        if self.messages is not None:
            if not any(m.role == "assistant" for m in self.messages):
                raise ValueError("a chat example needs at least one assistant message")
            if self.messages[-1].role != "assistant":
                raise ValueError("the last message must be the assistant's (the target)")
            if not self.messages[-1].content.strip():
                raise ValueError("the assistant's answer is empty")
        elif not (self.text or "").strip():
            raise ValueError("`text` is empty")
        if not self.id:
            self.id = hashlib.sha256(self.content_key().encode()).hexdigest()[:16]
        return self

    @classmethod
    def chat(
        cls,
        *,
        user: str,
        assistant: str,
        system: str | None = None,
        source: str = "",
        label: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Example:
        messages = [Message(role="system", content=system)] if system else []
        messages += [Message(role="user", content=user), Message(role="assistant", content=assistant)]
        return cls(messages=messages, source=source, label=label, meta=meta or {})

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def prompt(self) -> list[dict[str, str]]:
        """The messages before the final answer (what a model is asked at evaluation)."""
        assert self.messages is not None
        return [m.model_dump() for m in self.messages[:-1]]

    @property
    def target(self) -> str:
        """The final answer (or the whole text for continued pretraining)."""
        return self.messages[-1].content if self.messages is not None else (self.text or "")

    @property
    def input_text(self) -> str:
        """The last user turn: what near-duplicate and leakage checks compare."""
        if self.messages is None:
            return self.text or ""
        users = [m.content for m in self.messages if m.role == "user"]
        return users[-1] if users else ""

    def content_key(self) -> str:
        if self.messages is not None:
            return json.dumps([[m.role, m.content] for m in self.messages], ensure_ascii=False)
        return self.text or ""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_defaults=False)
