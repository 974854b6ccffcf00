"""Small labelled ticket sets and a tiny random-weight encoder, for the classification tests."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

TOPICS = {
    "billing": ["refund", "invoice", "payment", "charged", "price"],
    "shipping": ["order", "shipped", "arrive", "days", "parcel"],
    "technical": ["restart", "hub", "pairing", "button", "thermostat"],
}
FILLER = ["please", "help", "thank", "you", "the", "my", "with", "Acme", "we", "are"]


def tickets(n: int, *, seed: int = 0, labels: dict[str, list[str]] | None = None) -> list[tuple[str, str]]:
    """`n` (text, label) pairs: two words of the label's topic among filler words."""
    topics = labels or TOPICS
    rng = random.Random(seed)
    names = sorted(topics)
    rows = []
    for i in range(n):
        label = names[i % len(names)]
        words = rng.sample(topics[label], 2) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def ticket_examples(n: int, *, seed: int = 0, multi: bool = False):
    from tailorlm.formats.examples import Example

    rows = tickets(n, seed=seed)
    if multi:  # every third ticket also mentions a second topic
        extra = tickets(n, seed=seed + 1)
        rows = [
            (f"{text} {extra[i][0]}", ";".join(sorted({label, extra[i][1]})) if i % 3 == 0 else label)
            if i % 3 == 0
            else (text, label)
            for i, (text, label) in enumerate(rows)
        ]
    return [
        Example.chat(user=f"Classify: {text}", assistant=label, label=label, source=f"t{i}", meta={"input": text})
        for i, (text, label) in enumerate(rows)
    ]


def build_tiny_encoder(folder: Path, tokenizer_from: Path) -> Path:
    """A BERT-style encoder with random weights (hidden 32), sharing the tiny model's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_from / name).is_file():
            shutil.copy(tokenizer_from / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=512,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    BertModel(config).save_pretrained(folder)
    return folder
