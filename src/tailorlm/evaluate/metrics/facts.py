"""Facts and voice of a company's answers: ``fact_recall`` (does the answer state the reference's
facts), ``invented_facts`` (does it state facts nobody gave it) and ``we_voice`` (does it speak as
the company).

ROUGE-L rewards an answer that sounds like the reference; a fine-tuned model that learned the voice
but invents a phone number or an installation time scores well on it. These metrics look only at
the pieces of an answer that are either right or wrong. A *fact* is found by patterns that work in
any language, because they look at digits, symbols and identifiers rather than words:

| kind | examples | compared as |
|---|---|---|
| `email` | care@acme.example | lower case |
| `url` | https://account.acme.example/orders, acme.example | host without `www.`, then path (a longer path matches) |
| `code` | E07, ACM-123456, RMA-2024-001, T5 | capitals and digits (one of each at least), `-`/`_` ignored |
| `date` | 2026-03-01, 01/03/2026 | the digit groups |
| `phone` | 1-800-222-1111, +1-555-0142 | the digits (7 or more); a country code may be left out |
| `time` | 9:00, 17:30, 8 p.m. | hour and minutes, on a 24-hour clock |
| `money` | $4.99, 4,99 €, 149 USD, 5 dollars | currency (symbols, ISO codes, dollar/euro/pound) and amount |
| `percent` | 10%, 10 percent | the number |
| `version` | v2.1, 4.2.1 | the numbers |
| `number` | 30 days, 30-day, 5 business days, 2 years | the number, and the (up to two) words after it |

Numbers are compared by value: "1,000" = "1000" = "1000.00"; "4,99" = "4.99" (a comma followed by
exactly three digits separates thousands, any other comma is a decimal point). The words after a
number, up to a function word ("of", "and", "de", "und", ... see ``FUNCTION_WORDS``), are casefolded
with a final "s" dropped ("days" = "day"), so "30 days" = "30-day" = "30 Days". Two number facts
match when their values are equal and they share a word (equal, or the same first four letters:
"5 business days" = "5 days", "30 Tage" = "30 Tagen"), or when either has no word after it (a bare
"3" in "3–10 business days" or "3 and 5"). List markers ("1. Open the app") are not facts.

``fact_recall`` also credits English number words in the answer ("thirty days" states "30 days");
numbers written in words are never facts of their own, so they are never counted as invented.
The patterns can't tell a true statement about a fact from a false one ("E01 is a temperature
setting" states the code E01 correctly): they catch facts that are missing or made up, not wrong
claims about right facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tailorlm.evaluate.metrics import Case, MetricResult, mean_or_nan, metric
from tailorlm.evaluate.metrics.text import normalize_text


@dataclass(frozen=True)
class Fact:
    """One fact found in a text.

    Attributes:
        kind: `email`, `url`, `code`, `date`, `phone`, `time`, `money`, `percent`, `version` or `number`.
        value: The compared form (see the module docstring).
        unit: For `number`, the normalised words after it; for `money`, the currency; else empty.
        text: The fact as written, for reports.
    """

    kind: str
    value: str
    unit: tuple[str, ...] = ()
    text: str = ""

    def matches(self, other: Fact) -> bool:
        """Whether ``other`` states the same fact (the comparison rules of the module docstring)."""
        if self.kind != other.kind:
            return False
        if self.kind == "number":
            return self.value == other.value and (
                not self.unit or not other.unit or any(_same_word(a, b) for a in self.unit for b in other.unit)
            )
        if self.kind == "url":
            host, *path = self.value.split("/")
            other_host, *other_path = other.value.split("/")
            shorter = min(len(path), len(other_path))
            return host == other_host and path[:shorter] == other_path[:shorter]
        if self.kind == "phone":
            short, long = sorted((self.value, other.value), key=len)
            return long.endswith(short) and len(short) >= 7
        return self.value == other.value and self.unit == other.unit


def canonical_number(raw: str) -> str | None:
    """A number as written ("1,200.50", "4,99", "09") in canonical form ("1200.5", "4.99", "9"); None
    when it is not a number."""
    raw = raw.rstrip(".,")
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
        cleaned = raw.replace(",", "")
    elif re.fullmatch(r"\d{1,3}(?:\.\d{3})+,\d+", raw):  # 1.234,50
        cleaned = raw.replace(".", "").replace(",", ".")
    else:
        cleaned = raw.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return format(value.normalize(), "f")


# --- extraction ----------------------------------------------------------------------------------

_LETTER = r"[^\W\d_]"
_NUM = r"\d+(?:[.,]\d+)*"
_CURRENCIES = {
    "$": "usd",
    "€": "eur",
    "£": "gbp",
    "¥": "jpy",
    "₹": "inr",
    "dollar": "usd",
    "euro": "eur",
    "pound": "gbp",
}
_ISO = "USD|EUR|GBP|CHF|JPY|CNY|INR|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|BRL|MXN|ZAR|SGD|HKD|KRW"
_SYMBOL = "[$€£¥₹]"

# (kind, pattern), in the order they are looked for; each match is blanked before the next pattern
# runs, so the digits of a phone number are not also read as numbers.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    (
        "url",
        re.compile(
            r"(?:https?://|www\.)[^\s<>()\[\]\"']+"
            r"|(?<![\w.@-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[a-z]{2,}\b(?:/[^\s<>()\[\]\"']*)?"
        ),
    ),
    ("code", re.compile(r"(?<![\w-])(?=[A-Z0-9_-]*\d)(?=[A-Z0-9_-]*[A-Z])[A-Z0-9]+(?:[-_][A-Z0-9]+)*(?![\w-])")),
    (
        "date",
        re.compile(
            r"(?<![\w.])(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})|\d{1,2}\.\d{1,2}\.\d{4})(?!\w|\.\d)"
        ),
    ),
    ("phone", re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,5}(?!\w)")),
    ("time", re.compile(r"(?<![\w:.])(\d{1,2})(?::(\d{2}))?\s?([ap])\.?m\b\.?", re.IGNORECASE)),
    ("time", re.compile(r"(?<![\w:.])(\d{1,2}):(\d{2})(?![\w:])")),
    (
        "money",
        re.compile(
            rf"(?P<symbol>{_SYMBOL})\s?(?P<amount>{_NUM})"
            rf"|(?<![\w.,])(?P<amount2>{_NUM})\s?(?P<symbol2>{_SYMBOL}|(?:{_ISO})\b|(?:dollar|euro|pound)s?\b)",
            re.IGNORECASE,
        ),
    ),
    (
        "percent",
        re.compile(
            rf"(?<![\w.,])(?P<amount>{_NUM})\s?(?:%|percent\b|per cent\b|pour cent\b|prozent\b|por ciento\b)",
            re.IGNORECASE,
        ),
    ),
    ("version", re.compile(r"(?<![\w.])(?:v\d+(?:\.\d+)+|\d+\.\d+\.\d+(?:\.\d+)*)(?!\w|\.\d)", re.IGNORECASE)),
    ("number", re.compile(rf"(?<![\w.,])(?P<amount>{_NUM})(?P<after>(?:[ \t-]+{_LETTER}+){{0,2}})")),
]
_LIST_MARKER = re.compile(r"(?m)^[ \t]*\d{1,2}[.)](?=\s)")
_WORD = re.compile(rf"{_LETTER}+")


# Function words end a number's unit ("14 days of delivery" → day; "3 and 5" → a bare 3).
FUNCTION_WORDS_BY_LANGUAGE = {
    "en": "a an and are as at by for from in is of on or per the to was with",
    "fr": "à au aux avec dans de des du en et la le les ou par pour sous sur un une",
    "de": "am an auf bis das der die ein eine für im mit oder und von zu",
    "es": "con de del e el en la las los o para por un una y",
    "it": "da del di e il in o per un una",
    "nl": "een en het in met of op van voor",
    "pt": "com do dos e em na no o ou para",
}
FUNCTION_WORDS = frozenset(" ".join(FUNCTION_WORDS_BY_LANGUAGE.values()).split())


def _unit(words: str) -> tuple[str, ...]:
    unit: list[str] = []
    for word in _WORD.findall(words.casefold()):
        if word in FUNCTION_WORDS:
            break
        unit.append(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return tuple(unit)


def _same_word(a: str, b: str) -> bool:
    """Equal, or both of four letters or more with the same first four ("tage"/"tagen", "month"/"monthly")."""
    return a == b or (len(a) >= 4 and len(b) >= 4 and a[:4] == b[:4])


def _fact(kind: str, match: re.Match[str]) -> Fact | None:
    text = match.group(0).strip()
    if kind == "email":
        return Fact(kind, text.casefold(), (), text)
    if kind == "date":
        return Fact(kind, "-".join(str(int(p)) for p in re.findall(r"\d+", text)), (), text)
    if kind == "time":
        hour, minutes = int(match.group(1)), int(match.group(2) or 0)
        if match.lastindex == 3:  # 12-hour clock: 12 a.m. is 0:00, 1 p.m. is 13:00
            hour = hour % 12 + (12 if match.group(3).casefold() == "p" else 0)
        return Fact(kind, f"{hour}:{minutes:02d}", (), text)
    if kind == "url":
        text = text.rstrip(".,;:!?")
        address = re.sub(r"^(?:https?://)?(?:www\.)?", "", text.casefold()).rstrip("/")
        return Fact(kind, address, (), text)
    if kind == "code":
        return Fact(kind, re.sub(r"[-_]", "", text), (), text)
    if kind == "phone":  # "2024-2025" is not a phone number, "+1-555-0142" and "555 014 2000" are
        digits = re.sub(r"\D", "", text)
        separators = len(re.findall(r"\d[ .-]+\(?\d", text))
        return Fact(kind, digits, (), text) if len(digits) >= 7 and (text[0] in "+(" or separators >= 2) else None
    if kind == "version":
        return Fact(kind, text.casefold().lstrip("v"), (), text)
    amount = canonical_number(match.group("amount") or match.groupdict().get("amount2") or "")
    if amount is None:
        return None
    if kind == "money":
        symbol = (match.group("symbol") or match.group("symbol2")).casefold().rstrip("s")
        return Fact(kind, amount, (_CURRENCIES.get(symbol, symbol),), text)
    if kind == "percent":
        return Fact(kind, amount, (), text)
    unit = _unit(match.group("after"))
    kept = re.match(rf"(?:[ \t-]+{_LETTER}+){{{len(unit)}}}", match.group("after"))
    return Fact(kind, amount, unit, match.group("amount") + (kept.group(0) if kept else ""))


def extract_facts(text: str) -> list[Fact]:
    """The facts stated in ``text``, each once, in the order of the patterns then of the text."""
    rest = _LIST_MARKER.sub(lambda m: " " * len(m.group(0)), text)
    found: dict[tuple[str, str, tuple[str, ...]], Fact] = {}
    for kind, pattern in _PATTERNS:
        blanked = []
        for match in pattern.finditer(rest):
            fact = _fact(kind, match)
            if fact is None:
                continue
            found.setdefault((fact.kind, fact.value, fact.unit), fact)
            blanked.append(match.span())
        for start, end in blanked:  # NUL: no pattern reads it as a separator or part of a word
            rest = rest[:start] + "\0" * (end - start) + rest[end:]
    return list(found.values())


_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SPELLED = re.compile(
    rf"\b(?:(?P<tens>{'|'.join(_TENS)})(?:[- ](?P<ones>{'|'.join(_UNITS[1:10])}))?|(?P<unit>{'|'.join(_UNITS)}))\b",
    re.IGNORECASE,
)


def spelled_numbers_as_digits(text: str) -> str:
    """English number words from zero to ninety-nine as digits ("thirty days" → "30 days")."""

    def digits(match: re.Match[str]) -> str:
        if match.group("unit"):
            return str(_UNITS.index(match.group("unit").casefold()))
        ones = match.group("ones")
        return str(
            10 * (_TENS.index(match.group("tens").casefold()) + 2) + (_UNITS.index(ones.casefold()) if ones else 0)
        )

    return _SPELLED.sub(digits, text)


def _stated(fact: Fact, facts: Iterable[Fact]) -> bool:
    return any(fact.matches(other) for other in facts)


# --- metrics -------------------------------------------------------------------------------------


@metric("fact_recall", tasks=("chat", "generate"))
def fact_recall(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """Fraction of the reference's facts, plus the case's ``must_contain`` strings, that the answer
    states; None for an item with neither. ``details["missed"]`` maps item index to what is missing."""
    per_item: list[float | None] = []
    missed: dict[int, list[str]] = {}
    for index, (prediction, case) in enumerate(zip(predictions, cases, strict=True)):
        wanted = extract_facts(case.expected or "")
        required = [s for s in case.must_contain if s.strip()]
        if not wanted and not required:
            per_item.append(None)
            continue
        stated = extract_facts(prediction) + extract_facts(spelled_numbers_as_digits(prediction))
        output = normalize_text(prediction)
        absent = [f.text for f in wanted if not _stated(f, stated)]
        absent += [s for s in required if normalize_text(s) not in output]
        per_item.append(1 - len(absent) / (len(wanted) + len(required)))
        if absent:
            missed[index] = absent
    return MetricResult("fact_recall", mean_or_nan(per_item), per_item, {"missed": missed})


@metric("invented_facts", tasks=("chat", "generate"), higher_is_better=False)
def invented_facts(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """Fraction of the answer's facts found neither in the reference nor in what the candidate was
    shown (``case.context``: the question, few-shot examples, retrieved passages); None for an
    answer that states no facts. ``details["invented"]`` maps item index to the invented facts."""
    per_item: list[float | None] = []
    invented: dict[int, list[str]] = {}
    for index, (prediction, case) in enumerate(zip(predictions, cases, strict=True)):
        stated = extract_facts(prediction)
        if not stated:
            per_item.append(None)
            continue
        known = extract_facts("\n".join([case.expected or "", case.context or "", *case.must_contain]))
        made_up = [f.text for f in stated if not _stated(f, known)]
        per_item.append(len(made_up) / len(stated))
        if made_up:
            invented[index] = made_up
    return MetricResult("invented_facts", mean_or_nan(per_item), per_item, {"invented": invented})


# First person plural, by language; "US" in capitals is the country, not the pronoun.
WE_WORDS = {
    "en": "we we're we'll we've we'd us our ours ourselves",
    "fr": "nous notre nos nôtre nôtres",
    "de": "wir uns unser unsere unserem unseren unserer unseres",
    "es": "nosotros nosotras nuestro nuestra nuestros nuestras",
    "it": "noi nostro nostra nostri nostre",
    "nl": "wij ons onze",
    "pt": "nós nosso nossa nossos nossas",
}
# Phrases that put the fault on the customer.
BLAME_PHRASES = {
    "en": [
        "your fault",
        "you should have",
        "you shouldn't have",
        "you failed to",
        "you forgot to",
        "you must have",
        "you were supposed to",
        "as we already told you",
        "user error",
    ],
    "fr": ["votre faute", "vous auriez dû", "vous avez oublié"],
    "de": ["ihre schuld", "sie hätten", "sie haben vergessen"],
    "es": ["su culpa", "usted debió", "usted olvidó"],
}
_WE = {w for words in WE_WORDS.values() for w in words.split()}
_BLAME = [p for phrases in BLAME_PHRASES.values() for p in phrases]
_TOKEN = re.compile(rf"{_LETTER}+(?:'{_LETTER}+)?")


@metric("we_voice", tasks=("chat", "generate"), default=False)
def we_voice(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """1 when the answer speaks as the company — a first-person plural word ("we", "our", "us";
    see ``WE_WORDS`` for other languages) — and blames no one (none of ``BLAME_PHRASES``), else 0.

    A heuristic, cheap and transparent: it sees pronouns and phrases, not meaning. Use it to watch a
    tone that a style guide asks for; ``details`` lists the items that blame and those without "we".
    """
    per_item: list[float | None] = []
    blaming: dict[int, list[str]] = {}
    impersonal: list[int] = []
    for index, prediction in enumerate(predictions):
        text = prediction.replace("’", "'")
        tokens = [t for t in _TOKEN.findall(text) if t != "US"]
        speaks_as_we = any(t.casefold() in _WE for t in tokens)
        lowered = " ".join(text.casefold().split())
        blames = [p for p in _BLAME if p in lowered]
        per_item.append(1.0 if speaks_as_we and not blames else 0.0)
        if blames:
            blaming[index] = blames
        if not speaks_as_we:
            impersonal.append(index)
    return MetricResult("we_voice", mean_or_nan(per_item), per_item, {"blaming": blaming, "not_we": impersonal})
