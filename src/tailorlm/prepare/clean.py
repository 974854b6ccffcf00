"""Text cleaning and quality filters for `prepare`.

* `clean_text`: Unicode NFKC (ligatures, full-width forms and non-breaking spaces folded), invisible
  and control characters removed, line ends unified, runs of spaces collapsed (leading indentation and
  paragraph breaks kept), and page headers/footers removed: a line that opens or closes at least half
  of the pages of a document (pages separated by form feeds, as PDF text has them; digits ignored so
  "Page 3 of 9" matches "Page 4 of 9") is furniture, not content.
* `detect_language`: a small offline detector — the share of each language's most common function
  words (en, de, fr, es, it, nl, pt). No dependency and deterministic; it needs a sentence or two and
  tells only those seven languages apart (anything else, or too little text, is None).
* `filter_examples`: drops examples that would teach nothing or harm, each drop counted by reason
  (`DROP_REASONS`).
* `Scrubber`: what the stage applies to every document (and imported example) before a builder
  sees it: `clean_text`, then personal-data redaction (`prepare.pii`), counted by type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tailorlm.config import PrepareSettings
from tailorlm.documents import Document
from tailorlm.formats.examples import Example
from tailorlm.formats.preference import KEY as PREFERENCE
from tailorlm.formats.preference import rejected_of

DROP_REASONS = {
    "too_short": "the answer (or text) is shorter than prepare.min_chars",
    "empty_input": "the user turn is empty",
    "mostly_non_letters": "under 25% of the input's characters are letters (tables of numbers, binary junk)",
    "encoding_errors": "the text holds replacement characters (�): it was decoded with the wrong encoding",
}
MIN_LETTER_SHARE = 0.25
LETTER_CHECK_MIN_CHARS = 20  # shorter inputs ("SKU 12-345") are judged by nothing but min_chars
MAX_REPLACEMENT_SHARE = 0.01

_INVISIBLE = dict.fromkeys(
    [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD]  # zero-width spaces and joiners, BOM, soft hyphen
    + [c for c in range(32) if chr(c) not in "\n\t\f"]
    + [0x7F]
)
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_PAGE_NUMBER = re.compile(
    r"^\W*(page|seite|página|pagina|pag\.?|p\.)?\s*\d+(\s*(of|von|de|di|/)\s*\d+)?\W*$", re.IGNORECASE
)


def clean_text(text: str) -> str:
    """Normalise Unicode and whitespace and drop repeated page headers/footers (see the module docstring)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    pages = text.split("\f")
    if len(pages) > 1:
        pages = remove_page_furniture(pages)
    text = "\n\n".join(pages)
    return normalise_whitespace(text)


def normalise_whitespace(text: str) -> str:
    """Collapse runs of spaces inside lines, strip line ends, keep indentation and paragraph breaks."""
    lines = []
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" \t"))
        lead = line[:indent].replace("\t", "    ")
        lines.append(lead + _SPACES.sub(" ", line[indent:]).rstrip())
    joined = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def _furniture_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.split()).casefold())


