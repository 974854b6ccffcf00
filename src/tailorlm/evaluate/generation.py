"""Answers from local models (the base model, or a run's adapter or full weights) generating in
batches, and each local model's held-out loss on the reference answers. Endpoint candidates are in
`endpoints.py`.

Local generation renders each conversation with the same chat template as training
(`formats.templates.render`), pads on the left, decodes greedily by default and cuts the answer at
the template's stop strings. Answers and losses are cached (`cache.py`), and a model is loaded only
when something is missing from the cache.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from tailorlm.evaluate.cache import GenerationCache, cache_key
from tailorlm.formats.examples import Example
from tailorlm.formats.templates import render, stop_strings, tokenize_example
from tailorlm.progress import SILENT, Progress

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Decoding:
    """Decoding settings shared by every candidate (greedy unless `temperature` > 0)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GeneratedAnswer:
    """One answer: the text (cut at the stop string) and how generation ended."""

    text: str
    tokens: int = 0
    finished: bool = True  # False: the token budget ran out before a stop
    prompt_truncated: bool = False
    cached: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": self.tokens,
            "finished": self.finished,
            "prompt_truncated": self.prompt_truncated,
        }


def _device_and_dtype() -> tuple[str, Any]:
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


class LocalModel:
    """A base model or a trained run, loaded on first need.

    Args:
        name: Label in progress messages (`base`, a run id).
        base_model: The base model folder.
        artifact_dir: A run's `adapter/` or `model/` folder; None for the base model itself.
        fingerprint: Identity of the weights for the cache (see `cache.model_fingerprint`).
    """

    def __init__(self, name: str, base_model: Path, artifact_dir: Path | None, fingerprint: str) -> None:
        from tailorlm.modeling import load_tokenizer

        self.name = name
        self.base_model = Path(base_model)
        self.artifact_dir = Path(artifact_dir) if artifact_dir else None
        self.fingerprint = fingerprint
        has_tokenizer = self.artifact_dir is not None and any(
            (self.artifact_dir / name).is_file()
            for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
        )
        self.tokenizer = load_tokenizer(self.artifact_dir if has_tokenizer and self.artifact_dir else self.base_model)
        self.device, self.dtype = _device_and_dtype()
        self._model: Any = None
        self.stops = stop_strings(self.tokenizer)
        self.generated = 0  # answers actually generated (not served from the cache)

    @property
    def model(self) -> Any:
        if self._model is None:
            from transformers import AutoModelForCausalLM

            from tailorlm.modeling import load_trained

            if self.artifact_dir is None:
                self._model = (
                    AutoModelForCausalLM.from_pretrained(self.base_model, local_files_only=True, dtype=self.dtype)
                    .to(self.device)
                    .eval()
                )
            else:
                self._model, _ = load_trained(self.artifact_dir, self.base_model, device=self.device, dtype=self.dtype)
        return self._model

    def unload(self) -> None:
        if self._model is not None:
            import torch

            self._model = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @property
    def settings_key(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": str(self.dtype)}

    def max_positions(self) -> int:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(
            self.artifact_dir if self._has_config() else self.base_model, local_files_only=True
        )
        return int(getattr(config, "max_position_embeddings", 0) or 4096)

    def _has_config(self) -> bool:
        return self.artifact_dir is not None and (self.artifact_dir / "config.json").is_file()

    # --- generation -------------------------------------------------------------------------------
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
        """Answer each conversation; cached answers are reused and new ones stored.

        `progress` counts the answers generated (not those from the cache) under `label`."""
        prompts = [render(self.tokenizer, list(c), add_generation_prompt=True) for c in conversations]
        settings = {**decoding.to_json(), **self.settings_key}
        keys = [cache_key("generate", self.fingerprint, p, settings) for p in prompts]
        found = cache.get_many(keys) if cache is not None else {}
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            texts = {k: p for k, p in zip(keys, prompts, strict=True)}
            fresh = self.generate(
                [texts[k] for k in missing],
                decoding,
                batch_size=batch_size,
                progress=progress,
                label=_label(label or self.name, len(keys) - len(missing)),
            )
            self.generated += len(fresh)
            new = {k: g.to_json() for k, g in zip(missing, fresh, strict=True)}
            if cache is not None:
                cache.put_many(new.items())
            found.update(new)
        elif keys:
            progress.say(f"    generate {label or self.name}: all {len(keys)} answers from the cache")
        results = []
        for key in keys:
            results.append(GeneratedAnswer(**found[key], cached=key not in missing))
        return results

    def generate(
        self,
        prompts: Sequence[str],
        decoding: Decoding,
        *,
        batch_size: int,
        progress: Progress = SILENT,
        label: str | None = None,
    ) -> list[GeneratedAnswer]:
        """Generate for rendered prompts, `batch_size` at a time (longest first, left-padded)."""
        import torch

        tokenizer = self.tokenizer
        limit = max(8, self.max_positions() - decoding.max_new_tokens)
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        stop_ids = {tokenizer.eos_token_id}
        for stop in self.stops:
            ids = tokenizer(stop, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                stop_ids.add(ids[0])
        stop_ids.discard(None)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        results: list[GeneratedAnswer | None] = [None] * len(prompts)
        model = self.model
        if decoding.temperature > 0:
            torch.manual_seed(decoding.seed)
        sampling = (
            {"do_sample": True, "temperature": decoding.temperature}
            if decoding.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with progress.task(f"generate {label or self.name}", total=len(prompts), unit="answers") as task:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                rows = [encoded[i][-limit:] for i in batch]
                width = max(len(r) for r in rows)
                input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(rows), width), dtype=torch.long)
                for r, row in enumerate(rows):
                    input_ids[r, width - len(row) :] = torch.tensor(row)
                    attention[r, width - len(row) :] = 1
                with torch.inference_mode():
                    output = model.generate(
                        input_ids=input_ids.to(self.device),
                        attention_mask=attention.to(self.device),
                        max_new_tokens=decoding.max_new_tokens,
                        eos_token_id=sorted(stop_ids),
                        pad_token_id=pad_id,
                        **sampling,
                    )
                for r, index in enumerate(batch):
                    new = output[r, width:].tolist()
                    results[index] = self._decode(new, stop_ids, pad_id, truncated=len(encoded[index]) > limit)
                task.advance(len(batch), tokens=sum(answer.tokens for i in batch if (answer := results[i]) is not None))
        return [r for r in results if r is not None]

    def _decode(self, ids: list[int], stop_ids: set[int], pad_id: int, *, truncated: bool) -> GeneratedAnswer:
        finished = False
        for position, token in enumerate(ids):
            if token in stop_ids:
                ids, finished = ids[:position], True
                break
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        for stop in self.stops:
            if stop in text:
                text, finished = text.split(stop, 1)[0], True
        for special in self.tokenizer.all_special_tokens:
            text = text.replace(special, "")
        return GeneratedAnswer(text=text.strip(), tokens=len(ids), finished=finished, prompt_truncated=truncated)

    # --- held-out loss ----------------------------------------------------------------------------
    def losses(
        self,
        items: Sequence[tuple[Messages, str | None]],
        *,
        batch_size: int,
        cache: GenerationCache | None = None,
        progress: Progress = SILENT,
        label: str | None = None,
    ) -> list[tuple[float, int] | None]:
        """Summed negative log-likelihood and token count of each reference answer after its prompt,
        with training's loss mask (assistant tokens only); None for items without a reference."""
        max_length = self.max_positions()
        examples: list[Example | None] = []
        for messages, expected in items:
            ok = expected is not None and expected.strip()
            examples.append(Example(messages=[*messages, {"role": "assistant", "content": expected}]) if ok else None)
        settings = {"max_length": max_length, **self.settings_key}
        keys = [cache_key("loss", self.fingerprint, e.content_key(), settings) if e else None for e in examples]
        found = cache.get_many([k for k in keys if k]) if cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k and k not in found]
        if todo:
            computed = self._compute_losses(
                cast("list[Example]", [examples[i] for i in todo]),  # a key means an example
                max_length,
                max(1, batch_size // 2),
                progress,
                label or self.name,
            )
            new = {cast(str, keys[i]): value for i, value in zip(todo, computed, strict=True)}
            if cache is not None:
                cache.put_many(new.items())
            found.update(new)
        return [tuple(found[k]) if k else None for k in keys]

    def _compute_losses(
        self, examples: list[Example], max_length: int, batch_size: int, progress: Progress, label: str
    ) -> list[list[float]]:
        import torch

        tokenized = [tokenize_example(self.tokenizer, e, max_length) for e in examples]
        order = sorted(range(len(examples)), key=lambda i: -len(tokenized[i].input_ids))
        out: list[list[float]] = [[0.0, 0]] * len(examples)
        pad_id = self.tokenizer.pad_token_id or 0
        model = self.model
        with progress.task(f"loss {label}", total=len(order), unit="answers") as task:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                width = max(len(tokenized[i].input_ids) for i in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for r, i in enumerate(batch):
                    n = len(tokenized[i].input_ids)
                    ids[r, :n] = torch.tensor(tokenized[i].input_ids)
                    labels[r, :n] = torch.tensor(tokenized[i].labels)
                    attention[r, :n] = 1
                with torch.inference_mode():
                    logits = model(input_ids=ids.to(self.device), attention_mask=attention.to(self.device)).logits
                    shifted = labels[:, 1:].to(self.device)
                    mask = shifted != -100
                    picked = logits[:, :-1][mask].float()
                    nll = torch.nn.functional.cross_entropy(picked, shifted[mask], reduction="none")
                    rows = mask.nonzero()[:, 0]
                    sums = torch.zeros(len(batch), device=nll.device).index_add_(0, rows, nll)
                    counts = mask.sum(dim=1)
                for r, i in enumerate(batch):
                    out[i] = [float(sums[r]), int(counts[r])]
                task.advance(len(batch), tokens=int(attention.sum()))
        return out


def _label(name: str, cached: int) -> str:
    return f"{name} ({cached} from the cache)" if cached else name


def loss_summary(values: Sequence[tuple[float, int] | None]) -> dict[str, float]:
    """Token-weighted mean loss and its perplexity over the items that have a reference."""
    total = math.fsum(v[0] for v in values if v)
    tokens = sum(v[1] for v in values if v)
    if not tokens:
        return {}
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700)), "tokens": tokens}
