"""Dataset import formats (with bad lines named by file:line) and chat-template rendering with loss masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorlm.formats.examples import Example
from tailorlm.formats.importers import DatasetError, read_examples
from tailorlm.formats.templates import inspect_segments, render, tokenize_example
from tailorlm.modeling import load_tokenizer

RECORDS = {
    "messages": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."},
        ]
    },
    "alpaca": {"instruction": "Classify the ticket.", "input": "My parcel is late.", "output": "shipping"},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
    "prompt_completion": {"prompt": "2+2=", "completion": "4"},
    "text": {"text": "Acme thermostats save energy."},
}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("name", RECORDS)
def test_each_import_format(name, tmp_path):
    result = read_examples(write_jsonl(tmp_path / "d.jsonl", [RECORDS[name]]))
    assert result.formats == {name: 1}
    example = result.examples[0]
    if name == "text":
        assert example.text == "Acme thermostats save energy." and not example.is_chat
    else:
        assert example.messages[-1].role == "assistant" and example.target
    if name == "alpaca":
        assert example.prompt[-1]["content"] == "Classify the ticket.\n\nMy parcel is late."


def test_conversational_prompt_completion(tmp_path):
    row = {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}]}
    example = read_examples(write_jsonl(tmp_path / "d.jsonl", [row])).examples[0]
    assert [m.role for m in example.messages] == ["user", "assistant"]


def test_bad_lines_are_named_and_nothing_is_returned(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            RECORDS["messages"],
            "{not json",
            {"foo": 1},
            {"messages": [{"role": "user", "content": "no answer"}]},
            {"conversations": [{"from": "alien", "value": "x"}, {"from": "gpt", "value": "y"}]},
            RECORDS["alpaca"],
        ],
    )
    with pytest.raises(DatasetError) as error:
        read_examples(path)
    message = str(error.value)
    assert "4 invalid line(s)" in message
    for line in (2, 3, 4, 5):
        assert f"{path}:{line}:" in message
    assert "invalid JSON" in message and "unrecognised record" in message and "assistant" in message
    assert "unknown speaker 'alien'" in message


def test_skip_invalid_keeps_the_good_lines_and_counts(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [RECORDS["messages"], "{oops", RECORDS["text"]])
    result = read_examples(path, skip_invalid=True)
    assert len(result.examples) == 2 and result.skipped == 1


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="no examples"):
        read_examples(tmp_path / "empty.jsonl")


def test_mask_trains_only_assistant_tokens_with_end_of_turn(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    example = Example(
        messages=[
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Where is my order?"},
            {"role": "assistant", "content": "It has shipped."},
            {"role": "user", "content": "When?"},
            {"role": "assistant", "content": "Tomorrow."},
        ]
    )
    segments = inspect_segments(tokenizer, example, 512)
    trained = [text for text, is_trained in segments if is_trained]
    masked = "".join(text for text, is_trained in segments if not is_trained)
    assert trained == ["It has shipped.<|im_end|>\n", "Tomorrow.<|im_end|>\n"]
    assert "Where is my order?" in masked and "Be kind." in masked and "<|im_start|>assistant\n" in masked
    tokenized = tokenize_example(tokenizer, example, 512)
    assert tokenized.input_ids[-2] == tokenizer.eos_token_id and tokenized.labels[-2] == tokenizer.eos_token_id


def test_eos_is_appended_when_the_template_has_none(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    tokenized = tokenize_example(tokenizer, Example.chat(user="Hi", assistant="Hello"), 512)
    assert tokenized.input_ids[-1] == tokenizer.eos_token_id and tokenized.labels[-1] == tokenizer.eos_token_id


def test_chatml_fallback_for_a_tokenizer_without_template(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "chat_template.jinja").unlink()
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = load_tokenizer(copy)
    text = render(tokenizer, [{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_truncation_is_reported(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenized = tokenize_example(tokenizer, Example.chat(user="word " * 200, assistant="ok"), 32)
    assert tokenized.truncated and len(tokenized.input_ids) == 32 and tokenized.trained_tokens == 0
