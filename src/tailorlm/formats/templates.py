"""Chat templates and loss masks: one rendering function shared by training, evaluation, `data inspect`
and serving, so what the model is trained on is exactly what it is asked at inference.

The tokenizer's own chat template is used when it has one; base models without one get the
documented ChatML fallback (`<|im_start|>role ... <|im_end|>`). Loss is computed on assistant tokens
only: each assistant turn's span is the text that rendering `messages[:i+1]` adds to rendering
`messages[:i]` with a generation prompt, so the end-of-turn marker is trained too. The tokenizer's
EOS is appended (and trained) when the template does not already end the answer with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tailorlm.errors import UserError
from tailorlm.formats.examples import Example

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# End-of-turn markers of common families, used as stop strings when generating.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<｜end▁of▁sentence｜>")


class TemplateError(UserError, ValueError):
    """The chat template can't render these messages (the message says why)."""


def ensure_chat_template(tokenizer: Any) -> str:
    """Give a tokenizer without a chat template the ChatML fallback; returns which one is in use."""
    if getattr(tokenizer, "chat_template", None):
        return "tokenizer"
    tokenizer.chat_template = CHATML_TEMPLATE
    return "chatml-fallback"


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """For templates that reject a system role (Gemma): prepend it to the first user turn."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for message in rest:
        if message["role"] == "user":
            message["content"] = f"{system}\n\n{message['content']}"
            break
    return rest


def render(tokenizer: Any, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = False) -> str:
    """Render messages with the tokenizer's template. A system prompt the template refuses (Gemma) or
    silently drops (Mistral v0.3) is folded into the first user turn instead of being lost."""
    ensure_chat_template(tokenizer)
    messages = [dict(m) for m in messages]
    has_system = bool(messages) and messages[0]["role"] == "system" and bool(messages[0]["content"].strip())
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as error:  # jinja raises TemplateError via raise_exception()
        if has_system and "system" in str(error).lower():
            return render(tokenizer, _fold_system(messages), add_generation_prompt=add_generation_prompt)
        raise TemplateError(f"the chat template can't render these messages: {error}") from None
    if has_system and messages[0]["content"] not in text:
        # Some templates silently drop the system prompt (Mistral v0.3 unless the last turn is the user's):
        # keep it by folding it into the first user turn rather than training without it.
        return render(tokenizer, _fold_system(messages), add_generation_prompt=add_generation_prompt)
    return text


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The full rendering and the character spans of every assistant turn in it."""
    messages = [dict(m) for m in messages]
    full = render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], add_generation_prompt=True) if index else ""
        through = render(tokenizer, messages[: index + 1])
        if full.startswith(through) and through.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(through)
        else:  # templates that rewrite earlier turns (e.g. Qwen3 drops old <think> blocks)
            start = full.find(message["content"], cursor)
            if start < 0:
                raise TemplateError(f"assistant turn {index} is not found in the rendered conversation")
            end = start + len(message["content"])
            while start > cursor and full[start - 1] == " ":  # SentencePiece joins the space to the word
                start -= 1
            for marker in (getattr(tokenizer, "eos_token", None), *END_OF_TURN):
                if marker and full.startswith(marker, end):
                    end += len(marker)
                    break
        spans.append((start, end))
        cursor = end
    return full, spans


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]  # -100 where no loss is computed
    truncated: bool
    pieces: list[str] | None = None  # each token's exact text in the rendering (for `data inspect`)

    @property
    def trained_tokens(self) -> int:
        return sum(label != -100 for label in self.labels)


def tokenize_example(tokenizer: Any, example: Example, max_length: int) -> Tokenized:
    """Token ids and labels exactly as training sees them (assistant-only loss for chat examples)."""
    eos_id = tokenizer.eos_token_id
    if example.messages is None:  # continued pretraining: every token is trained
        text = example.text or ""
        encoded = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        labels = list(ids)
        spans: list[tuple[int, int]] = []
    else:
        text, spans = assistant_spans(tokenizer, [m.model_dump() for m in example.messages])
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        labels = [
            token_id if any(start <= begin < end for start, end in spans) else -100
            for token_id, (begin, _) in zip(ids, encoded["offset_mapping"], strict=True)
        ]
    pieces = _pieces(text, [begin for begin, _ in encoded["offset_mapping"]])
    trained = [i for i, label in enumerate(labels) if label != -100]
    needs_eos = not spans or bool(trained)
    if eos_id is not None and needs_eos and eos_id not in [ids[i] for i in trained[-3:]]:
        ids.append(eos_id)
        labels.append(eos_id)
        pieces.append(tokenizer.eos_token)
    truncated = len(ids) > max_length
    return Tokenized(ids[:max_length], labels[:max_length], truncated, pieces[:max_length])


def _pieces(text: str, starts: list[int]) -> list[str]:
    """Each token's slice of the text, gaps included, so the pieces join back to the text exactly
    (decoding tokens one by one loses SentencePiece's spaces)."""
    bounds = [*starts[1:], len(text)]
    pieces = [text[start:end] for start, end in zip(starts, bounds, strict=True)]
    if starts:
        pieces[0] = text[: bounds[0]]
    return pieces


def inspect_segments(tokenizer: Any, example: Example, max_length: int) -> list[tuple[str, bool]]:
    """The example as text segments exactly as tokenised, each marked trained (True) or masked (False)."""
    tokenized = tokenize_example(tokenizer, example, max_length)
    segments: list[tuple[str, bool]] = []
    for piece, label in zip(tokenized.pieces or [], tokenized.labels, strict=True):
        trained = label != -100
        if segments and segments[-1][1] == trained:
            segments[-1] = (segments[-1][0] + piece, trained)
        else:
            segments.append((piece, trained))
    return segments


def stop_strings(tokenizer: Any) -> list[str]:
    """Strings that end an answer for this tokenizer's template."""
    eos = getattr(tokenizer, "eos_token", None)
    template = getattr(tokenizer, "chat_template", "") or ""
    return [s for s in dict.fromkeys([eos, *END_OF_TURN]) if s and (s == eos or s in template)]
