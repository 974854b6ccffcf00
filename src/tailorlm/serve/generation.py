"""One batch of generation on `model.generate`, with per-request settings the batch can't share.

`model.generate` runs the model (padding, KV cache, position ids for any architecture); two small
hooks make each row of the batch its own request:

* `RowSampler` (a logits processor) samples each row with its own temperature, top-p and
  `torch.Generator` (so `seed` reproduces a request) and leaves greedy rows (temperature 0) alone;
  generate itself runs greedy and so picks exactly the sampled token. Sampling is safe for every
  setting the API accepts (a tiny temperature or top-p tends to greedy, never to NaN), and a row
  whose sampling or decoding fails ends alone with a `Failed` event while its batch carries on.
* `BatchDecoder` (a stopping criterion, called after every step) turns each row's new token into
  text, cuts stop sequences, counts tokens, honours `max_tokens` and cancellation, and tells
  generate which rows are finished. Generate stops when every row is, or when the engine asks to
  regroup the batch so that newly arrived requests can join it: the unfinished rows then carry on in
  a new batch from their prompt plus what they have generated (one prefill), with their state
  (text, counts, random generator) intact.

Text is decoded incrementally (only the tail of the sequence is re-decoded each step), and text that
could still become a stop sequence is held back, so a client never sees part of a stop string.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, StoppingCriteria

FinishReason = str  # "stop" | "length" | "cancelled" | "error" (a `Failed` event was sent)


@dataclass(frozen=True)
class SamplingParams:
    """How one request is generated (already validated and capped by the API layer)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


@dataclass
class Delta:
    """New text for a request (may be empty when only the token count moved)."""

    text: str


@dataclass
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Failed:
    error: BaseException


Event = Delta | Finished | Failed


@dataclass(eq=False)
class Job:
    """One request waiting for, or in, a batch. `emit` is called on the generation thread."""

    model_key: str
    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[Event], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)
    on_done: Callable[[], None] | None = None
    # Seconds between Delta events (text in between is joined): 0 sends every piece as it comes,
    # math.inf everything at the end; otherwise the first piece goes at once (time to first token).
    emit_interval: float = 0.0

    def cancel(self) -> None:
        """Stop generating for this request at the next step (or skip it if still queued)."""
        self.cancelled.set()


