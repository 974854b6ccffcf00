"""The evaluation's files: `results.jsonl` (one row per case and candidate), `summary.json`, and a
self-contained `report.html` (charts as embedded PNGs, a per-item table with inline filters).

Also the compact table the CLI prints (`summary_table`). All files are rendered first and then
written into a staging folder that is renamed into `evals/<id>/` only when complete.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

from tailorlm.workspace import Workspace, atomic_write_json, atomic_write_jsonl, atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"


def write_evaluation(workspace: Workspace, final: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Render everything, then write it atomically into `final` (an `evals/<id>/` folder)."""
    html = render_report(summary, rows)
    with workspace.staging(final) as staging:
        atomic_write_jsonl(staging / "results.jsonl", rows)
        atomic_write_json(staging / "summary.json", summary)
        atomic_write_text(staging / "report.html", html)


# --- the compact table ---------------------------------------------------------------------------


def _cell(score: dict[str, Any] | None) -> str:
    if not score or score.get("value") is None:
        return "—"
    value, ci = score["value"], score.get("ci") or [None, None]
    shown = f"{value:.3f}" if abs(value) < 1000 else f"{value:.3g}"
    if ci[0] is not None and ci[1] is not None and not (ci[0] == ci[1] == value):
        shown += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return shown


def summary_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the summary: one row per candidate, one column per score (value [95% CI]).

    The CLI prints it with rich: `table = Table(*headers)`, then `table.add_row(*row)` for each row.
    """
    names: list[str] = []
    for by_metric in summary["scores"].values():  # metrics measured on at least one candidate
        names += [m for m, s in by_metric.items() if m not in names and s.get("value") is not None]
    headers = ["candidate", *names]
    rows = [
        [candidate, *(_cell(summary["scores"][candidate].get(m)) for m in names)] for candidate in summary["scores"]
    ]
    return headers, rows


def format_table(summary: dict[str, Any]) -> str:
    """The summary table as plain text (fixed-width columns), for logs and simple terminals."""
    headers, rows = summary_table(summary)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


# --- charts ---------------------------------------------------------------------------------------


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _grid(count: int, width: float, height: float) -> tuple[Any, list[Any]]:
    """One figure with `count` panels, three to a row (one PNG renders much faster than many)."""
    from matplotlib.figure import Figure

    columns = min(3, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(width * columns, height * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[count:]:
        unused.set_visible(False)
    return figure, axes[:count]


def metric_charts(summary: dict[str, Any]) -> list[dict[str, str]]:
    """A bar chart per metric (one panel each): a bar per candidate with its 95% interval."""
    candidates = list(summary["scores"])
    metrics: list[str] = []
    for by_metric in summary["scores"].values():
        metrics += [m for m in by_metric if m not in metrics]
    panels = []
    for metric in metrics:
        points = [(c, summary["scores"][c].get(metric)) for c in candidates]
        points = [(c, s) for c, s in points if s and s.get("value") is not None]
        if points:
            panels.append((metric, points))
    if not panels:
        return []
    figure, axes = _grid(len(panels), 1.0 + 0.75 * len(candidates), 2.8)
    for ax, (metric, points) in zip(axes, panels, strict=True):
        values = [s["value"] for _, s in points]
        cis = [s.get("ci") or [None, None] for _, s in points]
        low = [v - ci[0] if ci[0] is not None else 0.0 for v, ci in zip(values, cis, strict=True)]
        high = [ci[1] - v if ci[1] is not None else 0.0 for v, ci in zip(values, cis, strict=True)]
        colors = ["#2b6cb0" if c.startswith(("finetuned", "run-")) else "#a0aec0" for c, _ in points]
        has_ci = any(ci[0] is not None for ci in cis)
        errors = [[max(0.0, x) for x in low], [max(0.0, x) for x in high]] if has_ci else None
        ax.bar(range(len(points)), values, yerr=errors, capsize=3, color=colors)
        ax.set_xticks(range(len(points)), [c for c, _ in points], rotation=25, ha="right", fontsize=8)
        if metric == "judge":
            ax.set_ylim(0, 5.2)
        elif metric not in ("loss", "perplexity") and all(0 <= v <= 1 for v in values):
            ax.set_ylim(0, 1.05)
        ax.set_title(metric, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.25, hspace=0.7, wspace=0.3)
    return [{"metric": ", ".join(m for m, _ in panels), "png": _png(figure)}]


def confusion_charts(summary: dict[str, Any]) -> list[dict[str, str]]:
    """A confusion matrix per candidate (classification), one panel each."""
    matrices = []
    for candidate, details in summary.get("details", {}).items():
        matrix = (details.get("accuracy") or details.get("macro_f1") or {}).get("confusion_matrix")
        if matrix:
            matrices.append((candidate, matrix))
    if not matrices:
        return []
    size = 1.6 + 0.45 * max(len(m["columns"]) for _, m in matrices)
    figure, axes = _grid(len(matrices), size + 0.6, size)
    for ax, (candidate, matrix) in zip(axes, matrices, strict=True):
        rows, columns, values = matrix["rows"], matrix["columns"], matrix["matrix"]
        ax.imshow(values, cmap="Blues")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("gold", fontsize=8)
        peak = max((v for row in values for v in row), default=0) or 1
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value:
                    ax.text(
                        j,
                        i,
                        str(value),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if value > peak / 2 else "black",
                    )
        ax.set_title(candidate, fontsize=9)
    figure.subplots_adjust(left=0.15, right=0.97, top=0.92, bottom=0.25, hspace=0.6, wspace=0.5)
    return [{"candidate": ", ".join(c for c, _ in matrices), "png": _png(figure)}]


# --- the page -------------------------------------------------------------------------------------


def _items(summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows pivoted to one entry per case with each candidate's answer."""
    flipped = {name: set(c.get("pass_rate", {}).get("flipped", [])) for name, c in summary["comparisons"].items()}
    items: dict[str, dict[str, Any]] = {}
    for row in rows:
        item = items.setdefault(
            row["case"],
            {
                "case": row["case"],
                "input": row["input"],
                "expected": row["expected"],
                "origin": row["origin"],
                "source": row["source"],
                "tags": row["tags"],
                "answers": [],
                "failing": [],
                "flipped": [],
            },
        )
        item["answers"].append(row)
        if row["passed"] is False or (row["passed"] is None and row["errors"]):
            item["failing"].append(row["candidate"])
        if row["case"] in flipped.get(row["candidate"], set()):
            item["flipped"].append(row["candidate"])
    return list(items.values())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return "—" if value is None else str(value)


def render_report(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The report as one HTML string with everything embedded."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "jinja"]))
    environment.filters["fmt"] = _fmt
    headers, table = summary_table(summary)
    tags = sorted({t for row in rows for t in row["tags"]})
    return environment.get_template("report.html.jinja").render(
        summary=summary,
        headers=headers,
        table=table,
        charts=metric_charts(summary),
        confusions=confusion_charts(summary),
        items=_items(summary, rows),
        tags=tags,
        candidates=[c["name"] for c in summary["candidates"]],
    )
