"""Evaluations (`/evals`): the ladder base → few-shot → RAG → fine-tuned with confidence intervals; the
per-item table with two candidates' answers side by side and the flips between them; failure clusters;
the gate's decision. Editors start an evaluation of a run from here (a background job)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tailorlm.web import jobs
from tailorlm.web.common import PageError, dashboard, page, read_form, require
from tailorlm.workspace import read_jsonl

router = APIRouter()
LADDER = ("base", "few_shot", "rag")


@router.get("/evals")
async def evaluations(request: Request) -> Response:
    workspace = dashboard(request).workspace
    runs = workspace.registry.find("run", status="complete")
    return page(request, "evals.html.jinja", evaluations=workspace.registry.find("evaluation"), runs=runs)


@router.post("/evals/new")
async def start(request: Request) -> Response:
    user = require(request, "editor")
    form = await read_form(request)
    run = form.get("run", "")
    argv = ["--run", run] if run else []
    job = jobs.start(dashboard(request).workspace, "eval", argv, user=user.name)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def ladder(summary: dict[str, Any]) -> list[str]:
    """Candidates in the order of the ladder: baselines first, then fine-tuned runs, then endpoints."""
    names = [c["name"] for c in summary.get("candidates", [])]
    return sorted(names, key=lambda n: (LADDER.index(n) if n in LADDER else len(LADDER), names.index(n)))


@router.get("/evals/{eval_id}")
async def evaluation(request: Request, eval_id: str, a: str = "", b: str = "", flips: bool = False) -> Response:
    workspace = dashboard(request).workspace
    artifact = workspace.registry.get(eval_id)
    if artifact.kind != "evaluation":
        raise PageError(404, f"{eval_id} is a {artifact.kind}, not an evaluation")
    folder = workspace.path_of(artifact)
    if not (folder / "summary.json").is_file():
        raise PageError(404, f"{eval_id} has no summary.json ({artifact.status})", hint=artifact.meta.error)
    summary = json.loads((folder / "summary.json").read_text("utf-8"))
    order = ladder(summary)
    a = a if a in order else summary.get("reference") or order[0]
    b = b if b in order else next((n for n in order if n not in LADDER and n != a), order[-1])
    by_case: dict[str, dict[str, Any]] = {}
    results = read_jsonl(folder / "results.jsonl") if (folder / "results.jsonl").is_file() else []
    for row in results:
        by_case.setdefault(row["case"], {})[row["candidate"]] = row
    items = []
    for case, answers in by_case.items():
        left, right = answers.get(a), answers.get(b)
        if left is None or right is None:
            continue
        flip = (
            "fixed"
            if right["passed"] and not left["passed"]
            else "broken"
            if left["passed"] and not right["passed"]
            else ""
        )
        if flips and not flip:
            continue
        items.append({"case": case, "left": left, "right": right, "flip": flip})
    metrics = [
        m
        for m in summary.get("metrics", [])
        if any((summary["scores"].get(c, {}).get(m) or {}).get("value") is not None for c in order)
    ] + [m for m in ("pass_rate", "loss") if m in summary["scores"].get(order[0], {})]
    return page(
        request,
        "evaluation.html.jinja",
        evaluation=artifact,
        summary=summary,
        order=order,
        metrics=metrics,
        a=a,
        b=b,
        flips=flips,
        items=items,
        gate=summary.get("gate"),
        failures=summary.get("failures") or {},
    )