class Row:
    """The decoding state of one request inside a batch."""

    def __init__(self, job: Job, tokenizer: Any, stop_ids: frozenset[int], stop_texts: Sequence[str]) -> None:
        self.job = job
        self.tokenizer = tokenizer
        self.stop_ids = frozenset() if job.params.ignore_eos else stop_ids
        # The template's stop strings always apply; the request's own are added to them.
        self.stop_texts = tuple(dict.fromkeys(s for s in (*stop_texts, *job.params.stop) if s))
        self.longest_stop = max((len(s) for s in self.stop_texts), default=0)
        self.tokens: list[int] = []
        self.text = ""  # everything decoded so far
        self.sent = 0  # characters of `text` already emitted
        self.prefix_offset = 0
        self.read_offset = 0
        self.finished: FinishReason | None = None
        self.generator: torch.Generator | None = None
        self.pending: list[str] = []  # sent text not yet emitted (see Job.emit_interval)
        self.emitted_at: float | None = None

    # sampling ------------------------------------------------------------------------------------
    def sample(self, logits: torch.Tensor) -> int:
        """One token drawn with the request's temperature and top-p, safe for every value the API
        accepts: a temperature or top-p that is tiny but above 0 (even 5e-324) tends to greedy
        instead of overflowing into NaN, and the top token always stays a candidate."""
        params = self.job.params
        if self.generator is None or self.generator.device != logits.device:
            self.generator = torch.Generator(device=logits.device)
            seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, ()).item())
            self.generator.manual_seed(seed % 2**64)  # any JSON integer is a seed; torch takes 64 bits
        # float64 holds every temperature the schema accepts (float32 would turn 1e-300 into 0), and
        # shifting by the maximum first means the top logit is exactly 0 whatever the temperature.
        logits = logits.double().nan_to_num(nan=float("-inf"), neginf=float("-inf"))
        logits = (logits - logits.max()) / params.temperature
        if params.top_p < 1.0:
            ordered, order = torch.sort(logits, descending=True)
            mass = torch.softmax(ordered, dim=-1)
            # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
            cut = (mass.cumsum(dim=-1) - mass) >= params.top_p
            cut[0] = False
            ordered[cut] = float("-inf")
            logits = torch.full_like(logits, float("-inf")).scatter(0, order, ordered)
        probabilities = torch.softmax(logits, dim=-1)
        if not bool(torch.isfinite(probabilities).all()) or float(probabilities.sum()) <= 0:
            return int(logits.nan_to_num(float("-inf")).argmax())  # no finite score at all: any token will do
        return int(torch.multinomial(probabilities, 1, generator=self.generator).item())

    def fail(self, error: BaseException) -> None:
        """End this request with `error`; the other rows of its batch carry on."""
        if self.finished is None:
            self.finished = "error"
            self.job.emit(Failed(error))

    # decoding ------------------------------------------------------------------------------------
    def step(self, token: int) -> None:
        """Take one generated token: finish on cancel / stop token / stop string / max_tokens."""
        if self.job.cancelled.is_set():
            self.finish("cancelled")
            return
        self.tokens.append(token)
        if token in self.stop_ids:
            self.finish("stop")
            return
        self.text += self._decode_new()
        if self._cut_stop_string():
            return
        if len(self.tokens) >= self.job.params.max_tokens:
            self.finish("length")
            return
        end = len(self.text) - self._held_back()
        if end > self.sent:
            self._send(self.text[self.sent : end])

    def finish(self, reason: FinishReason, *, flush: bool = True) -> None:
        if self.finished is not None:
            return
        self.finished = reason
        if reason != "cancelled":
            if flush and len(self.text) > self.sent:
                self._send(self.text[self.sent :])
            self._flush(time.monotonic())
            self.job.emit(Finished(reason, len(self.job.prompt_ids), len(self.tokens)))

    def _send(self, text: str) -> None:
        self.sent += len(text)
        self.pending.append(text)
        moment = time.monotonic()
        interval = self.job.emit_interval
        if interval == 0 or (
            interval != math.inf and (self.emitted_at is None or moment - self.emitted_at >= interval)
        ):
            self._flush(moment)

    def _flush(self, moment: float) -> None:
        if self.pending:
            self.job.emit(Delta("".join(self.pending)))
            self.pending.clear()
            self.emitted_at = moment

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _decode_new(self) -> str:
        """The text the newest token adds; empty while it ends in an incomplete character."""
        before = self._decode(self.tokens[self.prefix_offset : self.read_offset])
        after = self._decode(self.tokens[self.prefix_offset :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.tokens)
            return after[len(before) :]
        return ""

    def _cut_stop_string(self) -> bool:
        if not self.stop_texts:
            return False
        start = max(0, self.sent - self.longest_stop)
        found = [i for s in self.stop_texts if (i := self.text.find(s, start)) >= 0]
        if not found:
            return False
        cut = min(found)
        if cut > self.sent:
            self._send(self.text[self.sent : cut])
        self.text = self.text[:cut]
        self.finish("stop", flush=False)
        return True

    def _held_back(self) -> int:
        """How many trailing characters could be the start of a stop string (not sent yet)."""
        for length in range(min(self.longest_stop - 1, len(self.text) - self.sent), 0, -1):
            tail = self.text[-length:]
            if any(s.startswith(tail) for s in self.stop_texts):
                return length
        return 0


class RowSampler(LogitsProcessor):
    """Samples rows with temperature > 0 (each with its own settings and generator); greedy rows pass."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows
        self.sampling = any(row.job.params.temperature > 0 for row in rows)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.sampling:
            return scores
        scores = scores.clone()
        for index, row in enumerate(self.rows):
            if row.finished is None and row.job.params.temperature > 0:
                try:
                    token = row.sample(scores[index])
                except Exception as error:  # this request fails alone; the batch goes on
                    row.fail(error)
                    continue
                scores[index].fill_(float("-inf"))
                scores[index, token] = 0.0
        return scores


class BatchDecoder(StoppingCriteria):
    """After each step: feed every unfinished row its token, run `between_steps` (adapter loads), and
    end the batch early when `regroup(steps)` asks for it (newly arrived requests want to join)."""

    def __init__(
        self,
        rows: Sequence[Row],
        between_steps: Callable[[], None] | None = None,
        regroup: Callable[[int], bool] | None = None,
    ) -> None:
        self.rows = rows
        self.between_steps = between_steps
        self.regroup = regroup
        self.steps = 0
        self.regrouping = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.steps += 1
        tokens = input_ids[:, -1].tolist()
        for row, token in zip(self.rows, tokens, strict=True):
            if row.finished is None:
                try:
                    row.step(token)
                except Exception as error:  # e.g. a tokenizer that can't decode: only this request ends
                    row.fail(error)
        if self.between_steps is not None:
            self.between_steps()
        finished = [row.finished is not None for row in self.rows]
        if not all(finished) and self.regroup is not None and self.regroup(self.steps):
            self.regrouping = True
            finished = [True] * len(self.rows)
        return torch.tensor(finished, device=input_ids.device)  # a bool tensor


def generation_config(max_new_tokens: int, pad_token_id: int) -> GenerationConfig:
    """Plain greedy decoding: the model's own generation defaults (repetition penalty, sampling, EOS)
    are neutralised so only the request's settings apply; EOS and stops are handled per row."""
    defaults = GenerationConfig()._get_default_generation_params()
    defaults.pop("max_length", None)
    config = GenerationConfig(**defaults)
    config.update(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_token_id, eos_token_id=[])
    return config


def run_batch(
    model: Any,
    rows: Sequence[Row],
    *,
    pad_token_id: int,
    device: torch.device | str,
    between_steps: Callable[[], None] | None = None,
    regroup: Callable[[int], bool] | None = None,
) -> bool:
    """Generate for every row (left-padded into one batch) until each is finished, or until
    `regroup` ends the batch early; returns True in that case (the unfinished rows then continue in
    a new batch: a row's input is its prompt plus the tokens it has generated so far)."""
    from transformers import LogitsProcessorList, StoppingCriteriaList

    inputs = [row.job.prompt_ids + row.tokens for row in rows]
    width = max(len(ids) for ids in inputs)
    input_ids = [[pad_token_id] * (width - len(ids)) + ids for ids in inputs]
    attention = [[0] * (width - len(ids)) + [1] * len(ids) for ids in inputs]
    decoder = BatchDecoder(rows, between_steps, regroup)
    # no_grad rather than inference_mode: adapters loaded between steps must stay ordinary tensors.
    with torch.no_grad():
        model.generate(
            input_ids=torch.tensor(input_ids, device=device),
            attention_mask=torch.tensor(attention, device=device),
            generation_config=generation_config(
                max(r.job.params.max_tokens - len(r.tokens) for r in rows), pad_token_id
            ),
            logits_processor=LogitsProcessorList([RowSampler(rows)]),
            stopping_criteria=StoppingCriteriaList([decoder]),
        )
    if decoder.regrouping:
        return True
    for row in rows:  # generate hit max_new_tokens for the longest row; others ended on their own
        row.finish("length")
    return False
