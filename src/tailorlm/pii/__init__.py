"""Finds personal data in text and redacts or pseudonymizes it, fully offline; shared by `prepare`
(every text field of a dataset) and the server's request log.

Detection runs presidio-analyzer with our own pattern recognizers (no spaCy model, no network):
every candidate a regular expression finds must also pass a validator — a checksum where the
identifier has one (IBAN mod-97, Luhn, Steuer-ID, NIR key, codice fiscale, DNI/NIE letter), a
structural check otherwise (phone numbers through libphonenumber, IP addresses through
``ipaddress``). Personal names are found only when a local NER model is configured
(``ner_model``); without one, names stay in the text. Replacement uses presidio-anonymizer.

    >>> redact("Write to jane@acme.example or call +44 20 7946 0958.", "redact").text
    'Write to [EMAIL] or call [PHONE].'

The package: ``validators.py`` (checksums and structural checks), ``rules.py`` (the types, their
patterns and recognizers), ``redaction.py`` (``find_pii``, ``redact``).
"""

from tailorlm.pii.redaction import PiiSpan, Redaction, find_pii, redact
from tailorlm.pii.rules import (
    ALL_TYPES,
    CREDIT_CARD,
    DE_STEUER_ID,
    EMAIL,
    ES_DNI,
    ES_NIE,
    FR_NIR,
    IBAN,
    IP_ADDRESS,
    IT_FISCAL_CODE,
    PATTERN_TYPES,
    PERSON,
    PHONE,
    UK_NINO,
    URL_SECRET,
    US_SSN,
)
from tailorlm.pii.validators import (
    codice_fiscale_valid,
    dni_valid,
    iban_valid,
    luhn_valid,
    nie_valid,
    nir_valid,
    steuer_id_valid,
)

__all__ = [
    "ALL_TYPES",
    "CREDIT_CARD",
    "DE_STEUER_ID",
    "EMAIL",
    "ES_DNI",
    "ES_NIE",
    "FR_NIR",
    "IBAN",
    "IP_ADDRESS",
    "IT_FISCAL_CODE",
    "PATTERN_TYPES",
    "PERSON",
    "PHONE",
    "UK_NINO",
    "URL_SECRET",
    "US_SSN",
    "PiiSpan",
    "Redaction",
    "codice_fiscale_valid",
    "dni_valid",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "nie_valid",
    "nir_valid",
    "redact",
    "steuer_id_valid",
]
