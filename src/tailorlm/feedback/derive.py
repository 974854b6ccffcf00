"""From feedback records to what training learns from: corrections, preference pairs, single ratings.

Records are grouped by prompt (the same conversation). Within a group:

* a corrected answer gives a supervised target and a pair (chosen = corrected, rejected = original);
* a good and a bad answer to the same prompt (paired ratings: up vs down, 5 vs 1, a preference file's
  chosen vs rejected) give a pair;
* a rated answer in no pair is a single rating: desirable or undesirable (KTO); neutral ratings (3)
  are counted and left out.

The same derivation feeds `tailorlm feedback export` and prepare's `feedback` builder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tailorlm.feedback.records import FeedbackRecord, prompt_key


@dataclass
class Pair:
    """A chosen and a rejected answer to one prompt."""

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    feedback: list[str]
    why: str  # corrected | rated


@dataclass
class Single:
    """One answer judged on its own: desirable or not."""

    prompt: list[dict[str, str]]
    completion: str
    desirable: bool
    feedback: list[str]


@dataclass
class Derived:
    """Everything learnt from a set of records, and what was left out."""

    corrected: list[Single] = field(default_factory=list)  # the corrected answers (desirable, supervised targets)
    pairs: list[Pair] = field(default_factory=list)
    singles: list[Single] = field(default_factory=list)
    neutral: int = 0

    def count(self) -> dict[str, int]:
        return {
            "corrected": len(self.corrected),
            "pairs": len(self.pairs),
            "singles": len(self.singles),
            "neutral": self.neutral,
        }


def derive(records: Iterable[FeedbackRecord]) -> Derived:
    """Corrections, pairs and single ratings from records (see the module docstring); deterministic."""
    groups: dict[str, list[FeedbackRecord]] = defaultdict(list)
    for item in records:
        groups[prompt_key(item.messages)].append(item)
    result = Derived()
    for key in sorted(groups):
        group = groups[key]
        prompt = group[0].prompt
        seen_pairs: set[tuple[str, str]] = set()
        for item in group:
            if item.corrected and item.corrected.strip() != item.answer.strip():
                result.corrected.append(Single(prompt, item.corrected, True, [item.id]))
                if (item.corrected, item.answer) not in seen_pairs:
                    seen_pairs.add((item.corrected, item.answer))
                    result.pairs.append(Pair(prompt, item.corrected, item.answer, [item.id], "corrected"))
        good = [item for item in group if item.desirable is True and not item.corrected]
        bad = [item for item in group if item.desirable is False and not item.corrected]
        paired: set[str] = set()
        for winner in good:
            for loser in bad:
                if winner.answer.strip() == loser.answer.strip() or (winner.answer, loser.answer) in seen_pairs:
                    continue
                seen_pairs.add((winner.answer, loser.answer))
                result.pairs.append(Pair(prompt, winner.answer, loser.answer, [winner.id, loser.id], "rated"))
                paired.update((winner.id, loser.id))
        for item in group:
            if item.corrected or item.id in paired:
                continue
            if item.desirable is None:
                result.neutral += 1
            else:
                result.singles.append(Single(prompt, item.answer, item.desirable, [item.id]))
    return result
