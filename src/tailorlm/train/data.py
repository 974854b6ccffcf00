"""Turn dataset splits into token ids and loss labels, and batch them with as little padding as possible."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tailorlm.errors import UserError
from tailorlm.formats.examples import Example
from tailorlm.formats.preference import is_target
from tailorlm.formats.templates import tokenize_example


class EmptyDatasetError(UserError, ValueError):
    """Nothing left to train on."""


@dataclass
class TokenizedSplit:
    rows: list[dict[str, list[int]]] = field(default_factory=list)
    truncated: int = 0
    dropped_no_target: int = 0
    tokens: int = 0
    trained_tokens: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "examples": len(self.rows),
            "truncated": self.truncated,
            "dropped_no_target": self.dropped_no_target,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
        }


def tokenize_split(tokenizer: Any, examples: Sequence[Example], max_length: int) -> TokenizedSplit:
    """Tokenise examples. Longer than `max_length` → truncated and counted; an example whose answer is
    cut away entirely (no trained token left) → dropped and counted."""
    result = TokenizedSplit()
    for example in examples:
        if not is_target(example):  # an answer a reviewer marked undesirable is for preference training only
            continue
        tokenized = tokenize_example(tokenizer, example, max_length)
        result.truncated += tokenized.truncated
        if tokenized.trained_tokens == 0:
            result.dropped_no_target += 1
            continue
        result.rows.append({"input_ids": tokenized.input_ids, "labels": tokenized.labels})
        result.tokens += len(tokenized.input_ids)
        result.trained_tokens += tokenized.trained_tokens
    return result


class ListDataset:
    """A list of tokenised rows, indexable by the Trainer's samplers."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]


@dataclass
class PadCollator:
    """Right-pads a batch to its longest row (rounded up to a multiple of 8); labels padded with -100."""

    pad_token_id: int
    multiple_of: int = 8

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        longest = max(len(row["input_ids"]) for row in rows)
        width = -(-longest // self.multiple_of) * self.multiple_of
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.tensor(row["input_ids"])
            labels[i, :n] = torch.tensor(row["labels"])
            attention[i, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
