"""The `prepare` stage: the project's sources → `datasets/<name>/<version>/` (splits + card), registered.

    result = prepare(workspace, project, ingest=ingest)   # tailorlm prepare (ingest: tailorlm.ingest.ingest)

The stage reads top to bottom in `runner.py`; `sources.py` does each source (ingest, clean and redact,
builder, chunks); `builders/` holds one file per source kind; docs/prepare.md tells the whole story.
"""

from __future__ import annotations

from tailorlm.prepare.errors import PrepareError
from tailorlm.prepare.runner import PrepareResult, dataset_key, prepare

__all__ = ["PrepareError", "PrepareResult", "dataset_key", "prepare"]
