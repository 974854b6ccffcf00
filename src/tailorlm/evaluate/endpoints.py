"""Candidates behind OpenAI-compatible endpoints (a model served elsewhere on the premises), asked
with the same conversations and decoding as the local models, through the official `openai` client.
The host must be loopback or in the project's `allow_hosts`; an endpoint that is down or lists no
model is an `EvalError` before anything is generated. The judge uses the same client."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from tailorlm.evaluate.cache import GenerationCache
from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.generation import Decoding, Generation, Messages, Progress


def endpoint_host(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise EvalError(f"endpoint {url!r} is not an http(s) URL like http://127.0.0.1:8000/v1")
    return parsed.hostname


def openai_client(url: str, *, api_key: str | None = None, timeout: float = 120.0) -> Any:
    """An `openai` client for a local OpenAI-compatible endpoint, after checking its host."""
    from openai import OpenAI

    from tailorlm.offline import NetworkRefused, check_host

    try:
        check_host(endpoint_host(url))
    except NetworkRefused as error:
        raise EvalError(f"endpoint {url}: {error}") from None
    return OpenAI(base_url=url, api_key=api_key or "not-needed", max_retries=0, timeout=timeout)


def first_model(client: Any, url: str) -> str:
    """The first model an endpoint lists; a clear error when the endpoint can't be reached."""
    try:
        models = client.models.list()
    except Exception as error:  # openai raises APIConnectionError, APIStatusError...
        raise EvalError(f"endpoint {url} can't be reached: {type(error).__name__}: {error}") from None
    names = [m.id for m in models.data]
    if not names:
        raise EvalError(f"endpoint {url} lists no model")
    return names[0]


class EndpointModel:
    """A candidate behind an OpenAI-compatible endpoint, asked with the same decoding settings."""

    def __init__(self, name: str, url: str, *, model: str | None = None, api_key: str | None = None) -> None:
        self.name = name
        self.url = url
        self.client = openai_client(url, api_key=api_key)
        self.model_name = model or first_model(self.client, url)
        self.generated = 0

    def answer(
        self,
        conversations: Sequence[Messages],
        decoding: Decoding,
        *,
        batch_size: int,
        cache: GenerationCache | None = None,
        progress: Progress | None = None,
    ) -> list[Generation]:
        done = 0

        def ask(messages: Messages) -> Generation:
            nonlocal done
            try:
                response = self.client.chat.completions.create(
                    model=self.model_name,
                    messages=messages,
                    max_tokens=decoding.max_new_tokens,
                    temperature=decoding.temperature,
                    seed=decoding.seed,
                )
            except Exception as error:  # one failed request is a failed item, not a failed evaluation
                return Generation(text="", finished=False, error=f"{type(error).__name__}: {error}"[:300])
            finally:
                done += 1
                if progress:
                    progress(f"generate {self.name}", done, len(conversations))
            choice = response.choices[0]
            tokens = getattr(response.usage, "completion_tokens", 0) if response.usage else 0
            return Generation(
                text=(choice.message.content or "").strip(),
                tokens=tokens or 0,
                finished=choice.finish_reason != "length",
            )

        with ThreadPoolExecutor(max_workers=max(1, min(batch_size, 8))) as pool:
            results = list(pool.map(ask, conversations))
        self.generated += len(results)
        failures = [r.error for r in results if r.error]
        if failures and len(failures) == len(results):
            raise EvalError(f"endpoint {self.url} answered no request: {failures[0]}")
        return results

    def unload(self) -> None:
        self.client.close()
