"""Cleaning keeps the text and drops the noise; filters count every drop with its reason."""

from __future__ import annotations

from tailorlm.config import PrepareSettings
from tailorlm.formats.examples import Example
from tailorlm.prepare.clean import clean_text, detect_language, filter_examples, remove_page_furniture


def test_unicode_and_whitespace_normalised_paragraphs_kept():
    text = (
        "ﬁrst\u00a0line  has   spaces\t\there\r\nsecond\u200b line\r\n\r\n\r\n\r\nnew   paragraph  \n    indented  code"
    )
    assert clean_text(text) == "first line has spaces here\nsecond line\n\nnew paragraph\n    indented code"


def test_full_width_and_control_characters():
    full_width = "\uff21\uff23\uff2d\uff25\x00 \uff34\uff15\x07"  # "ACME T5" in full-width letters
    assert clean_text(full_width) == "ACME T5"


def test_repeated_page_headers_and_footers_removed():
    pages = [
        f"ACME CONFIDENTIAL\nSection {i} body text that matters.\nMore text {i}.\nPage {i} of 4" for i in range(1, 5)
    ]
    cleaned = clean_text("\f".join(pages))
    assert "ACME CONFIDENTIAL" not in cleaned and "Page 2 of 4" not in cleaned
    for i in range(1, 5):
        assert f"Section {i} body text that matters." in cleaned and f"More text {i}." in cleaned


def test_page_furniture_needs_three_pages():
    pages = ["Header\nbody one", "Header\nbody two"]
    assert remove_page_furniture(pages) == pages


def test_language_detection():
    assert detect_language("The thermostat is offline and the app says it can not connect to the hub.") == "en"
    assert detect_language("Das Thermostat ist offline und die App sagt, dass es sich nicht verbinden kann.") == "de"
    assert detect_language("Le thermostat est hors ligne et nous ne pouvons pas le connecter au réseau.") == "fr"
    assert (
        detect_language("El termostato no funciona y la aplicación dice que no se puede conectar con el hub.") == "es"
    )
    assert detect_language("Il termostato non è collegato e la app dice che non si può connettere alla rete.") == "it"
    assert (
        detect_language("De thermostaat is offline en de app zegt dat het niet kan verbinden met het netwerk.") == "nl"
    )
    assert (
        detect_language("O termostato não está ligado e a aplicação diz que não se pode conectar com a rede.") == "pt"
    )
    assert detect_language("hi") is None
    assert detect_language("1234 5678 9999 0000 1111 2222") is None


def test_filters_count_every_drop_with_its_reason():
    examples = [
        Example.chat(user="How do I reset?", assistant="Hold the button for five seconds."),
        Example.chat(user="Short answer?", assistant="k"),
        Example.chat(user="   ", assistant="An answer to nothing."),
        Example.chat(user="12345 67890 12345 67890 ||| ### 000", assistant="A numeric table."),
        Example.chat(user="Broken \ufffd\ufffd\ufffd\ufffd text", assistant="Encoding went wrong."),
        Example(text="Plain text for continued pretraining."),
    ]
    kept, drops = filter_examples(examples, PrepareSettings(min_chars=2))
    assert kept == [examples[0], examples[5]]
    assert drops == {"too_short": 1, "empty_input": 1, "mostly_non_letters": 1, "encoding_errors": 1}
    kept, drops = filter_examples(examples[:2], PrepareSettings(min_chars=0))
    assert len(kept) == 2 and not drops
