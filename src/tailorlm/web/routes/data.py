"""Data (`/data`): datasets and their versions with cards, the contamination report, and an example
browser that renders examples exactly as training sees them (`data inspect`): chat template applied,
trained tokens marked, masked ones dim, EOS visible, redactions highlighted; filters by split, source,
label and text. Editors start a new `prepare` from here (a background job)."""

from __future__ import annotations

import functools
import json
import re
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tailorlm.dataset_splits import SPLITS
from tailorlm.formats.examples import Example
from tailorlm.formats.templates import inspect_segments
from tailorlm.registry import DatasetMeta
from tailorlm.web import jobs
from tailorlm.web.common import dashboard, page, read_form, require
from tailorlm.web.projects import load_workspace_project

router = APIRouter()
PAGE_SIZE = 10
REDACTION = re.compile(r"(\[[A-Z][A-Z_]*\])")
_tokenizer_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    from tailorlm.modeling import check_model_dir, load_tokenizer

    return load_tokenizer(check_model_dir(Path(path)))


def tokenizer_for(path: str) -> Any:
    with _tokenizer_lock:
        return _tokenizer(path)


def split_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """A split's rows as (lower-cased line for the text filter, row); cached while the file is unchanged (a
    dataset version never changes, so a 10,000-example split is parsed once, not on every page)."""
    stat = path.stat()
    return _split_rows(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _split_rows(path: str, _mtime: int, _size: int) -> list[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        return [(line.lower(), json.loads(line)) for line in handle if line.strip()]


@router.get("/data")
async def datasets(request: Request) -> Response:
    workspace = dashboard(request).workspace
    found = workspace.registry.find("dataset")
    documents = workspace.registry.find("document")
    return page(request, "data.html.jinja", datasets=found, documents=documents)


@router.post("/data/prepare")
async def prepare(request: Request) -> Response:
    user = require(request, "editor")
    form = await read_form(request)
    argv = ["--force"] if form.get("force") else []
    job = jobs.start(dashboard(request).workspace, "prepare", argv, user=user.name)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def segments_of(tokenizer: Any, example: Any, max_length: int) -> list[dict[str, Any]]:
    """The example's pieces for the template: text, trained or masked, redaction or EOS marks."""
    eos = getattr(tokenizer, "eos_token", None) or "\x00"
    pieces: list[dict[str, Any]] = []
    for text, trained in inspect_segments(tokenizer, example, max_length):
        for part in re.split(f"({REDACTION.pattern}|{re.escape(eos)})", text):
            if part:
                kind = "redaction" if REDACTION.fullmatch(part) else "eos" if part == eos else ""
                pieces.append({"text": part, "trained": trained, "mark": kind})
    return pieces


@router.get("/data/{dataset_id}")
async def dataset(
    request: Request,
    dataset_id: str,
    split: str = "train",
    source: str = "",
    label: str = "",
    q: str = "",
    offset: int = 0,
) -> Response:
    workspace = dashboard(request).workspace
    artifact = workspace.resolve("dataset", dataset_id)
    meta = artifact.meta_as(DatasetMeta)
    folder = workspace.path_of(artifact)
    card = json.loads((folder / "card.json").read_text("utf-8")) if (folder / "card.json").is_file() else {}
    split = split if split in SPLITS else "train"
    path = folder / f"{split}.jsonl"
    rows = split_rows(path) if path.is_file() else []
    sources = sorted({(row.get("source") or "").split("#")[0] for _, row in rows})
    labels = sorted({row["label"] for _, row in rows if row.get("label")})
    needle = q.lower()
    chosen = [
        row
        for text, row in rows
        if (not source or (row.get("source") or "").startswith(source))
        and (not label or row.get("label") == label)
        and (not needle or needle in text)
    ]
    offset = max(0, min(offset, max(len(chosen) - 1, 0)))
    shown = [Example.model_validate(row) for row in chosen[offset : offset + PAGE_SIZE]]
    project, _ = load_workspace_project(workspace)
    max_length = project.train.max_length if project else 1024
    rendered, problem = [], None
    base = card.get("base_model") or (str(project.resolve(project.base_model)) if project else None)
    try:
        tokenizer = tokenizer_for(str(base)) if base else None
    except Exception as error:  # a base model moved or deleted: still show the raw examples
        tokenizer, problem = None, f"examples shown as stored, not as tokenized: {error}"
    for example in shown:
        pieces = segments_of(tokenizer, example, max_length) if tokenizer is not None else None
        rendered.append({"example": example, "pieces": pieces})
    return page(
        request,
        "dataset.html.jinja",
        dataset=artifact,
        meta=meta,
        card=card,
        split=split,
        splits=SPLITS,
        source=source,
        label=label,
        q=q,
        sources=sources,
        labels=labels,
        examples=rendered,
        total=len(chosen),
        offset=offset,
        page_size=PAGE_SIZE,
        problem=problem,
    )
