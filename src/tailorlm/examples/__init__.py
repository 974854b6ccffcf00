"""Sample data shipped with the package: `acme/`, the fictional Acme Climate Devices company that
`tailorlm quickstart` runs on (also reachable from a clone as `examples/acme`)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_company() -> Path:
    """The folder of the bundled sample company (its tailorlm.yaml, docs/, faq.csv, support.mbox…)."""
    return Path(str(files("tailorlm.examples").joinpath("acme")))
