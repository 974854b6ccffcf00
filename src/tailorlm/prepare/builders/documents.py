"""The `documents` builder: prose (Markdown, PDF, DOCX, HTML text) → token-sized chunks.

`chunk_documents` cuts each document along its Markdown headings: paragraphs are packed into chunks of
at most `prepare.chunk.max_tokens` tokens, a new chunk starts at a heading once the current one is
half full, and a chunk that continues the same section repeats the last `prepare.chunk.overlap` tokens
of the previous one. Paragraphs longer than a chunk are cut at sentences, then at words. Tokens are
counted with the base model's tokenizer when it can be loaded, else estimated as whitespace words x
1.3 (`Chunk.estimated` says which; the dataset card too).

For the `cpt` task each chunk becomes a text example (`meta`: title, heading path, chunk index,
tokens). For other tasks the builder yields nothing: the stage keeps the chunks for the RAG baseline and
synthetic Q&A (see docs/prepare.md), which reuse `chunk_documents`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tailorlm.config import TASKS, Project, Source
from tailorlm.documents import Document
from tailorlm.formats.examples import Example
from tailorlm.prepare.builders import BuilderOutput, builder, file_label, source_ref

WORDS_PER_TOKEN_ESTIMATE = 1.3  # tokens per whitespace word, for English-like text with BPE vocabularies
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Chunk:
    """A piece of a document sized for a model's context, with where it came from."""

    text: str
    document_id: str
    source_path: str
    locator: str
    title: str
    heading_path: list[str]
    index: int  # position within its document, from 0
    tokens: int
    estimated: bool = False  # tokens estimated from words (no tokenizer)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "document_id": self.document_id,
            "source_path": self.source_path,
            "locator": self.locator,
            "title": self.title,
            "heading_path": self.heading_path,
            "index": self.index,
            "tokens": self.tokens,
            "estimated": self.estimated,
        }


