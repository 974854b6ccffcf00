"""Synthetic Q&A: document chunks → chat examples written by a local teacher model.

    synthesis = synthesize(workspace, project, chunks, progress=progress)   # `prepare` calls this

The teacher is any OpenAI-compatible endpoint on the premises (vLLM, Ollama, llama.cpp server,
`tailorlm serve`), asked through the official `openai` client; its host must be loopback or in the
project's `allow_hosts`. For each chunk it is asked for `prepare.synthesize.per_chunk` questions
with answers taken from the chunk, as JSON. Then, without further calls:

1. each reply is parsed robustly (a fenced block, text around the JSON, a wrapping object, a reply
   cut short); a reply with no question/answer JSON counts as unparseable, an item without a
   question and an answer as malformed; both are skipped;
2. answers not grounded in their chunk are dropped (`grounding`: the share of the answer's content
   words found in the chunk must reach a threshold, and every number must appear in it);
3. near-duplicate questions are dropped (`prepare.dedup`'s MinHash, at `prepare.dedup.near_threshold`);
4. each pair becomes a chat example: user = the question — or, with RAFT distractors, the golden
   chunk and k other chunks shuffled by seed, then the question — and assistant = the answer;
   `source` = the chunk's document id (split by source keeps a document's questions together),
   `meta.synthetic` = true, `meta.chunk` = the chunk's index in its document.

Resume: the teacher's raw replies are appended, one fsynced line per chunk, to
`<workspace>/cache/synth/<key>.jsonl`; the file's key is (teacher model, prompt version, per_chunk)
and each line's is the chunk's hash. A later run asks only for the chunks missing from the file, so
an interrupted run loses at most the requests in flight, and a change of threshold or dedup settings
re-uses every reply.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import queue
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.config import Project, SynthesizeSettings
from tailorlm.formats.examples import Example
from tailorlm.lifecycle import pause_point
from tailorlm.prepare import PrepareError
from tailorlm.prepare.builders.documents import Chunk, token_counter
from tailorlm.progress import SILENT, Progress, Task
from tailorlm.workspace import Workspace, stable_hash

# Bump when the prompt changes: replies to the old prompt then stop being re-used.
PROMPT_VERSION = 1
GROUNDING_THRESHOLD = 0.6  # share of an answer's content words that must appear in its chunk
REPLY_TOKENS_PER_PAIR = 160  # the reply budget: per_chunk x this + REPLY_TOKENS_EXTRA
REPLY_TOKENS_EXTRA = 64
TEACHER_TIMEOUT_S = 600.0  # a big teacher under load can take minutes for one reply
CONCURRENCY = 4  # requests in flight; vLLM and llama.cpp batch them

SYSTEM = (
    "You write training data for a company's assistant: question-answer pairs taken from the company's "
    "own documents. Every answer states only facts given in the passage."
)
INSTRUCTION = """Passage from {where}:
<<<
{text}
>>>

Write {n} different questions that an employee or a customer might ask and that this passage answers. \
Answer each one completely, using only facts stated in the passage; copy numbers, names and units exactly. \
Reply with JSON only: a list of {n} objects with the keys "question" and "answer", like
[{{"question": "...", "answer": "..."}}]"""

# Reasons counted in the dataset card under `filters.skipped_by_recipes`.
SKIP_REASONS = {
    "refused": "synthetic: chunk refused by the teacher",
    "unparseable": "synthetic: teacher reply without question/answer JSON",
    "malformed": "synthetic: Q&A item without a question and an answer",
    "ungrounded": "synthetic: answer not grounded in its chunk",
    "duplicates": "synthetic: duplicate question",
}


# --- the prompt ----------------------------------------------------------------------------------


def chunk_hash(chunk: Chunk) -> str:
    """What the teacher is shown of a chunk (title, headings, text), hashed: the chunk's state key."""
    shown = json.dumps([chunk.title, chunk.heading_path, chunk.text], ensure_ascii=False)
    return hashlib.sha256(shown.encode()).hexdigest()


