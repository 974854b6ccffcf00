"""Find personal data in text (``find_pii``) and redact or pseudonymize it (``redact``), with
presidio-analyzer running the recognizers of ``rules.py`` (plus a local spaCy NER for names when
``ner_model`` is given) and presidio-anonymizer doing the replacement."""

from __future__ import annotations

import functools
import unicodedata
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import regex

from tailorlm.pii.rules import (
    ALL_TYPES,
    EMAIL,
    LANGUAGE,
    PATTERN_TYPES,
    PERSON,
    PRIORITY,
    RULES,
    URL_SECRET,
    import_presidio,
    make_recognizer,
)

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

# Every pattern type needs a digit, an "@" (e-mail) or a ":" (IPv6, URL): texts without any skip
# the analyzer.
_MAYBE_PII = regex.compile(r"[\d@:]")
# Long texts are analysed (and anonymized) in pieces cut at line ends, which keeps presidio's
# per-call work bounded; none of the types above spans a line break.
_CHUNK_CHARS = 20_000


@dataclass(frozen=True)
class _Engine:
    analyzer: AnalyzerEngine
    artifacts: Any
    """Empty NLP artifacts reused on every call when there is no NER model; None runs the model."""


@functools.lru_cache(maxsize=4)
def _engine(ner_model: Path | None) -> _Engine:
    """The analyzer, built once per NER setting: recognizers compile their patterns here."""
    import_presidio()
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    # find_pii is called once per text field, so presidio's per-call bookkeeping matters: the
    # recognizer lookup is cached, the context pass skipped (our rules check their own context),
    # and without NER the empty NLP artifacts are built once instead of per call.
    class Registry(RecognizerRegistry):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self._cached: dict[tuple[Any, ...], list[EntityRecognizer]] = {}

        def get_recognizers(
            self,
            language: str,
            entities: list[str] | None = None,
            all_fields: bool = False,
            ad_hoc_recognizers: list[EntityRecognizer] | None = None,
        ) -> list[EntityRecognizer]:
            if ad_hoc_recognizers:
                return super().get_recognizers(language, entities, all_fields, ad_hoc_recognizers)
            key = (language, tuple(entities or ()), all_fields)
            if key not in self._cached:
                self._cached[key] = super().get_recognizers(language, entities, all_fields)
            return self._cached[key]

    class Analyzer(AnalyzerEngine):
        def _enhance_using_context(self, text: str, raw_results: Any, *args: Any, **kw: Any) -> Any:
            return raw_results

    recognizers = [make_recognizer(entity, rules) for entity, rules in RULES.items()]
    if ner_model is None:
        nlp_engine: Any = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
    else:
        # An existing path: presidio would otherwise try to download a model by that name.
        if not ner_model.is_dir():
            raise FileNotFoundError(f"PII ner_model: no spaCy pipeline directory at {ner_model}")
        nlp_engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": str(ner_model)}])
        recognizers.append(SpacyRecognizer(supported_language=LANGUAGE, supported_entities=[PERSON]))
    registry = Registry(recognizers=recognizers, supported_languages=[LANGUAGE])
    analyzer = Analyzer(registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE])
    return _Engine(analyzer, nlp_engine.process_text("", LANGUAGE) if ner_model is None else None)


@functools.cache
def _anonymizer() -> AnonymizerEngine:
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


# --------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data: its type, where it is (``text[start:end]``) and how sure we are."""

    type: str
    start: int
    end: int
    text: str
    score: float


@dataclass
class Redaction:
    """A text with its personal data replaced, the spans found (in the original text) and counts."""

    text: str
    spans: list[PiiSpan]
    counts: dict[str, int] = field(default_factory=dict)


def _check_types(types: Collection[str] | None, ner_model: Path | None) -> list[str]:
    if types is None:
        return sorted(PATTERN_TYPES | ({PERSON} if ner_model is not None else set()))
    unknown = sorted(set(types) - ALL_TYPES)
    if unknown:
        raise ValueError(f"PII types: unknown {unknown}; known: {sorted(ALL_TYPES)}")
    if PERSON in types and ner_model is None:
        raise ValueError("PII type PERSON needs a local NER model: pass ner_model (a spaCy pipeline directory)")
    return sorted(types)


def _chunks(text: str) -> list[tuple[int, str]]:
    if len(text) <= _CHUNK_CHARS:
        return [(0, text)]
    pieces, start = [], 0
    while start < len(text):
        end = min(start + _CHUNK_CHARS, len(text))
        if end < len(text):  # cut after the last line end, else the last space, in the second half
            half = start + _CHUNK_CHARS // 2
            cut = text.rfind("\n", half, end)
            cut = cut if cut >= 0 else text.rfind(" ", half, end)
            end = cut + 1 if cut >= 0 else end
        pieces.append((start, text[start:end]))
        start = end
    return pieces


