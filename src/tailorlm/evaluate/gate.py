"""The release gate: the project's `evaluate.objectives` checked on a fine-tuned candidate.

```yaml
evaluate:
  objectives: {accuracy: 0.95, field_f1: 0.9, rouge_l: 0.3, judge_win_rate_vs_rag: 0.6, perplexity: 20}
```

An objective is met when the candidate's score reaches the threshold: at least it for metrics where
higher is better, at most it for `loss` and `perplexity`. A score that could not be measured (no
applicable item) is unmet. The verdict is recorded in the evaluation's meta
(`{"passed": bool, "unmet": [...]}`), which `register` reads; `tailorlm eval --gate` exits 1 when unmet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tailorlm.evaluate.cases import EvalError
from tailorlm.evaluate.metrics import known_metrics
from tailorlm.evaluate.scoring import EXTRA, JUDGE_WIN, higher_is_better


@dataclass
class GateCheck:
    """One objective: the threshold, the measured value (None when not measured) and its interval."""

    metric: str
    threshold: float
    value: float | None
    ci: tuple[float | None, float | None] | None
    higher_is_better: bool
    passed: bool

    def describe(self) -> str:
        shown = "not measured" if self.value is None else f"{self.value:.4g}"
        relation = ">=" if self.higher_is_better else "<="
        return f"{self.metric} {shown} (needs {relation} {self.threshold:g})"


@dataclass
class GateResult:
    """The gate's verdict on one candidate.

    Attributes:
        passed: Every objective met.
        unmet: One line per unmet objective, e.g. `accuracy 0.82 (needs >= 0.95)`.
        checks: Every objective with its value.
        candidate: The candidate it was checked on.
    """

    passed: bool
    unmet: list[str]
    checks: list[GateCheck] = field(default_factory=list)
    candidate: str = ""

    def to_meta(self) -> dict[str, Any]:
        """What `register` reads: `{"passed": bool, "unmet": [...]}` (plus the checks for reports)."""
        return {
            "passed": self.passed,
            "unmet": self.unmet,
            "candidate": self.candidate,
            "checks": [
                {
                    "metric": c.metric,
                    "threshold": c.threshold,
                    "value": c.value,
                    "ci": list(c.ci) if c.ci else None,
                    "higher_is_better": c.higher_is_better,
                    "passed": c.passed,
                }
                for c in self.checks
            ],
        }


def validate_objectives(objectives: Mapping[str, float], baseline_names: Iterable[str]) -> None:
    """Raise `EvalError` for an objective that names nothing this evaluation can measure."""
    allowed = set(known_metrics()) | set(EXTRA) | {f"{JUDGE_WIN}{name}" for name in baseline_names}
    unknown = sorted(set(objectives) - allowed)
    if unknown:
        raise EvalError(
            f"evaluate.objectives: unknown metric(s) {', '.join(unknown)}; objectives can name: "
            f"{', '.join(sorted(allowed))}"
        )
    for name, threshold in objectives.items():
        if not isinstance(threshold, int | float) or math.isnan(threshold):
            raise EvalError(f"evaluate.objectives.{name} must be a number (got {threshold!r})")


def check_gate(objectives: Mapping[str, float], scores: Mapping[str, Mapping[str, Any]], candidate: str) -> GateResult:
    """Check `objectives` against one candidate's scores (`{metric: {"value": v, "ci": [lo, hi]}}`)."""
    checks = []
    for name, threshold in objectives.items():
        score = scores.get(name) or {}
        value = score.get("value")
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        up = higher_is_better(name)
        passed = value is not None and (value >= threshold if up else value <= threshold)
        ci = tuple(score["ci"]) if score.get("ci") else None
        checks.append(GateCheck(name, float(threshold), value, ci, up, passed))  # type: ignore[arg-type]
    unmet = [c.describe() for c in checks if not c.passed]
    return GateResult(passed=not unmet, unmet=unmet, checks=checks, candidate=candidate)


def combine_gates(gates: Mapping[str, GateResult]) -> GateResult:
    """One verdict for several runs evaluated together: passed only when every run passed (so
    `register` never accepts a run on another run's result); unmet lines name the run."""
    if len(gates) == 1:
        return next(iter(gates.values()))
    unmet = [f"{name}: {line}" for name, gate in gates.items() for line in gate.unmet]
    checks = [check for gate in gates.values() for check in gate.checks]
    return GateResult(passed=not unmet, unmet=unmet, checks=checks, candidate=", ".join(gates))
