"""`tailorlm classify MODEL FILE`: label every row of a CSV or JSONL file with a classification run, writing
the results next to the input (`tickets.csv` → `tickets.classified.csv`), atomically.

Each row gains `label` (empty when the model abstains: "needs a person"), `confidence` and `abstained`;
JSONL rows also get every label's probability. A row without text is kept, marked `error: empty text`,
and the rest of the file is still classified.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm.errors import UserError
from tailorlm.progress import SILENT, Progress
from tailorlm.workspace import Workspace, atomic_write_text

TEXT_COLUMNS = ("text", "input", "body", "message", "content")


@dataclass
class ClassifiedFile:
    output: Path
    rows: int
    abstained: int
    empty: int
    labels: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "rows": self.rows,
            "abstained": self.abstained,
            "empty": self.empty,
            "labels": self.labels,
        }


def output_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.classified{path.suffix}")


def _read(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        return [dict(row) for row in reader], list(reader.fieldnames or [])
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise UserError(f"{path}:{number}: not valid JSON: {error}") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{number}: expected a JSON object per line")
            rows.append(row)
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return rows, columns
    raise UserError(f"{path}: classify reads .csv or .jsonl files (got {path.suffix or 'no extension'})")


def classify_file(
    workspace: Workspace,
    model: str,
    path: Path,
    *,
    column: str | None = None,
    min_confidence: float | None = None,
    batch_size: int = 32,
    progress: Progress = SILENT,
) -> ClassifiedFile:
    """Classify the `column` of every row (default: the first of text, input, body, message, content).

    Raises:
        UserError: the model is not a classification run, the file can't be read, or the column is missing.
    """
    from tailorlm.classifier import is_classifier, load_classifier
    from tailorlm.modeling import resolve_model

    ref = resolve_model(workspace, model)
    if not is_classifier(ref.artifact_dir):
        raise UserError(
            f"{model} answers by generating text, not with a classification head: classify needs a run of "
            "task classify with train.head classification"
        )
    path = Path(path)
    rows, columns = _read(path)
    chosen = column or next((c for c in TEXT_COLUMNS if c in columns), None)
    if chosen is None or chosen not in columns:
        wanted = f"no column {column!r}" if column else f"none of the text columns {', '.join(TEXT_COLUMNS)}"
        raise UserError(f"{path}: {wanted}; its columns: {', '.join(columns) or 'none'}", hint="pass --column NAME")
    texts = [str(row.get(chosen) or "").strip() for row in rows]
    present = [i for i, text in enumerate(texts) if text]
    classifier = load_classifier(ref.artifact_dir, ref.base_model)
    predictions = classifier.predict(
        [texts[i] for i in present], batch_size=batch_size, min_confidence=min_confidence, progress=progress
    )
    by_row = dict(zip(present, predictions, strict=True))
    counts: dict[str, int] = {}
    out_rows = []
    for i, row in enumerate(rows):
        prediction = by_row.get(i)
        result: dict[str, Any] = {"label": "", "confidence": "", "abstained": "", "error": ""}
        if prediction is None:
            result["error"] = "empty text"
        else:
            result.update(
                label=prediction.label or "", confidence=round(prediction.confidence, 4), abstained=prediction.abstained
            )
            key = prediction.label or "(needs a person)"
            counts[key] = counts.get(key, 0) + 1
            if path.suffix == ".jsonl":
                result["probabilities"] = {k: round(v, 4) for k, v in prediction.probabilities.items()}
        out_rows.append({**row, **result})
    target = output_path(path)
    if path.suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=list(dict.fromkeys([*columns, "label", "confidence", "abstained", "error"]))
        )
        writer.writeheader()
        writer.writerows(out_rows)
        atomic_write_text(target, buffer.getvalue())
    else:
        atomic_write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows))
    return ClassifiedFile(
        target,
        len(rows),
        sum(1 for p in predictions if p.abstained),
        len(rows) - len(present),
        dict(sorted(counts.items())),
    )