def find_pii(text: str, *, types: Collection[str] | None = None, ner_model: Path | None = None) -> list[PiiSpan]:
    """Find personal data in ``text``.

    Args:
        text: Any text, in any language.
        types: The types to look for (constants of this module); None means every pattern type,
            plus PERSON when ``ner_model`` is set.
        ner_model: A local spaCy pipeline directory whose NER finds PERSON; without it names are
            not detected. Nothing is downloaded.

    Returns:
        Non-overlapping spans sorted by position. Where findings overlap, a URL with a secret
        beats an e-mail, which beats a checksum-validated ID, which beats an IP or a phone number.
    """
    entities = _check_types(types, ner_model)
    if ner_model is None and not _MAYBE_PII.search(text):
        return []
    engine = _engine(ner_model)
    found: list[PiiSpan] = []
    for offset, piece in _chunks(text):
        for result in engine.analyzer.analyze(
            piece, language=LANGUAGE, entities=entities, nlp_artifacts=engine.artifacts
        ):
            start, end = offset + result.start, offset + result.end
            found.append(PiiSpan(result.entity_type, start, end, text[start:end], float(result.score)))
    found.sort(key=lambda s: (-PRIORITY.get(s.type, 0), -(s.end - s.start), s.start, s.type))
    chosen: list[PiiSpan] = []
    taken: list[tuple[int, int]] = []
    for span in found:
        if all(span.end <= start or span.start >= end for start, end in taken):
            chosen.append(span)
            taken.append((span.start, span.end))
    return sorted(chosen, key=lambda s: s.start)


def _canonical(span: PiiSpan) -> str:
    """The form under which a value is recognised again: '+33 6 12…' and '+33612…' are one number."""
    if span.type == EMAIL:
        return span.text.casefold()
    if span.type in (URL_SECRET, PERSON):
        return unicodedata.normalize("NFKC", span.text)
    return "".join(char for char in span.text if char.isalnum() or char == "+").upper()


def redact(
    text: str,
    mode: Literal["redact", "pseudonymize"],
    *,
    types: Collection[str] | None = None,
    mapping: dict[str, str] | None = None,
    ner_model: Path | None = None,
) -> Redaction:
    """Replace the personal data in ``text``.

    Args:
        text: The text to clean.
        mode: ``"redact"`` replaces each value with its type (``[EMAIL]``); ``"pseudonymize"``
            with a numbered placeholder (``[EMAIL_1]``), the same value getting the same number.
        types: As in :func:`find_pii`.
        mapping: Pseudonymize only: the value → placeholder table, updated in place. Pass the
            same dict for every part of one document (subject, body, reply) so a value keeps its
            placeholder across them; keys are normalised values (case-folded e-mail, phone digits).
        ner_model: As in :func:`find_pii`.

    Returns:
        The new text, the spans found in the original text and the count per type.
    """
    if mode not in ("redact", "pseudonymize"):
        raise ValueError(f"prepare.pii must be 'redact' or 'pseudonymize' (got {mode!r})")
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    spans = find_pii(text, types=types, ner_model=ner_model)
    counts = dict(Counter(span.type for span in spans))
    if not spans:
        return Redaction(text, spans, counts)
    operators: dict[str, Any]
    if mode == "redact":
        operators = {kind: OperatorConfig("replace", {"new_value": f"[{kind}]"}) for kind in counts}
    else:
        table = {} if mapping is None else mapping
        used = Counter(value[1:].rsplit("_", 1)[0] for value in table.values())
        # Numbers are handed out in reading order before presidio runs (it works end to start).
        for span in spans:
            key = _canonical(span)
            if key not in table:
                used[span.type] += 1
                table[key] = f"[{span.type}_{used[span.type]}]"
        operators = {
            kind: OperatorConfig("custom", {"lambda": functools.partial(_lookup, table, kind)}) for kind in counts
        }
    # presidio rebuilds the text once per entity, so a long text goes through in the same pieces
    # find_pii analysed (no span crosses one).
    pieces, remaining = [], iter(spans)
    pending = next(remaining, None)
    for offset, piece in _chunks(text):
        results = []
        while pending is not None and pending.start < offset + len(piece):
            results.append(RecognizerResult(pending.type, pending.start - offset, pending.end - offset, pending.score))
            pending = next(remaining, None)
        if results:
            piece = _anonymizer().anonymize(piece, results, operators=operators, merge_entities_with_spaces=False).text
        pieces.append(piece)
    return Redaction("".join(pieces), spans, counts)


def _lookup(table: dict[str, str], kind: str, value: str) -> str:
    return table[_canonical(PiiSpan(kind, 0, len(value), value, 1.0))]
