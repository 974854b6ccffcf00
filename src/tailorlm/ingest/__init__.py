"""The ingest stage: files → Documents in the workspace, a registry row per file, an audit event per call.

```python
report = ingest(workspace, ["docs/", "faq.csv", "support.mbox"])
report.ok, report.documents, [(f.path, f.status, f.error) for f in report.files]
documents = load_documents(workspace, [f.sha256 for f in report.files if f.status != "failed"])  # tailorlm.documents
```

Folders are walked recursively in sorted order; hidden files and folders (".name") and the workspace
itself are passed over, but a file named explicitly is read even if hidden. Each file is read by the
reader its content (PDF, Office package, mbox) or else its extension picks (one module per format in
this package). Per file the outcome is one `FileResult`: "ingested"; "partial" (documents kept, some
parts skipped — the warnings say which and where); "unchanged" (this content was already ingested
with the same reader and options: nothing is read or written); or "failed" (empty, over the size
limit, no reader, or the reader's reason) — one file's failure never stops the others, and nothing
is written for it.

Documents are stored by content hash only (`documents/<sha256>.jsonl`, written atomically), so a
file's name can't place anything outside the workspace.
"""

from __future__ import annotations

# The readers register themselves with readers.READERS on import (one module per format).
from tailorlm.ingest import csv_table, docx, email_reader, html, jsonl, markdown, pdf, xlsx  # noqa: F401
from tailorlm.ingest.runner import ingest, read_file

__all__ = ["ingest", "read_file"]
