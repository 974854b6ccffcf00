"""What changed between two evaluations (two iterations of the same project): score deltas per
candidate, the items that flipped from fail to pass (fixed) or pass to fail (broken), cases added
or removed, and the gate's verdict before and after.

    diff = compare(workspace, "eval-...-old", "eval-...-new")
    diff.deltas["finetuned"]["rouge_l"]        # {"before": 0.31, "after": 0.38, "delta": 0.07, ...}
    diff.flipped["finetuned"]["broken"]         # case ids that passed before and fail now

Cases are matched by id, so the same test split (or the same hand-written file) is what makes two
evaluations comparable; `common` says how many cases both have.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.scoring import higher_is_better
from tailorlm.workspace import NotFound, Workspace, read_jsonl


@dataclass
class EvaluationDiff:
    """The difference between evaluation `before` and evaluation `after`."""

    before: str
    after: str
    common: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    deltas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    flipped: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Headers and rows for the CLI: one row per candidate and metric."""
        headers = ["candidate", "metric", "before", "after", "delta", "fixed", "broken"]
        rows = []
        for candidate, by_metric in self.deltas.items():
            flips = self.flipped.get(candidate, {})
            for metric, d in by_metric.items():
                sign = "+" if (d["delta"] or 0) > 0 else ""
                arrow = {True: " ▲", False: " ▼"}.get(d["better"], "")
                rows.append(
                    [
                        candidate,
                        metric,
                        _show(d["before"]),
                        _show(d["after"]),
                        f"{sign}{_show(d['delta'])}{arrow}",
                        str(len(flips.get("fixed", []))) if metric == "pass_rate" else "",
                        str(len(flips.get("broken", []))) if metric == "pass_rate" else "",
                    ]
                )
        return headers, rows


def _show(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _load(workspace: Workspace, reference: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    try:
        artifact = workspace.resolve("evaluation", reference)
    except NotFound as error:
        raise EvalError(str(error)) from None
    if artifact.status != "complete":
        raise EvalError(f"evaluation {artifact.id} is {artifact.status}; only complete evaluations can be compared")
    folder = workspace.path_of(artifact)
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        rows = read_jsonl(folder / "results.jsonl")
    except (OSError, ValueError) as error:
        raise EvalError(f"evaluation {artifact.id}: its files can't be read ({error})") from None
    return artifact.id, summary, rows


def compare(workspace: Workspace, eval_a: str, eval_b: str) -> EvaluationDiff:
    """Compare evaluation `eval_a` (before) with `eval_b` (after); ids, or None-less references."""
    id_a, summary_a, rows_a = _load(workspace, eval_a)
    id_b, summary_b, rows_b = _load(workspace, eval_b)
    cases_a = {r["case"] for r in rows_a}
    cases_b = {r["case"] for r in rows_b}
    common = cases_a & cases_b
    diff = EvaluationDiff(
        before=id_a, after=id_b, common=len(common), added=sorted(cases_b - cases_a), removed=sorted(cases_a - cases_b)
    )
    for candidate, metrics_b in summary_b["scores"].items():
        metrics_a = summary_a["scores"].get(candidate)
        if metrics_a is None:
            continue
        for metric, score_b in metrics_b.items():
            before, after = (metrics_a.get(metric) or {}).get("value"), score_b.get("value")
            if before is None and after is None:
                continue
            delta = after - before if before is not None and after is not None else None
            better = None if not delta else (delta > 0) == higher_is_better(metric)
            diff.deltas.setdefault(candidate, {})[metric] = {
                "before": before,
                "after": after,
                "delta": delta,
                "better": better,
                "ci_before": (metrics_a.get(metric) or {}).get("ci"),
                "ci_after": score_b.get("ci"),
            }
    passed_a = {(r["case"], r["candidate"]): r["passed"] for r in rows_a}
    for row in rows_b:
        key = (row["case"], row["candidate"])
        if row["case"] not in common or key not in passed_a:
            continue
        flips = diff.flipped.setdefault(row["candidate"], {"fixed": [], "broken": []})
        if passed_a[key] is False and row["passed"] is True:
            flips["fixed"].append(row["case"])
        elif passed_a[key] is True and row["passed"] is False:
            flips["broken"].append(row["case"])
    diff.gate = {"before": summary_a.get("gate"), "after": summary_b.get("gate")}
    return diff
