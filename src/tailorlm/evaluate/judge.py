"""An LLM judge: a local model behind an OpenAI-compatible endpoint (loopback or in `allow_hosts`)
grades answers where overlap metrics can't.

* Pointwise: a 1-5 score against a rubric (the case's `rubric`, else the default), parsed robustly
  from free text (`Score: 4`, `4/5`, `**4**`, `{"score": 4}`).
* Pairwise: the candidate against a baseline, asked in both orders; a win (or loss) counts only when
  it survives the swap, anything else is a tie. This cancels the position bias judges are known for.
* Agreement: Cohen's kappa between the judge and a human-labelled set, when one is given
  (JSONL or YAML rows `{id, candidate, score}` for scores or `{id, candidate, vs, verdict}` with
  verdict win/loss/tie).

The endpoint is checked (allowlist, reachable, lists a model) when the judge is created, so an
evaluation fails before anything is generated or written.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tailorlm.endpoints import EndpointError, first_model, openai_client
from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.stats import cohen_kappa
from tailorlm.progress import SILENT, Progress

DEFAULT_RUBRIC = (
    "Correct and complete with respect to the reference answer, consistent with the company's documents, "
    "in the company's tone, with nothing invented."
)
POINTWISE_PROMPT = """You grade an assistant's answer for a company.

Rubric: {rubric}

Question:
{question}

Reference answer (may be empty):
{reference}

Assistant's answer:
{answer}

Rate the assistant's answer from 1 (poor) to 5 (excellent) against the rubric.
Reply with "Score: N" on the first line, then one sentence saying why."""
PAIRWISE_PROMPT = """You compare two answers to the same question for a company.

Rubric: {rubric}

Question:
{question}

Reference answer (may be empty):
{reference}

Answer A:
{first}

Answer B:
{second}

Which answer is better against the rubric? Reply with exactly one of [[A]], [[B]] or [[TIE]] on the
first line, then one sentence saying why."""

_JSON_SCORE = re.compile(r'"score"\s*:\s*"?([1-5])(?!\d)')
_SCORE_PATTERNS = (
    re.compile(r"score[*_\s]*(?:is|of)?[*_\s]*[:=]?[*_\s\[(]*([1-5])(?!\d|[.,]\d)(?:\s*/\s*5)?", re.IGNORECASE),
    re.compile(r"(?<![\d.])([1-5])\s*/\s*5(?!\d)"),
    re.compile(r"\[\[\s*([1-5])\s*\]\]"),
    re.compile(r"(?:rating|grade)\s*[:=]?\s*[*\[(]*\s*([1-5])(?!\d|[.,]\d)", re.IGNORECASE),
    re.compile(r"^\s*[*\[(]*\s*([1-5])(?!\d|[.,]\d)(?:\s*[*\])]*\s*)(?:$|[.\-:\s])"),
)
_VERDICT_TAG = re.compile(r"\[\[\s*(A|B|TIE|C)\s*\]\]", re.IGNORECASE)
_VERDICT_WORDS = (
    re.compile(
        r"(?:verdict|winner|better answer|choice)\s*(?:is)?\s*[:=]?\s*\**\s*(?:answer\s+)?([AB]|tie)\b", re.IGNORECASE
    ),
    re.compile(r"\b(?:answer\s+)?([AB])\s+is\s+(?:better|superior|preferred)", re.IGNORECASE),
)


def parse_score(text: str) -> int | None:
    """The 1-5 score in a judge's reply, or None when there is no unambiguous one."""
    if match := _JSON_SCORE.search(text):
        return int(match.group(1))
    for pattern in _SCORE_PATTERNS:
        if match := pattern.search(text):
            return int(match.group(1))
    return None


