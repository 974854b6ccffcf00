"""Reads HTML pages into one Markdown Document per file: the main content, not the page chrome.

With beautifulsoup4 (lxml parser; the encoding from the BOM, `<meta charset>` or detection):
scripts, styles, forms, navigation, aside, hidden elements and the page's header and footer (not
an article's own) are dropped; the text comes from `<main>`, else the `<article>`s, else `<body>`.
Headings become `#` lines, lists `-` / `1.` items, tables Markdown tables, `<pre>` fenced code,
`<blockquote>` `>` lines; links keep their text only. The title is `<title>`, else the first
`<h1>`. A page with no text left ("no text found") fails. It can't: run JavaScript (pages built by
scripts come out empty), read frames, or keep images. `html_to_markdown` is shared with the e-mail
reader for HTML-only messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import CData, Comment, Declaration, Doctype, ProcessingInstruction

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, describe_start

# fmt: off
DROPPED = (
    "script", "style", "noscript", "template", "head", "nav", "header", "footer", "aside", "form",
    "button", "select", "textarea", "svg", "canvas", "iframe", "object", "embed", "dialog",
)
DROPPED_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "dialog"}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCKS = {
    *HEADINGS, "p", "div", "section", "article", "main", "body", "html", "blockquote", "ul", "ol", "li",
    "table", "pre", "hr", "dl", "dt", "dd", "figure", "figcaption", "address", "details", "summary", "center",
    "header", "footer",
}
# fmt: on
_BREAK = "\ue000"  # stands for <br> while HTML whitespace is collapsed
_NOT_TEXT = (Comment, CData, Declaration, Doctype, ProcessingInstruction)


def _clean(text: str) -> str:
    """Collapse HTML whitespace; keep the line breaks that came from <br>."""
    lines = " ".join(text.split()).split(_BREAK)
    return "\n".join(line.strip() for line in lines if line.strip())


def _table(table: Tag) -> str:
    rows = []
    for tr in table.find_all("tr"):
        cells = [
            _clean(cell.get_text(" ")).replace("|", "\\|").replace("\n", " ") for cell in tr.find_all(["th", "td"])
        ]
        if any(cells):
            rows.append(cells)
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def _list(node: Tag) -> str:
    lines = []
    for number, item in enumerate(node.find_all("li", recursive=False), start=1):
        parts: list[str] = []
        _blocks(item, parts)
        body = "\n".join(parts).split("\n") if parts else [""]
        marker = f"{number}. " if node.name == "ol" else "- "
        lines.append(marker + body[0])
        lines += ["  " + line if line else line for line in body[1:]]
    return "\n".join(lines)


def _blocks(node: Tag, out: list[str]) -> None:
    """Append the Markdown blocks of `node`'s children to `out`."""
    inline: list[str] = []

    def flush() -> None:
        if text := _clean("".join(inline)):
            out.append(text)
        inline.clear()

    for child in node.children:
        if isinstance(child, NavigableString):
            if not isinstance(child, _NOT_TEXT):
                inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        if child.name not in BLOCKS and child.find(BLOCKS) is None:
            inline.append(child.get_text())
            continue
        flush()
        if child.name in HEADINGS:
            if text := _clean(child.get_text(" ")).replace("\n", " "):
                out.append("#" * HEADINGS[child.name] + " " + text)
        elif child.name in ("ul", "ol"):
            if text := _list(child):
                out.append(text)
        elif child.name == "pre":
            if code := child.get_text().replace(_BREAK, "\n").strip("\n"):
                out.append(f"```\n{code}\n```")
        elif child.name == "table":
            if text := _table(child):
                out.append(text)
        elif child.name == "blockquote":
            quoted: list[str] = []
            _blocks(child, quoted)
            if quoted:
                out.append("\n".join(f"> {line}".rstrip() for line in "\n\n".join(quoted).split("\n")))
        elif child.name != "hr":
            _blocks(child, out)
    flush()


def html_to_markdown(markup: str | bytes) -> tuple[str, str | None]:
    """(Markdown text of the page's main content, title)."""
    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    title = _clean(title_tag.get_text(" ")) if title_tag else ""
    dropped = soup.find_all(DROPPED)
    dropped += soup.find_all(True, attrs={"role": lambda role: role in DROPPED_ROLES})
    dropped += soup.find_all(True, attrs={"hidden": True}) + soup.find_all(True, attrs={"aria-hidden": "true"})
    for tag in dropped:
        # An article's own <header> holds its title: only the page's header and footer are chrome.
        own = tag.name in ("header", "footer") and tag.find_parent(["main", "article"]) is not None
        if not tag.decomposed and not own:
            tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(_BREAK)
    roots = soup.find_all("main") or soup.find_all("article") or [soup.body or soup]
    # An <article> inside another chosen root is already part of it.
    chosen = {id(root) for root in roots}
    roots = [root for root in roots if not any(id(parent) in chosen for parent in root.parents)]
    blocks: list[str] = []
    for root in roots:
        _blocks(root, blocks)
    if not title:
        first = soup.find("h1")
        title = _clean(first.get_text(" ")) if first else ""
    return "\n\n".join(blocks), title or None


@reader(".html", ".htm", ".xhtml")
def read_html(path: Path) -> Iterator[Document]:
    source = SourceFile.of(path, "html")
    data = path.read_bytes()
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ReadError(f"binary content, not HTML ({describe_start(data)})")
    text, title = html_to_markdown(data)
    if not text.strip():
        raise ReadError("no text found (scripts, styles, navigation, header and footer are dropped)")
    yield source.document(text, title=title)
