"""Finds personal data in text and redacts or pseudonymizes it, fully offline.

Detection runs presidio-analyzer with our own pattern recognizers (no spaCy model, no network):
every candidate a regular expression finds must also pass a validator — a checksum where the
identifier has one (IBAN mod-97, Luhn, Steuer-ID, NIR key, codice fiscale, DNI/NIE letter), a
structural check otherwise (phone numbers through libphonenumber, IP addresses through
``ipaddress``). Personal names are found only when a local NER model is configured
(``ner_model``); without one, names stay in the text. Replacement uses presidio-anonymizer.

    >>> redact("Write to jane@acme.example or call +44 20 7946 0958.", "redact").text
    'Write to [EMAIL] or call [PHONE].'
"""

from __future__ import annotations

import functools
import ipaddress
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import phonenumbers
import regex

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

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
_PRIORITY = {
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
PATTERN_TYPES: frozenset[str] = frozenset(_PRIORITY) - {PERSON}
"""Types found by pattern + validator, always available."""
ALL_TYPES: frozenset[str] = frozenset(_PRIORITY)
"""Every type; PERSON needs ``ner_model``."""

# presidio keys recognizers by language; ours are language-independent, so all run under one key.
_LANGUAGE = "en"
# Every pattern type needs a digit, an "@" (e-mail) or a ":" (IPv6, URL): texts without any skip
# the analyzer.
_MAYBE_PII = regex.compile(r"[\d@:]")
# Long texts are analysed (and anonymized) in pieces cut at line ends, which keeps presidio's
# per-call work bounded; none of the types above spans a line break.
_CHUNK_CHARS = 20_000


# --------------------------------------------------------------------------------------------
# Checksum validators: plain functions, separators (spaces, hyphens) allowed.


def _compact(value: str) -> str:
    return value.replace(" ", "").replace("-", "").replace(".", "")


def luhn_valid(number: str) -> bool:
    """Whether ``number`` (digits, optionally grouped by spaces or hyphens) passes the Luhn check."""
    digits = _compact(number)
    if len(digits) < 2 or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# IBAN length per country (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` has its country's length and a valid ISO 13616 mod-97 check."""
    value = _compact(iban).upper()
    if _IBAN_LENGTHS.get(value[:2]) != len(value) or not value.isascii() or not value.isalnum():
        return False
    if not value[2:4].isdigit():
        return False
    rearranged = value[4:] + value[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def steuer_id_valid(number: str) -> bool:
    """Whether ``number`` is a well-formed German tax ID (Steuerliche Identifikationsnummer).

    Eleven digits, no leading zero; in the first ten exactly one digit repeats (twice, or three
    times but never three in a row) and the last is the ISO 7064 MOD 11,10 check digit.
    """
    digits = _compact(number)
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit() or digits[0] == "0":
        return False
    counts = Counter(digits[:10])
    repeated = [digit for digit, count in counts.items() if count > 1]
    if len(repeated) != 1 or counts[repeated[0]] > 3:
        return False
    if counts[repeated[0]] == 3 and repeated[0] * 3 in digits[:10]:
        return False
    product = 10
    for char in digits[:10]:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(digits[10])


def nir_valid(nir: str) -> bool:
    """Whether ``nir`` is a French social security number (NIR) whose 2-digit key matches.

    The key is ``97 - (first 13 digits mod 97)``; Corsican departments 2A/2B count as 19/18.
    """
    value = _compact(nir).upper()
    if len(value) != 15 or value[0] not in "12378":
        return False
    body = value[:13].replace("2A", "19", 1) if value[5:7] == "2A" else value[:13]
    body = body.replace("2B", "18", 1) if value[5:7] == "2B" else body
    if not (body + value[13:]).isdigit() or not body.isascii():
        return False
    month = int(value[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return 97 - int(body) % 97 == int(value[13:])


# Values of the characters in odd positions (1st, 3rd, …); digits 0-9 count as letters A-J.
_CF_ODD_VALUES = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]
_CF_ODD = {
    **dict(zip(string.digits, _CF_ODD_VALUES, strict=False)),
    **dict(zip(string.ascii_uppercase, _CF_ODD_VALUES, strict=True)),
}
_CF_EVEN = {**{d: int(d) for d in string.digits}, **{c: i for i, c in enumerate(string.ascii_uppercase)}}
# Homocody: a digit replaced by a letter when two people would get the same code.
_CF_DIGIT_LETTERS = "LMNPQRSTUV"
# Month letters A (January) … T (December) and the longest month; the year is not known here.
_CF_MONTH_DAYS = dict(zip("ABCDEHLMPRST", (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), strict=True))
_CF_SHAPE = regex.compile(r"[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]")


def codice_fiscale_valid(code: str) -> bool:
    """Whether ``code`` is an Italian fiscal code (codice fiscale) with a valid check character."""
    value = code.strip().upper()
    if not _CF_SHAPE.fullmatch(value):
        return False
    day = int("".join(str(_CF_DIGIT_LETTERS.index(c)) if c.isalpha() else c for c in value[9:11])) % 40
    if not 1 <= day <= _CF_MONTH_DAYS[value[8]]:  # women have 40 added to the day
        return False
    total = sum((_CF_ODD if i % 2 == 0 else _CF_EVEN)[char] for i, char in enumerate(value[:15]))
    return string.ascii_uppercase[total % 26] == value[15]


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_valid(dni: str) -> bool:
    """Whether ``dni`` is a Spanish DNI (eight digits and the matching mod-23 letter)."""
    value = _compact(dni).upper()
    return (
        len(value) == 9
        and value[:8].isascii()
        and value[:8].isdigit()
        and _DNI_LETTERS[int(value[:8]) % 23] == value[8]
    )


def nie_valid(nie: str) -> bool:
    """Whether ``nie`` is a Spanish foreigner ID (X/Y/Z, seven digits, the mod-23 letter)."""
    value = _compact(nie).upper()
    if len(value) != 9 or value[0] not in "XYZ":
        return False
    return dni_valid(str("XYZ".index(value[0])) + value[1:])


# --------------------------------------------------------------------------------------------
# Structural validators for the types without a checksum.

_FILE_SUFFIXES = {"png", "jpg", "jpeg", "gif", "svg", "webp", "pdf", "css", "js", "json", "txt", "html"}


def _email_ok(value: str) -> bool:
    local, _, domain = value.rpartition("@")
    # No tldextract here: it downloads the public-suffix list. A TLD is letters only, and
    # "icon@2x.png" style asset names are not addresses.
    return ".." not in local and not local.endswith(".") and domain.rsplit(".", 1)[-1].lower() not in _FILE_SUFFIXES


def _card_ok(value: str) -> bool:
    digits = _compact(value)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)


def _ipv4_ok(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _ipv6_ok(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return sum(char.isalnum() for char in value) >= 2


def _ssn_ok(value: str) -> bool:
    digits = _compact(value)
    # Numbers published as examples (Woolworth wallet card, advertising) are not anyone's.
    return len(set(digits)) > 1 and digits not in {"078051120", "219099999", "123456789"}


def _nino_ok(value: str) -> bool:
    return value.count(" ") in (0, 4)


_SECRET_PARAMS = {
    "token", "access_token", "refresh_token", "id_token", "auth_token", "private_token", "api_key",
    "apikey", "api-key", "key", "secret", "client_secret", "password", "passwd", "pwd", "sig",
    "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "session",
    "sessionid", "session_id", "sid", "jwt", "auth", "access_key", "accesskey", "credential",
}  # fmt: skip


def _url_secret_ok(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if parts.password:
        return True
    params = parse_qsl(parts.query, keep_blank_values=False) + parse_qsl(parts.fragment)
    return any(name.lower() in _SECRET_PARAMS for name, _ in params)


_DATE_LIKE = regex.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")
# Where a number written with a leading trunk 0 may come from; Italy keeps its 0.
_TRUNK_REGIONS = ("FR", "DE", "GB", "IT", "NL", "BE", "AT", "CH", "IE")
# Where a number written without 0 or + may come from (accepted only after a word like "tel").
_PLAIN_REGIONS = ("ES", "PT", "IT", "US")


def _digits(value: str) -> str:
    return "".join(char for char in value if char.isdigit())


def _valid_in(digits: str, regions: Sequence[str], *, trunk: bool) -> bool:
    # Building the PhoneNumber directly skips phonenumbers.parse, a large share of the cost.
    for region in regions:
        keeps_zero = region == "IT" and digits.startswith("0")
        national = digits if keeps_zero or not trunk else digits[1:]
        number = phonenumbers.PhoneNumber(
            country_code=phonenumbers.country_code_for_region(region),
            national_number=int(national),
            italian_leading_zero=keeps_zero or None,
        )
        if phonenumbers.is_valid_number(number):
            return True
    return False


@functools.lru_cache(maxsize=1 << 14)
def _phone_international(value: str) -> bool:
    number = "+" + value[2:] if value.startswith("00") else value
    number = number.replace("(0)", "")
    if not 8 <= len(_digits(number)) <= 15:
        return False
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    # A "+" already says "phone number", so a possible length for that country is enough; a
    # leading "00" is also how part numbers start, so those must be valid numbers.
    if value.startswith("00"):
        return phonenumbers.is_valid_number(parsed)
    return phonenumbers.is_possible_number(parsed)


def _phone_north_american(value: str) -> bool:
    digits = _digits(value)
    return len(digits) == 10 and digits[0] not in "01"


@functools.lru_cache(maxsize=1 << 14)
def _phone_national(value: str) -> bool:
    digits = _digits(value)
    if not 9 <= len(digits) <= 12 or _DATE_LIKE.fullmatch(value):
        return False
    return _valid_in(digits, _TRUNK_REGIONS, trunk=True)


@functools.lru_cache(maxsize=1 << 14)
def _phone_in_context(value: str) -> bool:
    digits = _digits(value)
    return 9 <= len(digits) <= 11 and _valid_in(digits, _PLAIN_REGIONS, trunk=False)


# --------------------------------------------------------------------------------------------
# Recognizers: a regular expression finds candidates, a validator decides.


@dataclass(frozen=True)
class _Rule:
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

_RULES: dict[str, list[_Rule]] = {
    EMAIL: [
        _Rule(
            "email",
            r"(?<![\w.%+-])\w(?:[\w.%+-]{0,63}[\w%+-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
            r"[A-Za-z]{2,24}(?![\w-])",
            _email_ok,
        )
    ],
    PHONE: [
        _Rule(
            "international",
            r"(?<![\w+])(?:\+|00(?=[1-9]\d{0,2}[ .-]))[1-9]\d{0,2}(?:[ .-]?\(0\))?"
            r"(?:[ .\-/]?(?:\(\d{1,5}\)|\d{1,5})){1,6}(?![\w@])",
            _phone_international,
            score=0.9,
            shrink=True,
            not_after=_NOT_AFTER_NUMBER,
        ),
        _Rule("north-american", r"(?<![\w(])\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}" + _E, _phone_north_american, 0.85),
        _Rule("north-american-dashed", _B + r"\d{3}([.-])\d{3}\1\d{4}" + _E, _phone_north_american, 0.7),
        _Rule(
            "national",
            _B + r"0[1-9]\d{0,3}(?:[ ./-]\d{2,8}){1,4}" + _E,
            _phone_national,
            score=0.85,
            shrink=True,
            not_after=_NOT_AFTER_NUMBER,
        ),
        # Eleven bare digits may as well be a VAT or customer number: only after a phone word.
        _Rule("national-compact", _B + r"0[1-9]\d{7,10}" + _E, _phone_national, 0.7, context=_PHONE_WORDS),
        _Rule(
            "in-context",
            _B + r"[1-9]\d{1,3}(?:[ .-]?\d{2,4}){2,4}" + _E,
            _phone_in_context,
            score=0.7,
            context=_PHONE_WORDS,
            shrink=True,
            not_after=_NOT_AFTER_NUMBER,
        ),
    ],
    IBAN: [
        _Rule(
            "iban",
            r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{1,4}){2,9}(?![A-Za-z0-9])",
            iban_valid,
            shrink=True,
        )
    ],
    CREDIT_CARD: [
        _Rule("card", r"(?<![\w-])[2-6]\d{3}([ -]?)\d{4}\1\d{4}\1\d{1,4}(?![\w-])", _card_ok),
        _Rule("amex", r"(?<![\w-])3[47]\d{2}([ -]?)\d{6}\1\d{5}(?![\w-])", _card_ok),
    ],
    IP_ADDRESS: [
        _Rule("ipv4", r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)", _ipv4_ok, score=0.9),
        _Rule(
            "ipv6",
            r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w:])",
            _ipv6_ok,
            score=0.9,
        ),
    ],
    URL_SECRET: [
        _Rule(
            "url",
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]",
            _url_secret_ok,
            score=0.9,
        )
    ],
    US_SSN: [
        _Rule("ssn", r"\b(?<!-)(?!000|666|9)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])", _ssn_ok, 0.85),
        _Rule(
            "ssn-compact",
            r"\b(?<!-)(?!000|666|9)\d{3}(?!00)\d{2}(?!0000)\d{4}(?![\w-])",
            _ssn_ok,
            score=0.6,
            context=("ssn", "social security", "ss#", "ss no"),
        ),
    ],
    UK_NINO: [
        _Rule(
            "nino",
            r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?!\w)",
            _nino_ok,
            score=0.85,
        )
    ],
    DE_STEUER_ID: [_Rule("steuer-id", _B + r"[1-9]\d( ?)\d{3}\1\d{3}\1\d{3}" + _E, steuer_id_valid)],
    FR_NIR: [
        _Rule(
            "nir",
            _B + r"[12378] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + _E,
            nir_valid,
        )
    ],
    IT_FISCAL_CODE: [
        _Rule(
            "codice-fiscale",
            r"(?<!\w)[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z](?!\w)",
            codice_fiscale_valid,
        )
    ],
    ES_DNI: [_Rule("dni", r"\b(?<!-)\d{8}[ -]?[A-HJ-NP-TV-Z](?!\w)", dni_valid)],
    ES_NIE: [_Rule("nie", r"(?<![\w-])[XYZ][ -]?\d{7}[ -]?[A-HJ-NP-TV-Z](?!\w)", nie_valid)],
}