def parse_verdict(text: str) -> str | None:
    """`A`, `B` or `tie` from a pairwise reply; None when absent or contradictory."""
    tags = {m.group(1).upper() for m in _VERDICT_TAG.finditer(text)}
    tags = {"TIE" if t == "C" else t for t in tags}
    if len(tags) == 1:
        tag = tags.pop()
        return "tie" if tag == "TIE" else tag
    if tags:
        return None
    found = {m.group(1).upper() for p in _VERDICT_WORDS for m in p.finditer(text)}
    if len(found) == 1:
        value = found.pop()
        return "tie" if value == "TIE" else value
    bare = text.strip().strip("*.[]()").upper()
    if bare in {"A", "B"}:
        return bare
    if bare in {"TIE", "EQUAL", "BOTH"}:
        return "tie"
    return None


def combine_verdicts(candidate_first: str | None, candidate_second: str | None) -> tuple[str, bool]:
    """The outcome for the candidate from both orders: (`win`|`loss`|`tie`, consistent).

    Args:
        candidate_first: The verdict when the candidate was answer A.
        candidate_second: The verdict when the candidate was answer B.
    """
    as_first = {"A": "win", "B": "loss", "tie": "tie"}.get(candidate_first or "")
    as_second = {"B": "win", "A": "loss", "tie": "tie"}.get(candidate_second or "")
    if as_first is not None and as_first == as_second:
        return as_first, True
    return "tie", False


@dataclass
class JudgeConfig:
    """Where the judge is and how it is asked.

    Attributes:
        endpoint: OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1.
        model: Model name at the endpoint (default: the first it lists).
        api_key_env: Environment variable holding the endpoint's API key.
        rubric: Default rubric for cases without their own.
        max_tokens: Reply budget per judgement.
        human_labels: A human-labelled set to measure agreement on (see the module docstring).
    """

    endpoint: str
    model: str | None = None
    api_key_env: str | None = None
    rubric: str = DEFAULT_RUBRIC
    max_tokens: int = 64
    human_labels: Path | None = None

    @classmethod
    def coerce(cls, value: JudgeConfig | str | dict[str, Any] | Any) -> JudgeConfig:
        if isinstance(value, JudgeConfig):
            return value
        if isinstance(value, str):
            return cls(endpoint=value)
        data = value if isinstance(value, dict) else value.model_dump()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)


@dataclass
class Judgement:
    """A pointwise score (None when unparseable) with the judge's reply."""

    score: int | None
    reply: str


@dataclass
class PairJudgement:
    """A pairwise outcome for the candidate, with both orders' verdicts and replies."""

    outcome: str
    consistent: bool
    candidate_first: str | None
    candidate_second: str | None
    replies: tuple[str, str]


class Judge:
    """A connected judge; creating one checks the endpoint (raises `EvalError` when unusable)."""

    def __init__(self, config: JudgeConfig, *, workers: int = 4) -> None:
        self.config = config
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        try:
            self.client = openai_client(config.endpoint, api_key=api_key)
            self.model = config.model or first_model(self.client, config.endpoint)
        except EndpointError as error:
            raise EvalError(f"judge: {error}") from None
        self.workers = workers
        self.requests = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def _ask(self, prompt: str) -> str:
        with self._lock:
            self.requests += 1
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=self.config.max_tokens,
                temperature=0.0,
            )
        except Exception as error:  # a failed judgement is unparseable, not a failed evaluation
            return f"(judge request failed: {type(error).__name__}: {error})"
        return response.choices[0].message.content or ""

    def _map(self, function: Callable[[Any], Any], items: Sequence[Any], stage: str, progress: Progress) -> list[Any]:
        with progress.task(stage, total=len(items), unit="judgements") as task:

            def run(item: Any) -> Any:
                result = function(item)
                task.advance(1)
                return result

            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                return list(pool.map(run, items))

    def score(self, question: str, answer: str, reference: str | None, rubric: str | None = None) -> Judgement:
        reply = self._ask(
            POINTWISE_PROMPT.format(
                rubric=rubric or self.config.rubric, question=question, reference=reference or "", answer=answer
            )
        )
        return Judgement(parse_score(reply), reply)

    def compare(
        self, question: str, candidate: str, baseline: str, reference: str | None, rubric: str | None = None
    ) -> PairJudgement:
        """Ask with the candidate as A, then as B; see `combine_verdicts`."""
        common = {"rubric": rubric or self.config.rubric, "question": question, "reference": reference or ""}
        first = self._ask(PAIRWISE_PROMPT.format(first=candidate, second=baseline, **common))
        second = self._ask(PAIRWISE_PROMPT.format(first=baseline, second=candidate, **common))
        v1, v2 = parse_verdict(first), parse_verdict(second)
        outcome, consistent = combine_verdicts(v1, v2)
        return PairJudgement(outcome, consistent, v1, v2, (first, second))

    def score_many(
        self, items: Sequence[tuple[str, str, str | None, str | None]], *, progress: Progress = SILENT
    ) -> list[Judgement]:
        """Pointwise judgements of (question, answer, reference, rubric) items."""
        return self._map(lambda item: self.score(*item), items, "judge scores", progress)

    def compare_many(
        self, items: Sequence[tuple[str, str, str, str | None, str | None]], *, progress: Progress = SILENT
    ) -> list[PairJudgement]:
        """Pairwise judgements of (question, candidate, baseline, reference, rubric) items."""
        return self._map(lambda item: self.compare(*item), items, "judge pairs", progress)


