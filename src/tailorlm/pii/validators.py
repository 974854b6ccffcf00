"""Validators for personal-data candidates: a regular expression only proposes, a validator decides.

Checksums where the identifier has one (Luhn, IBAN mod-97, Steuer-ID, NIR key, codice fiscale,
DNI/NIE letter; public, separators allowed), structural checks otherwise (e-mail, IPv4/IPv6 through
``ipaddress``, US SSN and UK NINO ranges, URLs carrying a secret, phone numbers through
libphonenumber). The recognizers in ``rules.py`` pair each with its patterns.
"""

from __future__ import annotations

import functools
import ipaddress
import string
from collections import Counter
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

import phonenumbers
import regex

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


def email_ok(value: str) -> bool:
    local, _, domain = value.rpartition("@")
    # No tldextract here: it downloads the public-suffix list. A TLD is letters only, and
    # "icon@2x.png" style asset names are not addresses.
    return ".." not in local and not local.endswith(".") and domain.rsplit(".", 1)[-1].lower() not in _FILE_SUFFIXES


def card_ok(value: str) -> bool:
    digits = _compact(value)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)


def ipv4_ok(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def ipv6_ok(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return sum(char.isalnum() for char in value) >= 2


def ssn_ok(value: str) -> bool:
    digits = _compact(value)
    # Numbers published as examples (Woolworth wallet card, advertising) are not anyone's.
    return len(set(digits)) > 1 and digits not in {"078051120", "219099999", "123456789"}


def nino_ok(value: str) -> bool:
    return value.count(" ") in (0, 4)


_SECRET_PARAMS = {
    "token", "access_token", "refresh_token", "id_token", "auth_token", "private_token", "api_key",
    "apikey", "api-key", "key", "secret", "client_secret", "password", "passwd", "pwd", "sig",
    "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "session",
    "sessionid", "session_id", "sid", "jwt", "auth", "access_key", "accesskey", "credential",
}  # fmt: skip


def url_secret_ok(value: str) -> bool:
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
def phone_international_ok(value: str) -> bool:
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


def phone_north_american_ok(value: str) -> bool:
    digits = _digits(value)
    return len(digits) == 10 and digits[0] not in "01"


@functools.lru_cache(maxsize=1 << 14)
def phone_national_ok(value: str) -> bool:
    digits = _digits(value)
    if not 9 <= len(digits) <= 12 or _DATE_LIKE.fullmatch(value):
        return False
    return _valid_in(digits, _TRUNK_REGIONS, trunk=True)


@functools.lru_cache(maxsize=1 << 14)
def phone_in_context_ok(value: str) -> bool:
    digits = _digits(value)
    return 9 <= len(digits) <= 11 and _valid_in(digits, _PLAIN_REGIONS, trunk=False)
