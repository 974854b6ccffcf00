"""PII detection and redaction: validators, each type found, ordinary numbers left alone,
consistent pseudonyms, no network, and precision/recall on the labelled multilingual set."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest

from tailorlm import pii
from tailorlm.pii import (
    codice_fiscale_valid,
    dni_valid,
    find_pii,
    iban_valid,
    luhn_valid,
    nie_valid,
    nir_valid,
    redact,
    steuer_id_valid,
)
from tailorlm.pii import redaction as pii_redaction

LABELLED = Path(__file__).resolve().parents[1] / "assets" / "pii" / "labelled.jsonl"


@pytest.mark.parametrize(
    ("validator", "valid", "invalid"),
    [
        (
            luhn_valid,
            ["4111 1111 1111 1111", "4539-1488-0343-6467", "378282246310005"],
            ["4111 1111 1111 1112", "12a4", ""],
        ),
        (
            iban_valid,
            [
                "DE89 3704 0044 0532 0130 00",
                "GB82WEST12345698765432",
                "FR14 2004 1010 0505 0001 3M02 606",
                "NL91ABNA0417164300",
            ],
            [
                "DE89 3704 0044 0532 0130 01",
                "DE89 3704 0044 0532 0130",
                "XX89370400440532013000",
                "GB82 WEST 1234 5698 7654 3",
            ],
        ),
        (
            steuer_id_valid,
            ["86095742719", "47 036 892 816", "65929970489"],
            ["86095742718", "12345678901", "01234567896", "11111111116"],
        ),
        (
            nir_valid,
            ["2 55 08 14 168 025 38", "169052A01200143", "269054958815780"],
            ["2 55 08 14 168 025 39", "355081416802538", "255131416802538"],
        ),
        (
            codice_fiscale_valid,
            ["RSSMRA85T10A562S", "MRTMTT25D09F205Z"],
            ["RSSMRA85T10A562X", "RSSMRA85D31A562S", "RSSMRA85T10A56"],
        ),
        (dni_valid, ["12345678Z", "00000000-T"], ["12345678A", "1234567Z", "ABCDEFGHZ"]),
        (nie_valid, ["X1234567L", "Y-0000000-Z", "Z0000000M"], ["X1234567A", "A1234567L", "X123456L"]),
    ],
)
def test_checksum_validators(validator, valid: list[str], invalid: list[str]) -> None:
    for value in valid:
        assert validator(value), value
    for value in invalid:
        assert not validator(value), value


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (pii.EMAIL, "Write to jane.doe+billing@mail.acme.example, thanks.", "jane.doe+billing@mail.acme.example"),
        (pii.EMAIL, "Adresse : françois.dupont@exemple.fr.", "françois.dupont@exemple.fr"),
        (pii.PHONE, "Call +44 20 7946 0958 today", "+44 20 7946 0958"),
        (pii.PHONE, "Call +44 (0)20 7946 0958 today", "+44 (0)20 7946 0958"),
        (pii.PHONE, "US office (555) 123-4567.", "(555) 123-4567"),
        (pii.PHONE, "Büro Berlin: +49 30 123456.", "+49 30 123456"),
        (pii.PHONE, "Mon portable : 06 12 34 56 78.", "06 12 34 56 78"),
        (pii.PHONE, "Festnetz 030 1234567, bitte.", "030 1234567"),
        (pii.PHONE, "Ufficio 02 1234 5678.", "02 1234 5678"),
        (pii.PHONE, "Teléfono: 612 34 56 78", "612 34 56 78"),
        (pii.PHONE, "Llame al 0034 612 34 56 78.", "0034 612 34 56 78"),
        (pii.PHONE, "Bel 06-12345678 morgen.", "06-12345678"),
        (pii.IBAN, "IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "DE89 3704 0044 0532 0130 00"),
        (pii.IBAN, "pay to GB82WEST12345698765432.", "GB82WEST12345698765432"),
        (pii.CREDIT_CARD, "card 4539 1488 0343 6467 exp 08/27", "4539 1488 0343 6467"),
        (pii.CREDIT_CARD, "amex 3782 822463 10005", "3782 822463 10005"),
        (pii.IP_ADDRESS, "from 203.0.113.45.", "203.0.113.45"),
        (pii.IP_ADDRESS, "from 2001:db8::8a2e:370:7334 via VPN", "2001:db8::8a2e:370:7334"),
        (pii.IP_ADDRESS, "mapped ::ffff:192.0.2.128 here", "::ffff:192.0.2.128"),
        (pii.URL_SECRET, "see https://bob:hunter2@files.acme.example/x.", "https://bob:hunter2@files.acme.example/x"),
        (
            pii.URL_SECRET,
            "GET https://api.example.com/v1?limit=5&api_key=abc123 failed",
            "https://api.example.com/v1?limit=5&api_key=abc123",
        ),
        (pii.URL_SECRET, "(https://x.example/cb#access_token=eyJ0eX)", "https://x.example/cb#access_token=eyJ0eX"),
        (pii.URL_SECRET, "postgres://etl:pa55@db.internal:5432/sales", "postgres://etl:pa55@db.internal:5432/sales"),
        (pii.US_SSN, "SSN 536-22-1234 on file", "536-22-1234"),
        (pii.US_SSN, "SSN: 536221234", "536221234"),
        (pii.UK_NINO, "NI number AB 12 34 56 C.", "AB 12 34 56 C"),
        (pii.UK_NINO, "NINO JG103759A", "JG103759A"),
        (pii.DE_STEUER_ID, "Steuer-ID 86 095 742 719.", "86 095 742 719"),
        (pii.FR_NIR, "NIR : 2 55 08 14 168 025 38.", "2 55 08 14 168 025 38"),
        (pii.FR_NIR, "Corse : 1 69 05 2A 012 001 43", "1 69 05 2A 012 001 43"),
        (pii.IT_FISCAL_CODE, "CF: RSSMRA85T10A562S.", "RSSMRA85T10A562S"),
        (pii.ES_DNI, "DNI 12345678-Z.", "12345678-Z"),
        (pii.ES_NIE, "NIE X1234567L.", "X1234567L"),
    ],
)
def test_each_type_found(kind: str, text: str, value: str) -> None:
    spans = find_pii(text)
    assert [(s.type, s.text) for s in spans] == [(kind, value)]
    assert text[spans[0].start : spans[0].end] == value
    assert 0.0 < spans[0].score <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "Order ACM-104233 shipped on 2024-03-12 for $1,299.00.",
        "Bestellung vom 12.03.2024, Betrag 1.299,00 EUR, Artikel T5, Fehler E07.",
        "Upgrade to version 2.3.1 (build 10.4.2.7890) fixed error E07.",
        "Invoice INV-2024-00123 due 03/15/2024, total 4,560.75 USD, qty 1500.",
        "Card 4111 1111 1111 1112 and IBAN DE89 3704 0044 0532 0130 01 are both mistyped.",
        "Rekening NL91 ABNA 0417 1643 01 klopt niet.",
        "Steuer-ID 12345678901? No. DNI 12345678A? No. NIR 2 55 08 14 168 025 39? No.",
        "Partita IVA 01234567890, codice articolo 0012-3456-78.",
        "MAC 00:1A:2B:3C:4D:5E, time 14:30:00, std::vector<int>.",
        "Docs at https://docs.acme.example/guide?page=2&lang=en.",
        "Revenue 12 345 678 € in 2023, GPS 48.8584, 2.2945, v1.2.3.4.",
        "icon@2x.png and logo@3x.svg are image assets.",
        "",
    ],
)
def test_ordinary_numbers_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_types_filter_and_errors() -> None:
    text = "mail jane@acme.example, phone +44 20 7946 0958"
    assert [s.type for s in find_pii(text, types={pii.PHONE})] == [pii.PHONE]
    with pytest.raises(ValueError, match="unknown"):
        find_pii(text, types={"EMAIL_ADDRESS"})
    with pytest.raises(ValueError, match="ner_model"):
        find_pii(text, types={pii.PERSON})


def test_overlaps_resolved_to_one_span() -> None:
    # The URL contains an e-mail-shaped userinfo and digits; only the URL is reported.
    text = "db: postgres://jane@acme.example:secret@10.0.0.5:5432/app"
    spans = find_pii(text)
    assert [s.type for s in spans] == [pii.URL_SECRET]


def test_redact_replaces_with_type_and_counts() -> None:
    text = "Mail jane@acme.example or JANE@acme.example, call +44 20 7946 0958."
    result = redact(text, "redact")
    assert result.text == "Mail [EMAIL] or [EMAIL], call [PHONE]."
    assert result.counts == {pii.EMAIL: 2, pii.PHONE: 1}
    assert [s.text for s in result.spans] == ["jane@acme.example", "JANE@acme.example", "+44 20 7946 0958"]


def test_pseudonymize_is_consistent_within_and_across_parts() -> None:
    mapping: dict[str, str] = {}
    subject = redact("From jane@acme.example (+33 6 12 34 56 78)", "pseudonymize", mapping=mapping)
    body = redact(
        "Hi, bob@acme.example here; cc Jane@ACME.example. My number: +33612345678.",
        "pseudonymize",
        mapping=mapping,
    )
    assert subject.text == "From [EMAIL_1] ([PHONE_1])"
    assert body.text == "Hi, [EMAIL_2] here; cc [EMAIL_1]. My number: [PHONE_1]."
    assert mapping == {"jane@acme.example": "[EMAIL_1]", "+33612345678": "[PHONE_1]", "bob@acme.example": "[EMAIL_2]"}
    fresh = redact("bob@acme.example then jane@acme.example", "pseudonymize")
    assert fresh.text == "[EMAIL_1] then [EMAIL_2]"  # numbering follows reading order per document


def test_redact_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="redact"):
        redact("x", "mask")  # type: ignore[arg-type]


def test_long_text_offsets_survive_chunking() -> None:
    filler = ("lorem ipsum dolor sit amet " * 40 + "\n") * 40  # ~43k chars, several chunks
    text = filler + "contact jane@acme.example\n" + filler + "IBAN DE89 3704 0044 0532 0130 00"
    spans = find_pii(text)
    assert [(s.type, text[s.start : s.end]) for s in spans] == [
        (pii.EMAIL, "jane@acme.example"),
        (pii.IBAN, "DE89 3704 0044 0532 0130 00"),
    ]


def test_no_network_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """presidio's own EmailRecognizer calls tldextract, which downloads the public-suffix list;
    ours must not touch the network, even when the analyzer is (re)built."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    pii_redaction._engine.cache_clear()
    try:
        spans = find_pii("reach me at someone@sub.example.co.uk or info@acme.museum")
        redacted = redact("reach me at someone@sub.example.co.uk", "pseudonymize")
    finally:
        pii_redaction._engine.cache_clear()
    assert [s.text for s in spans] == ["someone@sub.example.co.uk", "info@acme.museum"]
    assert redacted.text == "reach me at [EMAIL_1]"