def _where(chunk: Chunk) -> str:
    return " › ".join([f'"{chunk.title}"', *chunk.heading_path]) if chunk.title else " › ".join(chunk.heading_path)


def build_prompt(chunk: Chunk, per_chunk: int) -> list[dict[str, str]]:
    """The conversation that asks the teacher for `per_chunk` Q&A pairs about `chunk`."""
    user = INSTRUCTION.format(where=_where(chunk) or "a company document", text=chunk.text, n=per_chunk)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def reply_budget(per_chunk: int) -> int:
    """`max_tokens` asked of the teacher for one chunk."""
    return per_chunk * REPLY_TOKENS_PER_PAIR + REPLY_TOKENS_EXTRA


# --- parsing replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


@dataclass
class ParsedReply:
    """The pairs found in a reply; `parsed` is False when it held no question/answer JSON at all."""

    pairs: list[QAPair]
    parsed: bool
    malformed: int = 0


FENCE = re.compile(r"```[a-zA-Z]*[ \t]*\n?(.*?)```", re.DOTALL)
TRAILING_COMMA = re.compile(r",\s*([\]}])")
THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)


def _is_pair(value: dict[Any, Any]) -> bool:
    return bool({"question", "answer"} & {str(k).strip().lower() for k in value})


def _items(value: Any) -> list[Any] | None:
    """The list of Q&A items a decoded value holds: a list, a single pair, or a wrapping object
    (`{"questions": [...]}`); None when it holds none (a list of numbers, say)."""
    if isinstance(value, dict):
        if _is_pair(value):
            return [value]
        value = next((v for v in value.values() if isinstance(v, list)), None)
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return value
    return None


def _pair(item: Any) -> QAPair | None:
    if not isinstance(item, dict):
        return None
    fields = {str(k).strip().lower(): v for k, v in item.items()}
    question, answer = fields.get("question"), fields.get("answer")
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(question, str) or not isinstance(answer, str) or not question.strip() or not answer.strip():
        return None
    return QAPair(" ".join(question.split()), answer.strip())