def _shorter(candidate: str) -> str | None:
    """The candidate without its last separator-delimited group, or None if nothing is left."""
    cut = max(candidate.rfind(sep) for sep in " -./")
    if cut <= 0:
        return None
    return candidate[:cut].rstrip(" -./") or None


def _make_recognizer(entity: str, rules: list[_Rule]) -> Any:
    _import_presidio()
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
                supported_language=_LANGUAGE,
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


def _import_presidio() -> None:
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


@dataclass(frozen=True)
class _Engine:
    analyzer: AnalyzerEngine
    artifacts: Any
    """Empty NLP artifacts reused on every call when there is no NER model; None runs the model."""


@functools.lru_cache(maxsize=4)
def _engine(ner_model: Path | None) -> _Engine:
    """The analyzer, built once per NER setting: recognizers compile their patterns here."""
    _import_presidio()
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

    recognizers = [_make_recognizer(entity, rules) for entity, rules in _RULES.items()]
    if ner_model is None:
        nlp_engine: Any = NoOpNlpEngine(models=[{"lang_code": _LANGUAGE, "model_name": "none"}])
    else:
        # An existing path: presidio would otherwise try to download a model by that name.
        if not ner_model.is_dir():
            raise FileNotFoundError(f"PII ner_model: no spaCy pipeline directory at {ner_model}")
        nlp_engine = SpacyNlpEngine(models=[{"lang_code": _LANGUAGE, "model_name": str(ner_model)}])
        recognizers.append(SpacyRecognizer(supported_language=_LANGUAGE, supported_entities=[PERSON]))
    registry = Registry(recognizers=recognizers, supported_languages=[_LANGUAGE])
    analyzer = Analyzer(registry=registry, nlp_engine=nlp_engine, supported_languages=[_LANGUAGE])
    return _Engine(analyzer, nlp_engine.process_text("", _LANGUAGE) if ner_model is None else None)


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
            piece, language=_LANGUAGE, entities=entities, nlp_artifacts=engine.artifacts
        ):
            start, end = offset + result.start, offset + result.end
            found.append(PiiSpan(result.entity_type, start, end, text[start:end], float(result.score)))
    found.sort(key=lambda s: (-_PRIORITY.get(s.type, 0), -(s.end - s.start), s.start, s.type))
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
