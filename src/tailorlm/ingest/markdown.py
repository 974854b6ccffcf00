r"""Reads Markdown and plain-text files into one Document each, text kept as written.

A leading YAML front-matter block (`---` ... `---`) is moved out of the text into
`meta["front_matter"]`; the title is its `title`, else the first heading (`# ...` or an underlined
one, outside code fences). Newlines are normalised to "\\n" and the encoding is detected (see
`decode_text`). It can't: render Markdown, follow includes or links, or read binary files named .md
("binary content, not text").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, decode_text

_FRONT_MATTER = re.compile(r"\A---\n(.*?\n)---[ \t]*(?:\n|\Z)", re.DOTALL)
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter, body); a block that isn't a YAML mapping is left in the body."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    return data, text[match.end() :]


def first_heading(text: str) -> str | None:
    """The first ATX or setext heading's text, ignoring fenced code blocks."""
    fence: str | None = None
    previous = ""
    for line in text.split("\n"):
        if match := _FENCE.match(line):
            marker = match.group(1)[0]
            fence = None if fence == marker else (fence or marker)
        elif fence is None:
            if match := _ATX_HEADING.match(line):
                return match.group(1).strip()
            if previous.strip() and _SETEXT_UNDERLINE.match(line) and not _FENCE.match(previous):
                return previous.strip()
        previous = line if fence is None else ""
    return None


@reader(".md", ".markdown", ".txt", ".text")
def read_markdown(path: Path) -> Iterator[Document]:
    source = SourceFile.of(path, "markdown")
    text, encoding = decode_text(path.read_bytes())
    front_matter, body = split_front_matter(text)
    if not body.strip():
        raise ReadError(
            "no text found (the file is empty or only whitespace" + (" and front matter)" if front_matter else ")")
        )
    title = front_matter.get("title")
    meta: dict[str, Any] = {"encoding": encoding}
    if front_matter:
        meta["front_matter"] = front_matter
    yield source.document(
        body.strip("\n"),
        title=str(title).strip() if title else first_heading(body),
        meta=meta,
    )
