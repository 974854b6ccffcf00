"""The `faq` builder: question/answer pairs → single-turn chat examples (system = the project's prompt).

Two shapes of input:

* table rows (CSV, XLSX) with the columns named by `source.question` / `source.answer`
  (default `question`, `answer`); a missing column is an error naming the file and its columns;
* Markdown or text FAQs: `Q:` / `A:` lines (also `Question:` / `Answer:`, optionally bold), or
  headings that are questions (`## How do I reset the hub?`) followed by their answer.

Each pair is its own `source` (`faq.csv#row 3`, `faq.md#q3`), so one FAQ file spreads over the splits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from tailorlm.config import Project, Source
from tailorlm.documents import Document
from tailorlm.formats.examples import Example
from tailorlm.prepare.builders import (
    BuilderOutput,
    Reads,
    Skipped,
    builder,
    file_label,
    require_columns,
    source_ref,
    text_of,
)

QUESTION_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?(?:\*\*|__)?\s*(?:Q|Question)\s*(?:\d+\s*)?[:.)]\s*(?:\*\*|__)?\s*", re.IGNORECASE
)
ANSWER_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?(?:\*\*|__)?\s*(?:A|Answer)\s*(?:\d+\s*)?[:.)]\s*(?:\*\*|__)?\s*", re.IGNORECASE
)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _reads(source: Source) -> Reads:
    """The question and answer columns of rows; the text of Markdown/text FAQs."""
    return Reads.columns([source.question, source.answer])


@builder("faq", tasks=("chat", "generate"), reads=_reads)
def faq(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    """Question/answer pairs → one single-turn chat example each."""
    rows = [d for d in documents if d.fields]
    if rows:
        require_columns(rows, {"question": source.question, "answer": source.answer}, project)
    for document in documents:
        if document.fields:
            pairs: list[tuple[str, str]] = [
                (text_of(document.fields.get(source.question)), text_of(document.fields.get(source.answer)))
            ]
            refs = [source_ref(document, project)]
        else:
            pairs = list(parse_markdown_faq(document.text))
            refs = [source_ref(document, project, f"q{n}") for n in range(1, len(pairs) + 1)]
            if not pairs:
                yield Skipped("no question/answer pairs found in a text document", source_ref(document, project))
        for (question, answer), ref in zip(pairs, refs, strict=True):
            if not question:
                yield Skipped("empty question", ref)
            elif not answer:
                yield Skipped("empty answer", ref)
            else:
                yield Example.chat(
                    system=project.system_prompt,
                    user=question,
                    assistant=answer,
                    source=ref,
                    meta={"file": file_label(document, project)},
                )


def parse_markdown_faq(text: str) -> Iterator[tuple[str, str]]:
    """Question/answer pairs of a Markdown/text FAQ: `Q:`/`A:` lines if any, else question headings."""
    lines = text.splitlines()
    if any(QUESTION_LINE.match(line) for line in lines) and any(ANSWER_LINE.match(line) for line in lines):
        yield from _qa_lines(lines)
    else:
        yield from _question_headings(lines)


def _qa_lines(lines: list[str]) -> Iterator[tuple[str, str]]:
    question: list[str] = []
    answer: list[str] = []
    current: list[str] | None = None
    for line in lines:
        if QUESTION_LINE.match(line):
            if question and answer:
                yield _join(question), _join(answer)
            question, answer = [QUESTION_LINE.sub("", line, count=1)], []
            current = question
        elif ANSWER_LINE.match(line) and question:
            answer = [ANSWER_LINE.sub("", line, count=1)]
            current = answer
        elif HEADING.match(line):
            current = None  # a heading ends the answer; it is not part of it
        elif current is not None:
            current.append(line)
    if question and answer:
        yield _join(question), _join(answer)


def _question_headings(lines: list[str]) -> Iterator[tuple[str, str]]:
    """Headings with a body; when some headings end with '?', only those count as questions."""
    sections: list[tuple[int, str, list[str]]] = []
    in_fence = False
    for line in lines:
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match:
            sections.append((len(match.group(1)), match.group(2).strip(), []))
        elif sections:
            sections[-1][2].append(line)
    asked = [s for s in sections if s[1].endswith("?")]
    # Without question marks, the level-1 heading is the page title, not a question.
    chosen = asked or [s for s in sections if s[0] >= 2]
    for _level, heading, body in chosen:
        answer = _join(body)
        if answer:
            yield heading, answer


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip()
