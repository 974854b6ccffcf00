"""Build a small local model for demos and tests: a Llama-architecture config with random weights and a
byte-level BPE tokenizer trained on the given texts. Nothing is downloaded.

It learns from scratch, so its answers are only as good as a few minutes of training make them: the
quickstart says so plainly. Hidden sizes are multiples of 64.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tailorlm.formats.templates import CHATML_TEMPLATE
from tailorlm.progress import SILENT, Progress

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096):
    """A byte-level BPE tokenizer trained on `texts`, with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|pad|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_demo_model(
    output_dir: Path,
    texts: Iterable[str],
    *,
    hidden_size: int = 256,
    layers: int = 4,
    heads: int = 4,
    intermediate_size: int = 704,
    vocab_size: int = 4096,
    max_positions: int = 1024,
    seed: int = 0,
    pretrain_steps: int = 0,
    progress: Progress = SILENT,
) -> Path:
    """Write a Llama model and its tokenizer to `output_dir`: random weights, then optionally
    `pretrain_steps` of plain language-model training on `texts` so the demo starts with some words."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % 64 or intermediate_size % 64:
        raise ValueError("hidden sizes must be multiples of 64")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    texts = list(texts)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if pretrain_steps:
        progress.say(f"Pretraining the demo model for {pretrain_steps} steps on {len(texts)} texts...")
        pretrain(model, tokenizer, texts, steps=pretrain_steps, seed=seed, progress=progress)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def pretrain(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    steps: int,
    block: int = 128,
    seed: int = 0,
    progress: Progress = SILENT,
) -> None:
    """Full-weight causal-LM training on `texts` cut into blocks (the demo model's 'pretraining')."""
    import torch

    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
    blocks = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    model.train()
    with progress.task("pretrain demo model", total=steps, unit="steps") as task:
        for _ in range(steps):
            batch = blocks[torch.randint(len(blocks), (8,), generator=generator)]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            task.advance(1, loss=float(loss), tokens=batch.numel())
    model.eval()