def _decoded(text: str) -> Iterator[Any]:
    """JSON values in `text`, most likely first: fenced blocks and the whole reply (also with trailing
    commas removed), then the first value starting at each `[` or `{`."""
    candidates = [m.group(1) for m in FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for variant in (candidate, TRAILING_COMMA.sub(r"\1", candidate)):
            with contextlib.suppress(ValueError):
                yield json.loads(variant.strip())
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value = decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue
        if not (isinstance(value, dict) and _is_pair(value)):  # lone pairs: `_salvage` collects them all
            yield value


def _salvage(text: str) -> list[Any]:
    """Every complete JSON object in `text`, left to right: what is left of a list cut short."""
    decoder = json.JSONDecoder()
    found, position = [], 0
    while (start := text.find("{", position)) >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
        position = end
    return [item for item in found if _pair(item) is not None]


def parse_reply(text: str) -> ParsedReply:
    """Question/answer pairs from a teacher's reply; never raises (see the module docstring)."""
    text = THINKING.sub("", text or "")  # reasoning models think aloud before they answer
    items = next((found for value in _decoded(text) if (found := _items(value)) is not None), None)
    if items is None:
        items = _salvage(text)
        if not items:
            return ParsedReply([], parsed=False)
    pairs = [pair for item in items if (pair := _pair(item)) is not None]
    return ParsedReply(pairs, parsed=True, malformed=len(items) - len(pairs))


# --- grounding -----------------------------------------------------------------------------------

WORD = re.compile(r"[^\W_]+(?:[.,:/-]\d+)*")
NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_STOPWORDS = """a an the and or but if then than so of to in on at by for with from as into onto over under about
    is are was were be been being am it its this that these those there here you your yours we our ours
    they their them he she his her him i me my not no nor yes do does did done can could should would will
    shall may might must have has had having what which who whom whose when where why how also only just
    very more most less some any each all both other such same own too up down out off again per via"""
STOPWORDS = frozenset(_STOPWORDS.split())


def _number(token: str) -> str:
    """One spelling per number: thousands separators dropped (`1,500` → `1500`)."""
    return token.replace(",", "") if THOUSANDS.fullmatch(token) else token


def _stem(word: str) -> str:
    """A light English stem, enough to match `refunds`/`refund`, `shipped`/`ship`, `issued`/`issue`."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _terms(text: str) -> tuple[list[str], list[str]]:
    """(content word stems, numbers) of a text, in order."""
    words: list[str] = []
    numbers: list[str] = []
    for token in WORD.findall(text.lower()):
        if token[0].isdigit():
            numbers.extend(_number(n) for n in NUMBER.findall(token))
        elif token not in STOPWORDS:
            words.append(_stem(token))
    return words, numbers


@dataclass(frozen=True)
class Grounding:
    """How much of an answer its chunk supports."""

    score: float  # share of the answer's content words and numbers found in the chunk
    missing_numbers: tuple[str, ...]

    def passes(self, threshold: float = GROUNDING_THRESHOLD) -> bool:
        return self.score >= threshold and not self.missing_numbers


def grounding(answer: str, chunk_text: str) -> Grounding:
    """A lexical check of `answer` against `chunk_text`: the share of the answer's content words (stop
    words removed, lightly stemmed) and numbers present in the chunk, and the numbers that are not.
    An answer without content words scores 0."""
    words, numbers = _terms(answer)
    chunk_words, chunk_numbers = _terms(chunk_text)
    known_words, known_numbers = set(chunk_words), set(chunk_numbers)
    total = len(words) + len(numbers)
    found = sum(w in known_words for w in words) + sum(n in known_numbers for n in numbers)
    missing = tuple(dict.fromkeys(n for n in numbers if n not in known_numbers))
    return Grounding(found / total if total else 0.0, missing)


# --- RAFT distractors ----------------------------------------------------------------------------


def raft_user_turn(
    question: str, chunks: Sequence[Chunk], golden: int, k: int, seed: int, hashes: Sequence[str] | None = None
) -> str:
    """The user turn of a RAFT-style example: the golden chunk `chunks[golden]` and `k` other chunks
    drawn at random, shuffled, then the question. Deterministic for (seed, golden chunk, question)."""
    hashes = hashes if hashes is not None else [chunk_hash(c) for c in chunks]
    rng = random.Random(f"{seed}:{hashes[golden]}:{question}")
    drawn = rng.sample(range(len(chunks)), min(len(chunks), k + 1))
    picked = [golden, *[i for i in drawn if hashes[i] != hashes[golden]][:k]]
    rng.shuffle(picked)
    documents = "\n\n".join(
        f"[{n}] {_where(chunks[i]) or 'document'}\n{chunks[i].text}" for n, i in enumerate(picked, start=1)
    )
    return f"Documents:\n\n{documents}\n\nQuestion: {question}"


# --- from replies to examples (no calls) --------------------------------------------------------


@dataclass
class Synthesis:
    """What `synthesize` made: the examples, how many came from each input chunk, and the counts
    (chunks, cached, calls, answered, refused, unparseable, malformed, pairs, ungrounded, duplicates,
    examples)."""

    examples: list[Example]
    per_chunk: list[int]
    counts: Counter[str] = field(default_factory=Counter)
    model: str = ""
    state_file: Path | None = None

    def skips(self) -> Counter[str]:
        """The drops, by the reasons the dataset card lists."""
        return Counter({reason: self.counts[key] for key, reason in SKIP_REASONS.items() if self.counts[key]})


def build_examples(
    chunks: Sequence[Chunk],
    replies: Mapping[str, str],
    *,
    per_chunk: int,
    system_prompt: str | None = None,
    threshold: float = GROUNDING_THRESHOLD,
    near_threshold: float | None = 0.85,
    distractors: int = 0,
    seed: int = 0,
    teacher: str = "",
    file_of: Callable[[Chunk], str] | None = None,
) -> Synthesis:
    """Parse, check, deduplicate and shape the teacher's `replies` (by chunk hash) into examples, in
    chunk order. Chunks without a reply are left out."""
    from tailorlm.prepare.dedup import drop_duplicates, exact_duplicates

    hashes = [chunk_hash(chunk) for chunk in chunks]
    counts: Counter[str] = Counter(chunks=len(chunks))
    candidates: list[tuple[int, QAPair, float]] = []
    for index, (chunk, key) in enumerate(zip(chunks, hashes, strict=True)):
        if key not in replies:
            continue
        parsed = parse_reply(replies[key])
        counts["unparseable"] += not parsed.parsed
        counts["malformed"] += parsed.malformed
        for pair in parsed.pairs[:per_chunk]:
            counts["pairs"] += 1
            check = grounding(pair.answer, chunk.text)
            if check.passes(threshold):
                candidates.append((index, pair, check.score))
            else:
                counts["ungrounded"] += 1
    questions = [pair.question for _, pair, _ in candidates]
    if len(questions) < 2:  # nothing to compare (and drop_duplicates can't take a single text)
        keep = set(range(len(questions)))
    elif near_threshold is None:
        keep = set(range(len(questions))) - {i for group in exact_duplicates(questions) for i in group[1:]}
    else:
        keep = set(drop_duplicates(questions, threshold=near_threshold).keep)
    counts["duplicates"] = len(candidates) - len(keep)
    examples, made = [], [0] * len(chunks)
    for position, (index, pair, score) in enumerate(candidates):
        if position not in keep:
            continue
        chunk = chunks[index]
        meta: dict[str, Any] = {"synthetic": True, "chunk": chunk.index, "chunk_hash": hashes[index][:16]}
        meta.update(teacher=teacher, grounding=round(score, 3), file=file_of(chunk) if file_of else chunk.source_path)
        user = pair.question
        if distractors > 0:
            user = raft_user_turn(pair.question, chunks, index, distractors, seed, hashes)
            meta.update(question=pair.question, distractors=distractors)
        examples.append(
            Example.chat(system=system_prompt, user=user, assistant=pair.answer, source=chunk.document_id, meta=meta)
        )
        made[index] += 1
    counts["examples"] = len(examples)
    return Synthesis(examples, made, counts, teacher)


# --- the state file ------------------------------------------------------------------------------


def state_file(workspace: Workspace, model: str, per_chunk: int) -> Path:
    """`<workspace>/cache/synth/<key>.jsonl`, the key hashing (teacher model, prompt version, per_chunk)."""
    key = stable_hash({"teacher_model": model, "prompt_version": PROMPT_VERSION, "per_chunk": per_chunk})
    return workspace.cache_dir / "synth" / f"{key[:24]}.jsonl"


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    """The saved replies by chunk hash; a line cut short by a crash is ignored."""
    saved: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return saved
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("chunk"), str) and isinstance(row.get("reply"), str):
            saved[row["chunk"]] = row
    return saved


class _StateWriter:
    """Appends one reply per line, fsynced, so a finished chunk survives a crash or Ctrl-C."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():  # drop a last line cut short, so the next one starts on its own line
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                with path.open("r+b") as handle:
                    handle.truncate(data.rfind(b"\n") + 1)
        self.handle = path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