def test_person_needs_and_uses_a_local_ner_model(tmp_path: Path) -> None:
    spacy = pytest.importorskip("spacy")
    text = "Jane Doe wrote from jane@acme.example."
    assert [s.type for s in find_pii(text)] == [pii.EMAIL]  # no model: names stay
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Jane Doe"}])
    nlp.to_disk(tmp_path / "ner")
    spans = find_pii(text, ner_model=tmp_path / "ner")
    assert [(s.type, s.text) for s in spans] == [(pii.PERSON, "Jane Doe"), (pii.EMAIL, "jane@acme.example")]
    with pytest.raises(FileNotFoundError, match="ner_model"):
        find_pii(text, ner_model=tmp_path / "missing")


def _labelled() -> list[dict]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]


def test_labelled_set_is_well_formed() -> None:
    rows = _labelled()
    spans = [s for row in rows for s in row["spans"]]
    assert len(spans) >= 220
    assert {s["type"] for s in spans} == pii.PATTERN_TYPES
    assert {"en", "de", "fr", "it", "es", "nl", "pt"} <= {row["lang"] for row in rows}
    assert sum(not row["spans"] for row in rows) >= 40  # hard negatives
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        for span in row["spans"]:
            assert 0 <= span["start"] < span["end"] <= len(row["text"]), row["id"]
            assert row["text"][span["start"] : span["end"]].strip() == row["text"][span["start"] : span["end"]]


def test_precision_and_recall_on_labelled_set() -> None:
    """Exact-span matching. Measured when written: micro P 1.000, R 0.988 (3 misses kept on
    purpose: a lower-case IBAN, phone numbers with no phone word nearby)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for row in _labelled():
        gold = {(s["type"], s["start"], s["end"]) for s in row["spans"]}
        found = {(s.type, s.start, s.end) for s in find_pii(row["text"])}
        for kind, *_ in found & gold:
            tp[kind] += 1
        for kind, *_ in found - gold:
            fp[kind] += 1
        for kind, *_ in gold - found:
            fn[kind] += 1
    hits = sum(tp.values())
    assert hits / (hits + sum(fp.values())) >= 0.97
    assert hits / (hits + sum(fn.values())) >= 0.97
    for kind in pii.PATTERN_TYPES:
        assert tp[kind] / (tp[kind] + fn[kind]) >= 0.9, kind
