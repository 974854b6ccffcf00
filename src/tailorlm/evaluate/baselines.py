"""How each candidate is asked: the prompt strategies behind the baselines, and the RAG retriever.

* `plain` — the case's conversation with the project's system prompt (the `base` baseline zero-shot,
  and every fine-tuned run: the same rendering as training).
* `few_shot` — `evaluate.few_shot_k` examples of the train split as prior user/assistant turns
  (for classification, one per label in turn, so every label is shown).
* `rag` — the top `evaluate.rag_k` passages for the case's question, put in the system message. The
  passages are the chunks `prepare` kept of the dataset's `documents` sources (BM25 via rank-bm25;
  dense retrieval with a local sentence-transformers model when a path is given). A dataset without
  documents (e.g. from a FAQ table) retrieves from its train split's question/answer pairs instead.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.evaluate.cases import EvalCase, EvalError
from tailorlm.formats.examples import Example

BASELINES = ("base", "few_shot", "rag", "label_similarity", "knn", "tfidf")
GENERATIVE = ("base", "few_shot", "rag")  # the baselines the base model answers by generating
RAG_INSTRUCTION = "Answer using the company's documents below when they are relevant."
_WORD = re.compile(r"\w+")


@dataclass
class Candidate:
    """One system answering the suite.

    Attributes:
        name: Name in scores and reports: base, few_shot, rag, finetuned, finetuned+rag, a run id,
            or an endpoint's name.
        kind: `baseline`, `finetuned` or `endpoint`.
        model: Key of the model that answers (`base`, a run id, an endpoint name).
        strategy: `plain`, `few_shot`, `rag`, or `input` (the bare text to classify: classification heads
            and the baselines that need no generation).
        run: The run id for fine-tuned candidates.
    """

    name: str
    kind: str
    model: str
    strategy: str
    run: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "model": self.model, "strategy": self.strategy, "run": self.run}


@dataclass
class Passage:
    """A retrievable piece of text and where it came from."""

    text: str
    title: str = ""
    source: str = ""


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


class BM25Retriever:
    """Top-k passages by BM25 over casefolded words; passages sharing no word with the query are not
    returned. BM25+ (rank-bm25's `BM25Plus`) rather than Okapi: Okapi's IDF is zero or negative for a
    word in half the passages or more, which on a small corpus hides exactly the passages that match."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        from rank_bm25 import BM25Plus

        if not passages:
            raise EvalError("the rag baseline has nothing to retrieve from (no documents, empty train split)")
        self.passages = list(passages)
        self.words = [set(words(f"{p.title} {p.text}")) for p in self.passages]
        self.index = BM25Plus([words(f"{p.title} {p.text}") or ["_"] for p in self.passages])

    def search(self, query: str, k: int) -> list[Passage]:
        asked = words(query)
        scores = self.index.get_scores(asked)
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [self.passages[i] for i in ranked if self.words[i].intersection(asked)][:k]


class DenseRetriever:
    """Top-k passages by cosine similarity of a local sentence-transformers model's embeddings."""

    def __init__(self, passages: Sequence[Passage], model_path: Path) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EvalError(
                "dense retrieval needs sentence-transformers: `pip install -c constraints.txt "
                "'tailorlm[embeddings]'`, or drop evaluate.rag_embedding_model to use BM25"
            ) from None
        if not Path(model_path).is_dir():
            raise EvalError(f"embedding model not found: {model_path} (a local directory; nothing is downloaded)")
        self.passages = list(passages)
        self.model = SentenceTransformer(str(model_path), local_files_only=True)
        self.embeddings = self.model.encode(
            [f"{p.title}\n{p.text}" for p in self.passages], normalize_embeddings=True, convert_to_numpy=True
        )

    def search(self, query: str, k: int) -> list[Passage]:
        vector = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        scores = self.embeddings @ vector
        return [self.passages[i] for i in scores.argsort()[::-1][:k]]


def document_passages(workspace: Any, dataset: Any) -> list[Passage]:
    """The chunks `prepare` kept from the dataset's `documents` sources (`chunks.jsonl`: cleaned and
    redacted like the examples). Documents of FAQ, table or extraction sources are never used: they
    hold the test examples themselves, and retrieving a test answer would flatter the baseline."""
    from tailorlm.workspace import read_jsonl

    path = workspace.path_of(dataset) / "chunks.jsonl"
    if not path.is_file():
        return []
    return [
        Passage(
            text=row["text"], title=row.get("title") or "", source=f"{row.get('source_path', '')}#{row.get('index', 0)}"
        )
        for row in read_jsonl(path)
    ]


def with_passages(
    system: str | None, rest: Sequence[dict[str, str]], passages: Sequence[Passage]
) -> list[dict[str, str]]:
    """A conversation with the retrieved passages numbered after its system prompt (the rag strategy; the
    dashboard's playground asks the same way)."""
    context = "\n\n".join(
        f"[{i}] {p.title}\n{p.text}" if p.title else f"[{i}] {p.text}" for i, p in enumerate(passages, 1)
    )
    parts = [system] if system else []
    if context:
        parts.append(f"{RAG_INSTRUCTION}\n\n{context}")
    return ([{"role": "system", "content": "\n\n".join(parts)}] if parts else []) + list(rest)


def example_passages(examples: Sequence[Example]) -> list[Passage]:
    """Question/answer pairs of the train split as passages (datasets without source documents)."""
    return [
        Passage(text=f"{e.input_text}\n{e.target}", title="", source=e.source or e.id) for e in examples if e.is_chat
    ]


def pick_shots(examples: Sequence[Example], k: int, *, task: str, seed: int = 0) -> list[Example]:
    """`k` train examples, the same for every case: one per label in turn for classification."""
    pool = [e for e in examples if e.is_chat]
    random.Random(seed).shuffle(pool)
    if task != "classify":
        return pool[:k]
    by_label: dict[str | None, list[Example]] = {}
    for example in pool:
        by_label.setdefault(example.label or example.target, []).append(example)
    shots: list[Example] = []
    while len(shots) < min(k, len(pool)):
        for group in by_label.values():
            if group and len(shots) < k:
                shots.append(group.pop(0))
    return shots


@dataclass
class PromptBuilder:
    """Builds each strategy's conversation for a case."""

    system_prompt: str | None
    shots: list[Example] = field(default_factory=list)
    retriever: BM25Retriever | DenseRetriever | None = None
    rag_k: int = 3

    def _split_system(self, case: EvalCase) -> tuple[str | None, list[dict[str, str]]]:
        messages = [dict(m) for m in case.messages]
        if messages and messages[0]["role"] == "system":
            return messages[0]["content"], messages[1:]
        return self.system_prompt, messages

    def plain(self, case: EvalCase) -> list[dict[str, str]]:
        system, rest = self._split_system(case)
        return ([{"role": "system", "content": system}] if system else []) + rest

    def few_shot(self, case: EvalCase) -> list[dict[str, str]]:
        system, rest = self._split_system(case)
        turns: list[dict[str, str]] = []
        for shot in self.shots:
            turns += [{"role": "user", "content": shot.input_text}, {"role": "assistant", "content": shot.target}]
        return ([{"role": "system", "content": system}] if system else []) + turns + rest

    def retrieve(self, case: EvalCase) -> list[Passage]:
        if self.retriever is None:
            raise EvalError("the rag strategy needs a retriever")
        return self.retriever.search(case.input_text, self.rag_k)

    def rag(self, case: EvalCase, passages: Sequence[Passage]) -> list[dict[str, str]]:
        system, rest = self._split_system(case)
        return with_passages(system, rest, passages)
