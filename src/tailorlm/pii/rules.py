"""The types of personal data and their recognizers: per type, regular expressions that find
candidates and the validator (``validators.py``) that decides, built into presidio
``PatternRecognizer`` s; and the priority that settles overlapping findings."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import regex

from tailorlm.pii.validators import (
    card_ok,
    codice_fiscale_valid,
    dni_valid,
    email_ok,
    iban_valid,
    ipv4_ok,
    ipv6_ok,
    nie_valid,
    nino_ok,
    nir_valid,
    phone_in_context_ok,
    phone_international_ok,
    phone_national_ok,
    phone_north_american_ok,
    ssn_ok,
    steuer_id_valid,
    url_secret_ok,
)

EMAIL = "EMAIL"
PHONE = "PHONE"
IBAN = "IBAN"
CREDIT_CARD = "CREDIT_CARD"
IP_ADDRESS = "IP_ADDRESS"
URL_SECRET = "URL_SECRET"
US_SSN = "US_SSN"
UK_NINO = "UK_NINO"
DE_STEUER_ID = "DE_STEUER_ID"
FR_NIR = "FR_NIR"
IT_FISCAL_CODE = "IT_FISCAL_CODE"
ES_DNI = "ES_DNI"
ES_NIE = "ES_NIE"
PERSON = "PERSON"

# When two findings overlap, the higher priority wins (then the longer one): a URL carrying a
# token may contain an e-mail address, and a checksum-validated ID beats a phone-shaped reading
# of the same digits.
PRIORITY = {
    URL_SECRET: 6,
    EMAIL: 5,
    IBAN: 4,
    CREDIT_CARD: 4,
    DE_STEUER_ID: 4,
    FR_NIR: 4,
    IT_FISCAL_CODE: 4,
    ES_DNI: 4,
    ES_NIE: 4,
    US_SSN: 3,
    UK_NINO: 3,
    IP_ADDRESS: 2,
    PHONE: 1,
    PERSON: 0,
}
PATTERN_TYPES: frozenset[str] = frozenset(PRIORITY) - {PERSON}
"""Types found by pattern + validator, always available."""
ALL_TYPES: frozenset[str] = frozenset(PRIORITY)
"""Every type; PERSON needs ``ner_model``."""

# presidio keys recognizers by language; ours are language-independent, so all run under one key.
LANGUAGE = "en"


# --------------------------------------------------------------------------------------------
# Recognizers: a regular expression finds candidates, a validator decides.


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str
    check: Callable[[str], bool]
    score: float = 1.0
    context: tuple[str, ...] = ()
    """If set, one of these words must appear shortly before the match."""
    shrink: bool = False
    """If the whole match fails, retry without its trailing separator-delimited groups."""
    not_after: str = ""
    """A pattern that must not match the text right before the match (it ends with ``$``)."""


_PHONE_WORDS = (
    "tel", "tél", "tele", "phone", "mobile", "mob", "cell", "fax", "fon", "telefon", "telefono",
    "teléfono", "telefone", "telemóvel", "telemovel", "móvil", "movil", "cellulare", "portable",
    "handy", "whatsapp", "call", "llamar", "llame", "chiamare", "appeler", "anrufen", "bel", "ligar",
)  # fmt: skip

# Shared boundaries: not glued to a word, an identifier (ACM-104233), a decimal number, or the
# previous group of a longer number.
_B = r"(?<![\w+.,/-]|\d[ ./-])"
_E = r"(?![\w-]|[.,]\d)"
# A phone-shaped run of digits is not a phone when it continues a number or an IBAN-shaped code
# (the tail of "NL91 ABNA 0417 1643 01" with a wrong check digit).
_NOT_AFTER_NUMBER = r"(?:\d|\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{1,4})*)[ ./-]$"

RULES: dict[str, list[Rule]] = {
    EMAIL: [
        Rule(
            "email",
            r"(?<![\w.%+-])\w(?:[\w.%+-]{0,63}[\w%+-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
            r"[A-Za-z]{2,24}(?![\w-])",
            email_ok,
        )
    ],
    PHONE: [
        Rule(
            "international",
            r"(?<![\w+])(?:\+|00(?=[1-9]\d{0,2}[ .-]))[1-9]\d{0,2}(?:[ .-]?\(0\))?"
            r"(?:[ .\-/]?(?:\(\d{1,5}\)|\d{1,5})){1,6}(?![\w@])",
            phone_international_ok,
            score=0.9,
            shrink=True,
            not_after=_NOT_AFTER_NUMBER,
        ),
        Rule("north-american", r"(?<![\w(])\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}" + _E, phone_north_american_ok, 0.85),
        Rule("north-american-dashed", _B + r"\d{3}([.-])\d{3}\1\d{4}" + _E, phone_north_american_ok, 0.7),
        Rule(
            "national",
            _B + r"0[1-9]\d{0,3}(?:[ ./-]\d{2,8}){1,4}" + _E,
            phone_national_ok,
            score=0.85,
            shrink=True,
            not_after=_NOT_AFTER_NUMBER,
        ),
        # Eleven bare digits may as well be a VAT or customer number: only after a phone word.
        Rule("national-compact", _B + r"0[1-9]\d{7,10}" + _E, phone_national_ok, 0.7, context=_PHONE_WORDS),
        Rule(
            "in-context",
            _B + r"[1-9]\d{1,3}(?:[ .-]?\d{2,4}){2,4}" + _E,
            phone_in_context_ok,
            score=0.7,
            context=_PHONE_WORDS,
            shrink=True,
            not_after=_NOT_AFTER_NUMBER,
        ),
    ],
    IBAN: [
        Rule(
            "iban",
            r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{1,4}){2,9}(?![A-Za-z0-9])",
            iban_valid,
            shrink=True,
        )
    ],
    CREDIT_CARD: [
        Rule("card", r"(?<![\w-])[2-6]\d{3}([ -]?)\d{4}\1\d{4}\1\d{1,4}(?![\w-])", card_ok),
        Rule("amex", r"(?<![\w-])3[47]\d{2}([ -]?)\d{6}\1\d{5}(?![\w-])", card_ok),
    ],
    IP_ADDRESS: [
        Rule("ipv4", r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)", ipv4_ok, score=0.9),
        Rule(
            "ipv6",
            r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w:])",
            ipv6_ok,
            score=0.9,
        ),
    ],
    URL_SECRET: [
        Rule(
            "url",
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]",
            url_secret_ok,
            score=0.9,
        )
    ],
    US_SSN: [
        Rule("ssn", r"\b(?<!-)(?!000|666|9)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])", ssn_ok, 0.85),
        Rule(
            "ssn-compact",
            r"\b(?<!-)(?!000|666|9)\d{3}(?!00)\d{2}(?!0000)\d{4}(?![\w-])",
            ssn_ok,
            score=0.6,
            context=("ssn", "social security", "ss#", "ss no"),
        ),
    ],
    UK_NINO: [
        Rule(
            "nino",
            r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?!\w)",
            nino_ok,
            score=0.85,
        )
    ],
    DE_STEUER_ID: [Rule("steuer-id", _B + r"[1-9]\d( ?)\d{3}\1\d{3}\1\d{3}" + _E, steuer_id_valid)],
    FR_NIR: [
        Rule(
            "nir",
            _B + r"[12378] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + _E,
            nir_valid,
        )
    ],
    IT_FISCAL_CODE: [
        Rule(
            "codice-fiscale",
            r"(?<!\w)[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z](?!\w)",
            codice_fiscale_valid,
        )
    ],
    ES_DNI: [Rule("dni", r"\b(?<!-)\d{8}[ -]?[A-HJ-NP-TV-Z](?!\w)", dni_valid)],
    ES_NIE: [Rule("nie", r"(?<![\w-])[XYZ][ -]?\d{7}[ -]?[A-HJ-NP-TV-Z](?!\w)", nie_valid)],
}


def _shorter(candidate: str) -> str | None:
    """The candidate without its last separator-delimited group, or None if nothing is left."""
    cut = max(candidate.rfind(sep) for sep in " -./")
    if cut <= 0:
        return None
    return candidate[:cut].rstrip(" -./") or None


def make_recognizer(entity: str, rules: list[Rule]) -> Any:
    import_presidio()
    from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult

    name = f"tailorlm-{entity.lower()}"

    class RuleRecognizer(PatternRecognizer):
        """A presidio PatternRecognizer whose matches must pass a validator.

        ``analyze`` is overridden (as presidio's own IbanRecognizer does) so that a failed match
        can be shortened and retried, and a match can require a context word before it.
        """

        def __init__(self) -> None:
            super().__init__(
                supported_entity=entity,
                name=name,
                supported_language=LANGUAGE,
                patterns=[Pattern(rule.name, rule.pattern, rule.score) for rule in rules],
                global_regex_flags=regex.MULTILINE,
            )
            self._compiled = [
                (
                    rule,
                    regex.compile(rule.pattern, regex.MULTILINE),
                    regex.compile(r"\b(?:" + "|".join(rule.context) + r")\b", regex.IGNORECASE)
                    if rule.context
                    else None,
                    regex.compile(rule.not_after) if rule.not_after else None,
                )
                for rule in rules
            ]

        def validate_result(self, pattern_text: str) -> bool | None:
            return any(rule.check(pattern_text) for rule in rules)

        def analyze(
            self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: int | None = None
        ) -> list[Any]:
            results = []
            for rule, pattern, context, not_after in self._compiled:
                for match in pattern.finditer(text):
                    start = match.start()
                    if context is not None and not context.search(text, max(0, start - 32), start):
                        continue
                    if not_after is not None and not_after.search(text, max(0, start - 40), start):
                        continue
                    candidate: str | None = match.group()
                    while candidate is not None and not rule.check(candidate):
                        candidate = _shorter(candidate) if rule.shrink else None
                    if candidate is None:
                        continue
                    results.append(
                        RecognizerResult(
                            entity,
                            start,
                            start + len(candidate),
                            rule.score,
                            recognition_metadata={
                                RecognizerResult.RECOGNIZER_NAME_KEY: name,
                                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                            },
                        )
                    )
            return EntityRecognizer.remove_duplicates(results) if len(results) > 1 else results

    return RuleRecognizer()


def import_presidio() -> None:
    """Import presidio-analyzer without transformers.

    presidio imports ``transformers.pipeline`` at import time for its optional Hugging Face NER
    engine, which is never used here; that alone doubles the import (torch + transformers, seconds
    on a hot path that otherwise needs none of it). Unless transformers is already loaded, it is
    hidden while presidio imports, so presidio marks that engine unavailable (its two modules are
    the only importers in that window); transformers itself imports normally afterwards.
    """
    if "presidio_analyzer" in sys.modules or "transformers" in sys.modules:
        return
    sys.modules["transformers"] = None  # type: ignore[assignment]
    try:
        import presidio_analyzer  # noqa: F401
    finally:
        if sys.modules.get("transformers", ...) is None:
            del sys.modules["transformers"]
