"""Preference examples: an `Example` whose last assistant turn is judged, with the judgement in
`meta["preference"]`, so splits, dedup, cards and `data inspect` treat them like any chat example.

* a pair: the last turn is the chosen answer and `meta.preference.rejected` the rejected one
  (DPO, ORPO; KTO takes both sides as single ratings);
* a single rating: the last turn is an answer and `meta.preference.desirable` says if it is good (KTO).

A pair's chosen answer and a desirable single answer are good supervised targets and evaluation
references; an undesirable single answer is neither (`is_target`).
"""

from __future__ import annotations

from typing import Any

from tailorlm.formats.examples import Example, Message

KEY = "preference"


def pair_example(
    prompt: list[dict[str, str]], chosen: str, rejected: str, *, source: str = "", meta: dict[str, Any] | None = None
) -> Example:
    """A chosen and a rejected answer to `prompt` (messages ending with the user's turn)."""
    return _example(prompt, chosen, {"rejected": rejected}, source, meta)


def rated_example(
    prompt: list[dict[str, str]],
    completion: str,
    desirable: bool,
    *,
    source: str = "",
    meta: dict[str, Any] | None = None,
) -> Example:
    """One answer to `prompt`, judged desirable or not."""
    return _example(prompt, completion, {"desirable": desirable}, source, meta)


def _example(
    prompt: list[dict[str, str]], answer: str, judgement: dict[str, Any], source: str, meta: dict[str, Any] | None
) -> Example:
    messages = [Message(role=m["role"], content=m["content"]) for m in prompt]
    messages.append(Message(role="assistant", content=answer))
    return Example(messages=messages, source=source, meta={**(meta or {}), KEY: judgement})


def rejected_of(example: Example) -> str | None:
    """The rejected answer of a pair; None for any other example."""
    value = example.meta.get(KEY, {}).get("rejected")
    return value if isinstance(value, str) else None


def desirable_of(example: Example) -> bool | None:
    """True/False for a single rating; None for a pair or a plain example."""
    value = example.meta.get(KEY, {}).get("desirable")
    return value if isinstance(value, bool) else None


def is_preference(example: Example) -> bool:
    return rejected_of(example) is not None or desirable_of(example) is not None


def is_target(example: Example) -> bool:
    """Whether the example's last turn is an answer to learn from and to compare against (not a bad one)."""
    return desirable_of(example) is not False
