"""The release gate: the project's `evaluate.objectives` checked on a fine-tuned candidate.

```yaml
evaluate:
  objectives: {accuracy: 0.95, field_f1: 0.9, rouge_l: 0.3, judge_win_rate_vs_rag: 0.6, perplexity: 20}
  # or a margin instead of a threshold:
  objectives: {fact_recall: beats_baselines, invented_facts: beats_baselines, rouge_l: 0.15}
```

A threshold is met when the candidate's score reaches it: at least it for metrics where higher is
better, at most it for lower-is-better ones (`loss`, `perplexity`, `invented_facts`). A score that
could not be measured (no applicable item) is unmet.

`beats_baselines` is met when the candidate is better than *every* baseline candidate (`base`,
`few_shot`, `rag`; not endpoints, not other fine-tuned candidates) on that metric, item by item:
the 95% paired bootstrap interval of the mean difference (candidate − baseline, over the items both
scored; `stats.paired_comparison`, 1000 resamples, seed 0, so the verdict is the same on every run)
lies above 0 (below 0 for a lower-is-better metric). A threshold a hair above a noisy score flips
with the test split; a margin that must clear its own uncertainty does not. Each baseline's
difference and interval is recorded, and an unmet one reads
`fact_recall: +0.04 [-0.01, +0.09] vs rag — not above 0 at 95%`.

The verdict is recorded in the evaluation's meta (`{"passed": bool, "unmet": [...]}`), which
`register` reads; `tailorlm eval --gate` exits 1 when unmet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailorlm.config import BEATS_BASELINES
from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.metrics import get_metric, known_metrics
from tailorlm.evaluate.scoring import EXTRA, JUDGE_WIN, finite, higher_is_better
from tailorlm.evaluate.stats import paired_comparison

MARGIN_CONFIDENCE = 0.95
MARGIN_RESAMPLES = 1000
MARGIN_SEED = 0
# Scores with per-item values besides the decomposing registered metrics (margins need per-item scores).
PER_ITEM_EXTRA = ("pass_rate", "judge")

Objective = float | str
PerItem = Mapping[str, Mapping[str, Sequence[float | None]]]


@dataclass
class Margin:
    """The candidate against one baseline on one metric: mean difference (candidate − baseline) over
    the items both scored, its paired bootstrap interval, and whether it clears 0 in the metric's
    direction."""

    baseline: str
    mean_diff: float | None
    ci: tuple[float | None, float | None]
    n: int
    wins: int
    losses: int
    ties: int
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "mean_diff": self.mean_diff,
            "ci": list(self.ci),
            "n": self.n,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "passed": self.passed,
        }


@dataclass
class GateCheck:
    """One objective: the threshold (None for `beats_baselines`), the measured value (None when not
    measured) and its interval, and for `beats_baselines` the margin over each baseline."""

    metric: str
    threshold: float | None
    value: float | None
    ci: tuple[float | None, float | None] | None
    higher_is_better: bool
    passed: bool
    margins: list[Margin] = field(default_factory=list)

    @property
    def objective(self) -> Objective:
        return BEATS_BASELINES if self.threshold is None else self.threshold

    def lines(self) -> list[str]:
        """The objective as read by a person, met or not: `rouge_l 0.21 (needs >= 0.3)`, or one line per
        baseline, `fact_recall: +0.12 [+0.05, +0.19] vs rag — above 0 at 95%`."""
        if self.threshold is not None:
            shown = "not measured" if self.value is None else f"{self.value:.4g}"
            relation = ">=" if self.higher_is_better else "<="
            return [f"{self.metric} {shown} (needs {relation} {self.threshold:g})"]
        if not self.margins:
            return [f"{self.metric}: no baseline to beat (evaluate.baselines is empty)"]
        direction = "above" if self.higher_is_better else "below"
        lines = []
        for m in self.margins:
            if m.mean_diff is None or m.ci[0] is None or m.ci[1] is None:
                lines.append(f"{self.metric}: not measured vs {m.baseline} (no item scored for both)")
            else:
                verdict = direction if m.passed else f"not {direction}"
                lines.append(
                    f"{self.metric}: {m.mean_diff:+.3g} [{m.ci[0]:+.3g}, {m.ci[1]:+.3g}] vs {m.baseline} "
                    f"— {verdict} 0 at {MARGIN_CONFIDENCE:.0%}"
                )
        return lines

    def problems(self) -> list[str]:
        """One line per way the objective is unmet (none when it is met)."""
        if self.passed:
            return []
        if self.threshold is not None or not self.margins:
            return self.lines()
        return [line for m, line in zip(self.margins, self.lines(), strict=True) if not m.passed]


@dataclass
class GateResult:
    """The gate's verdict on one candidate.

    Attributes:
        passed: Every objective met.
        unmet: One line per unmet objective (per baseline not beaten), e.g. `accuracy 0.82 (needs >= 0.95)`.
        checks: Every objective with its value.
        candidate: The candidate it was checked on.
    """

    passed: bool
    unmet: list[str]
    checks: list[GateCheck] = field(default_factory=list)
    candidate: str = ""

    def explain(self) -> list[str]:
        """Every objective as read by a person, met or not (`GateCheck.lines`), e.g. for a passed gate."""
        return [line for check in self.checks for line in check.lines()]

    def to_meta(self) -> dict[str, Any]:
        """What `register` reads: `{"passed": bool, "unmet": [...]}` (plus the checks for reports)."""
        return {
            "passed": self.passed,
            "unmet": self.unmet,
            "candidate": self.candidate,
            "checks": [
                {
                    "metric": c.metric,
                    "objective": c.objective,
                    "threshold": c.threshold,
                    "value": c.value,
                    "ci": list(c.ci) if c.ci else None,
                    "higher_is_better": c.higher_is_better,
                    "passed": c.passed,
                    **({"versus": {m.baseline: m.to_json() for m in c.margins}} if c.threshold is None else {}),
                }
                for c in self.checks
            ],
        }


def _has_per_item_scores(name: str) -> bool:
    if name in PER_ITEM_EXTRA:
        return True
    return name in known_metrics() and get_metric(name).decomposes


def validate_objectives(
    objectives: Mapping[str, Objective], baseline_names: Iterable[str], *, baselines: Iterable[str] | None = None
) -> None:
    """Raise `EvalError` for an objective that names nothing this evaluation can measure.

    Args:
        objectives: `evaluate.objectives`.
        baseline_names: Candidates a judge win rate may name (every candidate but the fine-tuned ones).
        baselines: The baseline candidates `beats_baselines` compares with (default: `baseline_names`).
    """
    baseline_names = list(baseline_names)
    allowed = set(known_metrics()) | set(EXTRA) | {f"{JUDGE_WIN}{name}" for name in baseline_names}
    unknown = sorted(set(objectives) - allowed)
    if unknown:
        raise EvalError(
            f"evaluate.objectives: unknown metric(s) {', '.join(unknown)}; objectives can name: "
            f"{', '.join(sorted(allowed))}"
        )
    to_beat = baseline_names if baselines is None else list(baselines)
    for name, objective in objectives.items():
        if objective == BEATS_BASELINES:
            if not _has_per_item_scores(name):
                raise EvalError(
                    f"evaluate.objectives.{name}: {BEATS_BASELINES} compares per-item scores, and {name} has none; "
                    "use a threshold, or a metric scored item by item (e.g. rouge_l, fact_recall, accuracy)"
                )
            if not to_beat:
                raise EvalError(
                    f"evaluate.objectives.{name}: {BEATS_BASELINES} needs a baseline to beat; "
                    "set evaluate.baselines (base, few_shot, rag)"
                )
        elif not isinstance(objective, int | float) or isinstance(objective, bool) or math.isnan(objective):
            raise EvalError(f"evaluate.objectives.{name} must be a number or {BEATS_BASELINES!r} (got {objective!r})")


def margin(
    name: str, candidate: Sequence[float | None], baseline: Sequence[float | None], baseline_name: str
) -> Margin:
    """The candidate's margin over one baseline on metric `name` (paired bootstrap, fixed seed)."""
    comparison = paired_comparison(
        candidate, baseline, n_resamples=MARGIN_RESAMPLES, confidence=MARGIN_CONFIDENCE, seed=MARGIN_SEED
    )
    low, high = finite(comparison.ci[0]), finite(comparison.ci[1])
    diff = finite(comparison.mean_diff)
    up = higher_is_better(name)
    passed = low is not None and high is not None and (low > 0 if up else high < 0)
    return Margin(
        baseline_name, diff, (low, high), comparison.n, comparison.wins, comparison.losses, comparison.ties, passed
    )


