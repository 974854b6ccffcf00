"""Preference pairs that teach the sample company's house style, derived from its own answers.

Acme's style guide asks for answers in the first person plural ("we", "our"), a concrete next step, and
the signature "The Acme Care Team". For each answer of the sample company (FAQ answers, agents' e-mail
replies) `house_style_pairs` makes a pair with the same prompt:

* chosen: the answer as Acme wrote it, signed "The Acme Care Team";
* rejected: the same content in an impersonal voice ("we" → "Acme", "our" → "Acme's"), unsigned.

So the pair differs only in style, and a model that learns it moves towards the house voice without being
taught other facts. Used by the real-model measurement in docs/quality.md and the iterate tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tailorlm.feedback import FeedbackRecord
from tailorlm.formats.examples import Example

SIGNATURE = "The Acme Care Team"
IMPERSONAL = [  # first person plural → the company's name; order matters (contractions first)
    (r"\bwe'll\b", "Acme will"),
    (r"\bwe're\b", "Acme is"),
    (r"\bwe've\b", "Acme has"),
    (r"\bwe'd\b", "Acme would"),
    (r"\bwe\b", "Acme"),
    (r"\bours\b", "Acme's"),
    (r"\bour\b", "Acme's"),
    (r"\bus\b", "Acme"),  # lower case only: "US" is a country
]
_SIGN_OFF = re.compile(
    r"\n*(?:(?:warm |kind |best )?regards|best|thanks|cheers)?,?\s*\n*the acme care team\.?\s*$", re.I
)


def signed(text: str) -> str:
    """The answer ending with the team's signature (once)."""
    return f"{unsigned(text)}\n\n{SIGNATURE}"


def unsigned(text: str) -> str:
    return _SIGN_OFF.sub("", text.strip()).strip()


def impersonal(text: str) -> str:
    """The answer without the first person plural and without the signature."""
    out = unsigned(text)
    for pattern, replacement in IMPERSONAL:
        flags = 0 if pattern == r"\bus\b" else re.IGNORECASE
        out = re.sub(pattern, replacement, out, flags=flags)
    return out


def house_style_pairs(examples: Iterable[Example], *, reviewer: str = "style-guide") -> list[FeedbackRecord]:
    """Two records per chat example (chosen: signed house style; rejected: impersonal, unsigned) sharing a
    pair id; examples whose answer has no first person plural are left out (nothing to contrast)."""
    records = []
    for example in examples:
        if example.messages is None:
            continue
        prompt = [m for m in example.prompt if m["role"] != "system"]
        chosen, rejected = signed(example.target), impersonal(example.target)
        if rejected == unsigned(example.target) or not prompt:
            continue
        pair = f"style-{example.id}"
        for answer, rating in ((chosen, "up"), (rejected, "down")):
            records.append(
                FeedbackRecord(
                    messages=prompt,
                    answer=answer,
                    rating=rating,
                    pair=pair,
                    reviewer=reviewer,
                    reason="house style: we, a next step, signed The Acme Care Team",
                )
            )
    return records