@builder("documents", tasks=TASKS, chunks=True)
def documents(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    """Prose → token-sized chunks: the examples for `cpt`; for other tasks kept for RAG and synthetic Q&A.

    For `task: cpt`, one text example per chunk; for other tasks nothing (the stage keeps the chunks).
    """
    if project.task != "cpt":
        return
    settings = project.prepare.chunk
    chunks = chunk_documents(documents, settings.max_tokens, settings.overlap, base_tokenizer(project.base_model))
    by_id = {document.id: document for document in documents}
    for chunk in chunks:
        yield Example(
            text=chunk.text,
            source=source_ref(by_id[chunk.document_id], project),
            meta={
                "file": file_label(by_id[chunk.document_id], project),
                "title": chunk.title,
                "heading_path": chunk.heading_path,
                "chunk": chunk.index,
                "tokens": chunk.tokens,
            },
        )


@lru_cache(maxsize=4)
def _cached_tokenizer(path: str) -> Any:
    from tailorlm.modeling import ModelDirError, load_tokenizer

    if not Path(path).is_dir():
        return None
    try:
        return load_tokenizer(Path(path))
    except ModelDirError:
        return None


def base_tokenizer(base_model: Path | str) -> Any:
    """The base model's tokenizer, or None when the directory or its tokenizer can't be loaded."""
    return _cached_tokenizer(str(Path(base_model).expanduser()))


def token_counter(tokenizer: Any = None) -> Callable[[str], int]:
    """Counts tokens with `tokenizer`, or estimates them as words x 1.3 without one."""
    if tokenizer is None:
        return lambda text: math.ceil(len(text.split()) * WORDS_PER_TOKEN_ESTIMATE)
    return lambda text: len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def chunk_documents(documents: Sequence[Document], max_tokens: int, overlap: int, tokenizer: Any = None) -> list[Chunk]:
    """Chunks of every document, in order (see the module docstring).

    Raises:
        ValueError: when the overlap leaves less than half a chunk for new text.
    """
    if overlap * 2 > max_tokens:
        raise ValueError(
            f"prepare.chunk.overlap must be at most half of prepare.chunk.max_tokens (got {overlap} of {max_tokens})"
        )
    count = token_counter(tokenizer)
    chunks: list[Chunk] = []
    for document in documents:
        chunks.extend(_chunk_document(document, max_tokens, overlap, count, estimated=tokenizer is None))
    return chunks


@dataclass
class _Piece:
    text: str
    path: tuple[str, ...]
    tokens: int
    starts_section: bool


def _chunk_document(
    document: Document, max_tokens: int, overlap: int, count: Callable[[str], int], *, estimated: bool
) -> list[Chunk]:
    budget = max_tokens - overlap
    pieces = [p for section in _sections(document.text) for p in _pieces(*section, budget, count)]
    title = document.title or next((p.path[0] for p in pieces if p.path), "") or Path(document.source_path).stem
    groups: list[list[_Piece]] = []
    used = 0
    for piece in pieces:
        # +1 per join: the blank line between paragraphs is about one token.
        fits = bool(groups) and used + piece.tokens + 1 <= budget
        heading_break = piece.starts_section and used * 2 >= budget
        if not fits or heading_break:
            groups.append([])
            used = 0
        groups[-1].append(piece)
        used += piece.tokens + 1
    chunks: list[Chunk] = []
    previous: list[_Piece] = []
    for index, group in enumerate(groups):
        body = "\n\n".join(p.text for p in group)
        continues = bool(previous) and not group[0].starts_section and group[0].path == previous[-1].path
        if continues and overlap:
            tail = _tail(previous[-1].text, overlap, count)
            body = f"{tail}\n\n{body}" if tail else body
        chunks.append(
            Chunk(
                text=body,
                document_id=document.id,
                source_path=document.source_path,
                locator=document.locator,
                title=title,
                heading_path=list(group[0].path),
                index=index,
                tokens=count(body),
                estimated=estimated,
            )
        )
        previous = group
    return chunks


def _sections(text: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(heading path, lines) per section; the heading line stays at the top of its section."""
    sections: list[tuple[tuple[str, ...], list[str]]] = [((), [])]
    stack: list[tuple[int, str]] = []
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match:
            level = len(match.group(1))
            stack = [(lv, name) for lv, name in stack if lv < level] + [(level, match.group(2).strip())]
            sections.append((tuple(name for _, name in stack), [line]))
        else:
            sections[-1][1].append(line)
    kept: list[tuple[tuple[str, ...], list[str]]] = []
    carried: list[str] = []  # a heading with no text of its own opens the next section's first chunk
    for path, lines in sections:
        body = [line for line in lines if line.strip()]
        if not body:
            continue
        if path and len(body) == 1 and HEADING.match(body[0]):
            carried += [body[0], ""]
            continue
        kept.append((path, carried + lines))
        carried = []
    return kept


def _pieces(path: tuple[str, ...], lines: list[str], budget: int, count: Callable[[str], int]) -> list[_Piece]:
    """The section's paragraphs (a heading joined to the paragraph after it), none over `budget`."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]
    merged: list[str] = []
    for paragraph in paragraphs:
        if merged and all(HEADING.match(line) for line in merged[-1].splitlines() if line.strip()):
            merged[-1] = f"{merged[-1]}\n\n{paragraph}"
        else:
            merged.append(paragraph)
    pieces: list[_Piece] = []
    for paragraph in merged:
        for text in _fit(paragraph, budget, count):
            pieces.append(_Piece(text, path, count(text), starts_section=not pieces and bool(path)))
    return pieces


def _fit(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """Cut a paragraph over `budget` tokens at sentence ends, then at words."""
    if count(text) <= budget:
        return [text]
    parts: list[str] = []
    current = ""
    for sentence in SENTENCE_END.split(text):
        candidate = f"{current} {sentence}".strip()
        if count(candidate) <= budget:
            current = candidate
            continue
        if current:
            parts.append(current)
        if count(sentence) <= budget:
            current = sentence
        else:
            words = sentence.split()
            parts.extend(_word_windows(words, budget, count))
            current = ""
    if current:
        parts.append(current)
    return parts


def _word_windows(words: list[str], budget: int, count: Callable[[str], int]) -> list[str]:
    windows: list[str] = []
    start = 0
    while start < len(words):
        # The largest end whose window fits (binary search; one word always goes in).
        low, high = start + 1, len(words)
        while low < high:
            middle = (low + high + 1) // 2
            if count(" ".join(words[start:middle])) <= budget:
                low = middle
            else:
                high = middle - 1
        windows.append(" ".join(words[start:low]))
        start = low
    return windows


def _tail(text: str, overlap: int, count: Callable[[str], int]) -> str:
    """The end of `text` holding at most `overlap` tokens, cut at a word boundary."""
    starts = [m.start() for m in re.finditer(r"\S+", text)]
    low, high = 0, len(starts)  # the first word kept; len(starts) → nothing kept
    while low < high:
        middle = (low + high) // 2
        if count(text[starts[middle] :]) <= overlap:
            high = middle
        else:
            low = middle + 1
    return text[starts[low] :] if low < len(starts) else ""