# --- asking the teacher --------------------------------------------------------------------------


@dataclass
class _Outcome:
    key: str
    row: dict[str, Any] | None = None  # the reply to save
    refused: str | None = None  # this request was refused (400/413/422): skip the chunk
    error: str | None = None  # the endpoint failed: stop


def _ask(client: Any, model: str, key: str, messages: list[dict[str, str]], max_tokens: int, seed: int) -> _Outcome:
    import openai

    try:
        response = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0, seed=seed
        )
    except openai.APIStatusError as error:
        message = f"{error.status_code}: {error.message}"[:300]
        if error.status_code in (400, 413, 422):  # about this request (a prompt too long), not the endpoint
            return _Outcome(key, refused=message)
        return _Outcome(key, error=message)
    except Exception as error:  # openai.APIConnectionError, APITimeoutError...
        return _Outcome(key, error=f"{type(error).__name__}: {error}"[:300])
    choice = response.choices[0] if response.choices else None
    usage = response.usage
    return _Outcome(
        key,
        row={
            "chunk": key,
            "reply": (choice.message.content or "") if choice else "",
            "finish_reason": choice.finish_reason if choice else None,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
        },
    )


def _ask_all(
    ask: Callable[[str], _Outcome],
    keys: Sequence[str],
    writer: _StateWriter,
    replies: dict[str, str],
    counts: Counter[str],
    concurrency: int,
    task: Task,
) -> tuple[str | None, str | None]:
    """Ask for every key, at most `concurrency` at a time, saving each reply as it comes. Returns the
    first endpoint error (after the requests in flight are saved) and the first refusal.

    Requests run on daemon threads: on Ctrl-C the process need not wait for the ones in flight (their
    chunks are asked for again next time), and one more starts only when one has been saved."""
    outcomes: queue.Queue[_Outcome] = queue.Queue()
    todo = iter(keys)
    in_flight = 0
    error: str | None = None
    refused: str | None = None

    def start(key: str) -> None:
        nonlocal in_flight
        threading.Thread(target=lambda: outcomes.put(ask(key)), name="tailorlm-synth", daemon=True).start()
        in_flight += 1

    for key in itertools.islice(todo, concurrency):
        start(key)
    while in_flight:
        outcome = outcomes.get()
        in_flight -= 1
        counts["calls"] += 1
        if outcome.row is not None:
            pause_point("synthesize.reply")  # the chaos tests kill a run here, a reply in hand not yet saved
            writer.append(outcome.row)
            counts["answered"] += 1
            replies[outcome.key] = outcome.row["reply"]
        elif outcome.refused is not None:
            counts["refused"] += 1
            refused = refused or outcome.refused
        else:
            error = error or outcome.error
        task.advance(1, tokens=(outcome.row or {}).get("completion_tokens") or 0)
        following = next(todo, None) if error is None else None
        if following is not None:
            start(following)
    return error, refused