def remove_page_furniture(pages: Sequence[str], *, edge_lines: int = 2, min_share: float = 0.5) -> list[str]:
    """Remove page headers and footers: lines among the first/last `edge_lines` non-empty lines of a
    page that recur (digits ignored) on at least `min_share` of the pages, and bare page numbers.
    Needs three pages or more; fewer are returned unchanged."""
    if len(pages) < 3:
        return list(pages)
    split = [page.split("\n") for page in pages]

    def edges(lines: list[str]) -> list[int]:
        filled = [i for i, line in enumerate(lines) if line.strip()]
        depth = max(1, min(edge_lines, len(filled) // 3))  # short pages: only their first and last line
        return sorted(set(filled[:depth] + filled[-depth:]))

    seen: Counter[str] = Counter()
    for lines in split:
        seen.update({_furniture_key(lines[i]) for i in edges(lines)})
    repeated = {key for key, n in seen.items() if n >= max(2, min_share * len(pages))}
    cleaned = []
    for lines in split:
        drop = {i for i in edges(lines) if _furniture_key(lines[i]) in repeated or _PAGE_NUMBER.match(lines[i].strip())}
        cleaned.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    return cleaned


# --- language ------------------------------------------------------------------------------------

_FUNCTION_WORDS = {
    "en": "the and of to is in that it for you with are on this be your not have as was at or we can will by "
    "from if an they which has our",
    "de": "der die und das ist nicht ich sie es den mit zu ein eine dem auf für sich auch wir wird von bei "
    "oder werden sind ihr ihre nach wenn",
    "fr": "le la les et des est une un du que pour dans pas vous nous sur au qui il elle sont avec ce cette "
    "votre ou aux par",
    "es": "el la los las y es que de en un una por para con no su se del al lo como más sus pero está son usted",
    "it": "il lo la gli le e è di che un una per con non sono del della nel alla si anche come più questo ci ha",
    "nl": "de het een en van is dat niet op te zijn met voor er aan als ook bij of maar uw wij deze wordt worden naar",
    "pt": "o a os as e é de que um uma para com não por em do da dos das se no na mais seu sua você são ao",
}
STOPWORDS: dict[str, frozenset[str]] = {lang: frozenset(words.split()) for lang, words in _FUNCTION_WORDS.items()}
_WORD = re.compile(r"[^\W\d_]+")


def detect_language(text: str, *, min_words: int = 5) -> str | None:
    """The language among en/de/fr/es/it/nl/pt whose function words cover the most of `text`.

    Returns None for fewer than `min_words` words or when under 10% of the words are function words
    of the best language (another language, code, tables).
    """
    words = [w.casefold() for w in _WORD.findall(text[:20_000])]
    if len(words) < min_words:
        return None
    scores = {language: sum(w in stop for w in words) for language, stop in STOPWORDS.items()}
    best = max(sorted(scores), key=lambda language: scores[language])
    return best if scores[best] >= 0.1 * len(words) else None


# --- filters -------------------------------------------------------------------------------------


def drop_reason(example: Example, settings: PrepareSettings) -> str | None:
    """Why an example should be dropped (a key of `DROP_REASONS`), or None to keep it."""
    if example.is_chat and not example.input_text.strip():
        return "empty_input"
    if len(example.target.strip()) < settings.min_chars:
        return "too_short"
    content = example.content_key()
    if content.count("\ufffd") > max(2, MAX_REPLACEMENT_SHARE * len(content)):
        return "encoding_errors"
    checked = example.input_text.strip()
    if len(checked) >= LETTER_CHECK_MIN_CHARS:
        letters = sum(char.isalpha() for char in checked)
        if letters < MIN_LETTER_SHARE * len(checked):
            return "mostly_non_letters"
    return None


def filter_examples(examples: Iterable[Example], settings: PrepareSettings) -> tuple[list[Example], Counter[str]]:
    """Keep the examples that pass the quality checks; count every drop by its reason."""
    kept: list[Example] = []
    drops: Counter[str] = Counter()
    for example in examples:
        reason = drop_reason(example, settings)
        if reason is None:
            kept.append(example)
        else:
            drops[reason] += 1
    return kept, drops


# --- clean and redact, before any example exists -------------------------------------------------


class Scrubber:
    """`clean_text`, then personal data replaced per `prepare.pii` (`redact`, `pseudonymize`, `off`),
    with what was found counted by type in `counts`.

    A pseudonym table (`mapping`) numbers values in order of appearance; pass one table per unit that
    should keep its pseudonyms (a document, an e-mail thread).
    """

    def __init__(self, pii: str, ner_model: Path | str | None = None) -> None:
        self.pii = pii
        # A local spaCy pipeline (person names are found only with one), or `auto`: the installed
        # pipeline of each text's language; a text too short to tell keeps the last language seen.
        self.ner_model = ner_model
        self.language = "en"
        self.pipelines: Counter[str] = Counter()  # pipeline used → texts
        self.counts: Counter[str] = Counter()

    def _pipeline(self, text: str) -> Path | None:
        if self.ner_model != "auto":
            return Path(self.ner_model) if self.ner_model else None
        from tailorlm.pii.ner import choose

        self.language = detect_language(text) or self.language
        pipeline = choose(self.language)
        self.pipelines[pipeline.name if pipeline else f"none for {self.language}"] += 1
        return pipeline

    def __call__(self, text: str, mapping: dict[str, str]) -> str:
        text = clean_text(text)
        if self.pii == "off" or not text:
            return text
        from tailorlm.pii import redact

        redaction = redact(text, self.pii, mapping=mapping, ner_model=self._pipeline(text))  # type: ignore[arg-type]
        self.counts.update(redaction.counts)
        return redaction.text

    def value(self, value: Any, mapping: dict[str, str]) -> Any:
        """Strings scrubbed, inside dicts and lists too (a JSONL record's nested gold fields)."""
        if isinstance(value, str):
            return self(value, mapping)
        if isinstance(value, dict):
            return {k: self.value(v, mapping) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, mapping) for v in value]
        return value

    def documents(
        self,
        documents: Sequence[Document],
        *,
        fields: Callable[[str], bool] = lambda name: True,
        text: Callable[[Document], bool] = lambda document: True,
        units: Mapping[str, str] | None = None,
    ) -> list[Document]:
        """Scrubbed copies of documents: the title, the `fields` chosen by name and the text.

        Args:
            fields: Which fields hold text to scrub (identifiers and labels don't); the others are
                copied as they are, so only pass over fields nobody will read.
            text: Whether a document's text is read; when not, the copy's text is empty, so
                unredacted text can't slip through.
            units: Document id → the unit sharing one pseudonym table (an e-mail thread); default:
                each document on its own.
        """
        tables: dict[str, dict[str, str]] = {}
        scrubbed = []
        for document in documents:
            mapping = tables.setdefault((units or {}).get(document.id, document.id), {})
            values = {k: self.value(v, mapping) if fields(k) else v for k, v in document.fields.items()}
            title = self(document.title, mapping) if document.title else document.title
            body = self(document.text, mapping) if text(document) else ""
            scrubbed.append(dataclasses.replace(document, text=body, fields=values, title=title))
        return scrubbed

    def example(self, example: Example) -> Example:
        """An imported example with its turns (or text) scrubbed; one pseudonym table per example."""
        mapping: dict[str, str] = {}
        data = example.model_dump()
        if hashlib.sha256(example.content_key().encode()).hexdigest()[:16] == example.id:
            data["id"] = ""  # a content id follows the new content; an id given in the file is kept
        if example.messages is not None:
            data["messages"] = [{"role": m.role, "content": self(m.content, mapping)} for m in example.messages]
            if (rejected := rejected_of(example)) is not None:  # a preference pair's other answer
                data["meta"][PREFERENCE] = {**data["meta"][PREFERENCE], "rejected": self(rejected, mapping)}
        else:
            data["text"] = self(example.text or "", mapping)
        return Example.model_validate(data)
