"""Loss masks on the real tokenizers and chat templates of the model families users fine-tune.

Where TRL ships a `{% generation %}` training variant of a template, transformers computes the
assistant mask itself; ours (computed by rendering prefixes) must agree with it token for token."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailorlm.formats.examples import Example
from tailorlm.formats.templates import inspect_segments, render, tokenize_example

pytestmark = pytest.mark.integration

FAMILIES = [
    "llama-2-7b-chat",
    "llama-3.1-8b-instruct",
    "mistral-7b-instruct-v0.2",
    "mistral-7b-instruct-v0.3",
    "qwen2.5-instruct",
    "qwen3",
    "phi-3-mini-4k-instruct",
]

CONVERSATION = Example(
    messages=[
        {"role": "system", "content": "You are the Acme Care Team."},
        {"role": "user", "content": "My thermostat shows E07."},
        {"role": "assistant", "content": "E07 means the C-wire lost power. Please check the wire at the furnace."},
        {"role": "user", "content": "Thanks, fixed!"},
        {"role": "assistant", "content": "Wonderful, glad it works again."},
    ]
)


def load(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    template = folder / "chat_template.jinja"
    if not getattr(tokenizer, "chat_template", None) and template.exists():
        tokenizer.chat_template = template.read_text()
    return tokenizer


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_covers_exactly_the_assistant_answers(family, shared_data):
    tokenizer = load(shared_data / "tokenizers" / family)
    segments = inspect_segments(tokenizer, CONVERSATION, 4096)
    trained = "".join(text for text, is_trained in segments if is_trained)
    masked = "".join(text for text, is_trained in segments if not is_trained)
    for answer in ("E07 means the C-wire lost power", "Wonderful, glad it works again."):
        assert answer in trained and answer not in masked
    for prompt in ("My thermostat shows E07.", "Thanks, fixed!", "You are the Acme Care Team."):
        assert prompt in masked and prompt not in trained
    tokenized = tokenize_example(tokenizer, CONVERSATION, 4096)
    trained_ids = [i for i, label in zip(tokenized.input_ids, tokenized.labels, strict=True) if label != -100]
    assert tokenizer.eos_token_id in trained_ids[-3:], "the end of the answer must be trained"


@pytest.mark.parametrize("family", ["qwen2.5-instruct", "phi-3-mini-4k-instruct", "mistral-7b-instruct-v0.3"])
def test_mask_agrees_with_the_generation_template(family, shared_data):
    folder = shared_data / "tokenizers" / family
    tokenizer = load(folder)
    messages = [m.model_dump() for m in CONVERSATION.messages]
    if family.startswith("mistral"):
        messages = messages[1:]  # v0.3's training variant drops the system prompt; compare without it
    example = Example(messages=messages)
    reference = tokenizer.apply_chat_template(
        messages,
        chat_template=(folder / "chat_template.training.jinja").read_text(),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ours = tokenize_example(tokenizer, example, 4096)
    reference_mask = list(reference["assistant_masks"])
    our_mask = [int(label != -100) for label in ours.labels][: len(reference_mask)]
    assert ours.input_ids[: len(reference["input_ids"])] == list(reference["input_ids"])
    # Conventions differ only at the edges: TRL's variants may stop before the end-of-turn token (we train
    # it, so the model learns to stop) and may train the newline that ends the generation prompt (we
    # count it as prompt: it is what inference sends). Every answer token is trained by both.
    extra = [i for i, (a, b) in enumerate(zip(our_mask, reference_mask, strict=True)) if a and not b]
    missing = [i for i, (a, b) in enumerate(zip(our_mask, reference_mask, strict=True)) if b and not a]
    assert all(not tokenizer.decode([ours.input_ids[i]]).strip() for i in missing), missing
    assert len(extra) <= 6, tokenizer.decode([ours.input_ids[i] for i in extra])


def test_gemma_rejects_system_role_and_we_fold_it(shared_data, tiny_model_dir):
    from tailorlm.modeling import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = (shared_data / "tokenizers" / "gemma-2-it" / "chat_template.jinja").read_text()
    text = render(tokenizer, [m.model_dump() for m in CONVERSATION.messages])
    assert "You are the Acme Care Team.\n\nMy thermostat shows E07." in text


def test_mistral_v03_would_drop_the_system_prompt_and_we_keep_it(shared_data):
    tokenizer = load(shared_data / "tokenizers" / "mistral-7b-instruct-v0.3")
    text = render(tokenizer, [m.model_dump() for m in CONVERSATION.messages])
    assert "You are the Acme Care Team." in text