def _teacher(project: Project, settings: SynthesizeSettings) -> Any:
    """The client, after the host check (loopback or `allow_hosts`), before any call."""
    from tailorlm import offline
    from tailorlm.endpoints import EndpointError, openai_client

    offline.enforce(project.allow_hosts)
    api_key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
    if settings.api_key_env and not api_key:
        raise PrepareError(f"prepare.synthesize.api_key_env: the variable {settings.api_key_env} is not set")
    try:
        return openai_client(settings.teacher, api_key=api_key, timeout=TEACHER_TIMEOUT_S)
    except EndpointError as error:
        raise PrepareError(f"prepare.synthesize.teacher: {error}") from None


def _model(client: Any, settings: SynthesizeSettings) -> str:
    from tailorlm.endpoints import EndpointError, first_model

    if settings.model:
        return settings.model
    try:
        return first_model(client, settings.teacher)
    except EndpointError as error:
        raise PrepareError(f"prepare.synthesize.teacher: {error}") from None


def synthesize(
    workspace: Workspace,
    project: Project,
    chunks: Sequence[Chunk],
    *,
    tokenizer: Any = None,
    progress: Progress = SILENT,
    concurrency: int = CONCURRENCY,
    file_of: Callable[[Chunk], str] | None = None,
) -> Synthesis:
    """Q&A examples from `chunks` by the teacher in `project.prepare.synthesize` (module docstring).

    Args:
        tokenizer: Counts the prompt tokens of the estimate (words x 1.3 without one).
        progress: Told the estimate of calls and tokens before the first call, then counts the
            teacher's replies (a task), then a summary. An exception its task raises
            (KeyboardInterrupt) stops the run, keeping every reply saved so far.
        concurrency: Teacher requests in flight.
        file_of: The file label of a chunk for `meta.file` (default: its source path).

    Raises:
        PrepareError: a teacher host that is neither loopback nor allowlisted (before any call), an
            endpoint that can't be reached or fails (naming its URL; the replies so far are saved),
            or a teacher that refused every request.
    """
    settings = project.prepare.synthesize
    if settings is None:
        raise ValueError("project.prepare.synthesize is not set")
    tell = progress.say
    client = _teacher(project, settings)
    try:
        model = _model(client, settings)
        path = state_file(workspace, model, settings.per_chunk)
        replies = {key: row["reply"] for key, row in read_state(path).items()}
        prompts = {chunk_hash(chunk): chunk for chunk in chunks}
        missing = [key for key in prompts if key not in replies]
        budget = reply_budget(settings.per_chunk)
        count = token_counter(tokenizer)
        prompt_tokens = sum(
            count(m["content"]) for key in missing for m in build_prompt(prompts[key], settings.per_chunk)
        )
        tell(
            f"synthesizing {settings.per_chunk} Q&A per chunk with {model} at {settings.teacher}: "
            f"{len(prompts)} chunk(s), {len(prompts) - len(missing)} answered before; {len(missing)} call(s), "
            f"~{prompt_tokens:,} prompt tokens + up to {len(missing) * budget:,} reply tokens"
        )
        counts: Counter[str] = Counter(cached=len(prompts) - len(missing))
        error = refused = None
        if missing:
            seed = project.prepare.split.seed

            def ask(key: str) -> _Outcome:
                return _ask(client, model, key, build_prompt(prompts[key], settings.per_chunk), budget, seed)

            writer = _StateWriter(path)
            try:
                with progress.task("synthesize", total=len(missing), unit="chunks") as task:
                    error, refused = _ask_all(ask, missing, writer, replies, counts, max(1, concurrency), task)
            finally:
                writer.close()
    finally:
        client.close()
    if error is not None:
        answered = counts["cached"] + counts["answered"]
        raise PrepareError(
            f"prepare.synthesize.teacher: the teacher at {settings.teacher} failed: {error}. "
            f"{answered} of {len(prompts)} chunk(s) are answered and saved in {path}; "
            "run prepare again to continue from there"
        )
    if missing and counts["refused"] == len(missing):
        raise PrepareError(
            f"prepare.synthesize.teacher: the teacher at {settings.teacher} refused every request: {refused}"
        )
    synthesis = build_examples(
        chunks,
        replies,
        per_chunk=settings.per_chunk,
        system_prompt=project.system_prompt,
        near_threshold=project.prepare.dedup.near_threshold,
        distractors=settings.distractors,
        seed=project.prepare.split.seed,
        teacher=model,
        file_of=file_of,
    )
    synthesis.counts.update(counts)
    synthesis.state_file = path
    shown = ", ".join(f"{synthesis.counts[key]} {key}" for key in SKIP_REASONS if synthesis.counts[key])
    tell(
        f"synthesized {len(synthesis.examples)} example(s) from {len(chunks)} chunk(s)"
        + (f" ({shown})" if shown else "")
    )
    return synthesis


__all__ = [
    "GROUNDING_THRESHOLD",
    "PROMPT_VERSION",
    "Grounding",
    "ParsedReply",
    "QAPair",
    "Synthesis",
    "build_examples",
    "build_prompt",
    "chunk_hash",
    "grounding",
    "parse_reply",
    "raft_user_turn",
    "read_state",
    "state_file",
    "synthesize",
]
