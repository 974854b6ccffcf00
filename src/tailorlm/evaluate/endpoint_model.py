"""Candidates behind OpenAI-compatible endpoints (a model served elsewhere on the premises), asked
with the same conversations and decoding as the local models, through the shared client in
`tailorlm.endpoints`. The host must be loopback or in the project's `allow_hosts`; an endpoint that
is down or lists no model is an `EvalError` before anything is generated."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tailorlm.endpoints import EndpointError, first_model, openai_client
from tailorlm.evaluate.cache import GenerationCache
from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.generation import Decoding, GeneratedAnswer, Messages
from tailorlm.progress import SILENT, Progress


class EndpointModel:
    """A candidate behind an OpenAI-compatible endpoint, asked with the same decoding settings."""

    def __init__(self, name: str, url: str, *, model: str | None = None, api_key: str | None = None) -> None:
        self.name = name
        self.url = url
        try:
            self.client = openai_client(url, api_key=api_key)
            self.model_name = model or first_model(self.client, url)
        except EndpointError as error:
            raise EvalError(str(error)) from None
        self.generated = 0

    def answer(
        self,
        conversations: Sequence[Messages],
        decoding: Decoding,
        *,
        batch_size: int,
        cache: GenerationCache | None = None,
        progress: Progress = SILENT,
        label: str | None = None,
    ) -> list[GeneratedAnswer]:
        task = progress.task(f"generate {label or self.name}", total=len(conversations), unit="answers")

        def ask(messages: Messages) -> GeneratedAnswer:
            tokens = 0
            try:
                response = self.client.chat.completions.create(
                    model=self.model_name,
                    messages=messages,
                    max_tokens=decoding.max_new_tokens,
                    temperature=decoding.temperature,
                    seed=decoding.seed,
                )
            except Exception as error:  # one failed request is a failed item, not a failed evaluation
                return GeneratedAnswer(text="", finished=False, error=f"{type(error).__name__}: {error}"[:300])
            else:
                tokens = (getattr(response.usage, "completion_tokens", 0) if response.usage else 0) or 0
            finally:
                task.advance(1, tokens=tokens)
            choice = response.choices[0]
            return GeneratedAnswer(
                text=(choice.message.content or "").strip(),
                tokens=tokens or 0,
                finished=choice.finish_reason != "length",
            )

        with task, ThreadPoolExecutor(max_workers=max(1, min(batch_size, 8))) as pool:
            results = list(pool.map(ask, conversations))
        self.generated += len(results)
        failures = [r.error for r in results if r.error]
        if failures and len(failures) == len(results):
            raise EvalError(f"endpoint {self.url} answered no request: {failures[0]}")
        return results

    def unload(self) -> None:
        self.client.close()