def win_rate(judgements: Sequence[PairJudgement]) -> dict[str, Any]:
    """Share of items the candidate wins (ties are not wins), with the counts."""
    counts = {o: sum(j.outcome == o for j in judgements) for o in ("win", "loss", "tie")}
    n = len(judgements)
    return {
        "value": counts["win"] / n if n else None,
        **counts,
        "n": n,
        "inconsistent": sum(not j.consistent for j in judgements),
    }


# --- agreement with people -----------------------------------------------------------------------


def load_human_labels(path: Path) -> list[dict[str, Any]]:
    """Rows of a human-labelled set; problems reported with file and line."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"judge human labels not found: {path}")
    text = path.read_text(encoding="utf-8")
    rows: list[tuple[int, Any]] = []
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            data = yaml.safe_load(text) or []
        except yaml.YAMLError as error:
            raise EvalError(f"{path}: not valid YAML: {error}") from None
        rows = [(0, row) for row in (data if isinstance(data, list) else [data])]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise EvalError(f"{path.name}:{number}: not valid JSON: {error.msg}") from None
    labels = []
    for number, row in rows:
        where = f"{path.name}:{number}" if number else path.name
        if not isinstance(row, dict) or "id" not in row:
            raise EvalError(f"{where}: a human label needs at least `id` and `score` or `verdict`")
        if "score" in row and row["score"] not in {1, 2, 3, 4, 5}:
            raise EvalError(f"{where}: score must be 1-5 (got {row['score']!r})")
        if "verdict" in row and row["verdict"] not in {"win", "loss", "tie"}:
            raise EvalError(f"{where}: verdict must be win, loss or tie (got {row['verdict']!r})")
        if "score" not in row and "verdict" not in row:
            raise EvalError(f"{where}: a human label needs `score` (1-5) or `verdict` (win/loss/tie)")
        labels.append(row)
    return labels


def agreement(
    labels: Sequence[dict[str, Any]],
    scores: dict[tuple[str, str], int | None],
    verdicts: dict[tuple[str, str, str], str],
    default_candidate: str,
) -> dict[str, Any]:
    """Cohen's kappa (quadratic weights for 1-5 scores) between people and the judge on shared items."""
    people, judge = [], []
    pairs_people, pairs_judge = [], []
    for row in labels:
        candidate = row.get("candidate", default_candidate)
        if "score" in row and (judged := scores.get((row["id"], candidate))) is not None:
            people.append(row["score"])
            judge.append(judged)
        if "verdict" in row and (found := verdicts.get((row["id"], candidate, row.get("vs", "")))):
            pairs_people.append(row["verdict"])
            pairs_judge.append(found)
    result: dict[str, Any] = {"labels": len(labels)}
    if people:
        result["scores"] = {"kappa": cohen_kappa(people, judge, weights="quadratic"), "n": len(people)}
    if pairs_people:
        result["verdicts"] = {"kappa": cohen_kappa(pairs_people, pairs_judge), "n": len(pairs_people)}
    return result