def check_gate(
    objectives: Mapping[str, Objective],
    scores: Mapping[str, Mapping[str, Any]],
    candidate: str,
    *,
    per_item: PerItem | None = None,
    baselines: Sequence[str] = (),
) -> GateResult:
    """Check `objectives` against one candidate.

    Args:
        objectives: `{metric: threshold or "beats_baselines"}`.
        scores: The candidate's scores, `{metric: {"value": v, "ci": [lo, hi]}}` (as in summary.json).
        candidate: The candidate's name.
        per_item: Per-item scores by candidate then metric (`{"finetuned": {"rouge_l": [0.4, None, ...]}}`),
            for the candidate and each baseline; needed by `beats_baselines` objectives.
        baselines: The baseline candidates a `beats_baselines` objective compares with.
    """
    checks = []
    per_item = per_item or {}
    for name, objective in objectives.items():
        score = scores.get(name) or {}
        value = score.get("value")
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        up = higher_is_better(name)
        ci = tuple(score["ci"]) if score.get("ci") else None
        if objective == BEATS_BASELINES:
            mine = per_item.get(candidate, {}).get(name) or []
            margins = []
            for baseline in baselines:
                theirs = per_item.get(baseline, {}).get(name) or []
                if len(theirs) != len(mine) or not mine:
                    margins.append(Margin(baseline, None, (None, None), 0, 0, 0, 0, False))
                else:
                    margins.append(margin(name, mine, theirs, baseline))
            passed = bool(margins) and all(m.passed for m in margins)
            checks.append(GateCheck(name, None, value, ci, up, passed, margins))
            continue
        threshold = float(objective)
        passed = value is not None and (value >= threshold if up else value <= threshold)
        checks.append(GateCheck(name, threshold, value, ci, up, passed))
    unmet = [line for c in checks for line in c.problems()]
    return GateResult(passed=not unmet, unmet=unmet, checks=checks, candidate=candidate)


def combine_gates(gates: Mapping[str, GateResult]) -> GateResult:
    """One verdict for several runs evaluated together: passed only when every run passed (so
    `register` never accepts a run on another run's result); unmet lines name the run."""
    if len(gates) == 1:
        return next(iter(gates.values()))
    unmet = [f"{name}: {line}" for name, gate in gates.items() for line in gate.unmet]
    checks = [check for gate in gates.values() for check in gate.checks]
    return GateResult(passed=not unmet, unmet=unmet, checks=checks, candidate=", ".join(gates))
