"""Text-overlap metrics against a reference answer (``case.expected``): ``rouge_l`` (rouge-score),
``chrf`` (sacrebleu) and ``exact_match``. Each scores one item at a time; the value is the mean over
items that have a reference.

rouge-score's default tokenizer keeps only ``[a-z0-9]``, so "Müller zahlt 9 €" would lose words and
Chinese would score nothing; ``UnicodeTokenizer`` keeps every Unicode word and splits Han/kana text
into single characters, as ROUGE is usually computed for those scripts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rouge_score import rouge_scorer, tokenizers
from sacrebleu.metrics import CHRF

from tailorlm.evaluate.metrics import Case, MetricResult, mean_or_nan, metric

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


class UnicodeTokenizer(tokenizers.Tokenizer):
    """Casefolded Unicode words; each Han or kana character is a token of its own."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(text.casefold())


def normalize_text(text: str) -> str:
    """Whitespace collapsed, ends stripped, casefolded: the comparison form for ``exact_match``."""
    return " ".join(text.split()).casefold()


def _per_reference(
    predictions: Sequence[str], cases: Sequence[Case], score: Callable[[str, str], float]
) -> list[float | None]:
    return [
        None if case.expected is None else score(prediction, case.expected)
        for prediction, case in zip(predictions, cases, strict=True)
    ]


_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=UnicodeTokenizer())
_CHRF = CHRF()


@metric("exact_match", tasks=("chat", "generate"))
def exact_match(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """1 when the output equals the reference up to whitespace and case."""
    per_item = _per_reference(predictions, cases, lambda p, r: float(normalize_text(p) == normalize_text(r)))
    return MetricResult("exact_match", mean_or_nan(per_item), per_item, {})


@metric("rouge_l", tasks=("chat", "generate"))
def rouge_l(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """ROUGE-L F-measure (longest common subsequence of tokens), no stemming, Unicode tokens."""
    per_item = _per_reference(predictions, cases, lambda p, r: _ROUGE.score(r, p)["rougeL"].fmeasure)
    return MetricResult("rouge_l", mean_or_nan(per_item), per_item, {})


@metric("chrf", tasks=("chat", "generate"))
def chrf(predictions: Sequence[str], cases: Sequence[Case]) -> MetricResult:
    """Sentence-level chrF (character n-gram F-score, sacrebleu defaults) scaled to 0–1.

    The value is the mean of the sentence scores, not sacrebleu's corpus chrF (which pools the
    n-gram counts); the mean is what per-item comparisons and confidence intervals need.
    """
    per_item = _per_reference(predictions, cases, lambda p, r: _CHRF.sentence_score(p, [r]).score / 100)
    return MetricResult("chrf", mean_or_nan(per_item), per_item, {})
