"""Evaluation: metrics, judges, baselines, the runner, reports and the release gate.

    from tailorlm.evaluate import evaluate, compare, summary_table
    result = evaluate(workspace, project, run="run-...", gate=True)
    headers, rows = summary_table(result.summary)
    if result.gate and not result.gate.passed: ...   # the CLI exits 1

Files: `suite.py` plans and validates, `cases.py` reads the cases, `baselines.py` builds prompts
(few-shot, RAG), `generation.py` answers with local models (batched), `endpoints.py` with
OpenAI-compatible endpoints, `cache.py` remembers answers, `scoring.py` scores with intervals and
paired comparisons, `judge.py` asks an LLM judge, `gate.py` checks objectives, `failures.py` explains
failures, `report.py` writes the files, `compare.py` diffs two evaluations, `runner.py` ties them up.
"""

from tailorlm.evaluate.cases import EvalCase, EvalError, load_cases_file
from tailorlm.evaluate.compare import EvaluationDiff, compare
from tailorlm.evaluate.gate import GateCheck, GateResult
from tailorlm.evaluate.judge import JudgeConfig
from tailorlm.evaluate.report import format_table, summary_table
from tailorlm.evaluate.runner import EvaluationResult, evaluate

__all__ = [
    "EvalCase",
    "EvalError",
    "EvaluationDiff",
    "EvaluationResult",
    "GateCheck",
    "GateResult",
    "JudgeConfig",
    "compare",
    "evaluate",
    "format_table",
    "load_cases_file",
    "summary_table",
]
