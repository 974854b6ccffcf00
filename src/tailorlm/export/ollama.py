"""An Ollama model folder: `model.gguf` (see gguf.py) and a `Modelfile` ready for
`ollama create <name> -f Modelfile`.

Ollama doesn't run the model's Jinja chat template; it needs a Go template. The family is detected
from the template's markers (ChatML, Llama 3, Mistral, Gemma, Phi-3) and written in that family's
standard layout, with a `PARAMETER stop` for each end-of-turn string and `SYSTEM` from the model's
system prompt. An unknown template gets ChatML and a warning.

Check: a probe conversation rendered by the model's own template (as in training) must equal what the
Go template produces — a Python mirror of each Go template below makes the comparison.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tailorlm.export.gguf import Converter, GgufType, write_gguf
from tailorlm.export.runner import ExportContext, ExportError, target
from tailorlm.formats.templates import render, stop_strings

Messages = Sequence[dict[str, str]]


def _split(messages: Messages) -> tuple[str, list[dict[str, str]]]:
    """As Ollama does: system messages joined into `.System`; the templates skip them in `.Messages`."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [dict(m) for m in messages if m["role"] != "system"]


@dataclass(frozen=True)
class Family:
    name: str
    markers: tuple[str, ...]  # all present in a chat template of this family
    template: str  # Go template for Ollama
    stops: tuple[str, ...]
    mirror: Callable[[Messages], str]  # what `template` renders, with a generation prompt


def _chatml(messages: Messages) -> str:
    system, rest = _split(messages)
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in rest)
    return head + turns + "<|im_start|>assistant\n"


def _llama3(messages: Messages) -> str:
    system, rest = _split(messages)
    head = f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>" if system else ""
    turns = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>" for m in rest)
    return head + turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _mistral(messages: Messages) -> str:
    system, rest = _split(messages)
    out = []
    for index, m in enumerate(rest):
        if m["role"] == "user":
            last = index == len(rest) - 1
            content = f"{system}\n\n{m['content']}" if last and system else m["content"]
            out.append(f"[INST] {content}[/INST]")
        elif m["role"] == "assistant":
            out.append(f" {m['content']}</s>")
    return "".join(out)


def _gemma(messages: Messages) -> str:
    system, rest = _split(messages)
    out = []
    for m in rest:
        if m["role"] == "user":
            content = f"{system}\n\n{m['content']}" if system else m["content"]
            system = ""
            out.append(f"<start_of_turn>user\n{content}<end_of_turn>\n")
        elif m["role"] == "assistant":
            out.append(f"<start_of_turn>model\n{m['content']}<end_of_turn>\n")
    return "".join(out) + "<start_of_turn>model\n"


def _phi3(messages: Messages) -> str:
    system, rest = _split(messages)
    head = f"<|system|>\n{system}<|end|>\n" if system else ""
    return head + "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in rest) + "<|assistant|>\n"


CHATML = Family(
    "chatml",
    ("<|im_start|>",),
    """\
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range .Messages }}
{{- if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- end }}<|im_start|>assistant
""",
    ("<|im_end|>", "<|im_start|>"),
    _chatml,
)

FAMILIES = (
    CHATML,
    Family(
        "llama3",
        ("<|start_header_id|>",),
        """\
{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range .Messages }}
{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- end }}<|start_header_id|>assistant<|end_header_id|>

""",
        ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
        _llama3,
    ),
    Family(
        "mistral",
        ("[INST]",),
        """\
{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- end }}""",
        ("[INST]", "[/INST]"),
        _mistral,
    ),
    Family(
        "gemma",
        ("<start_of_turn>",),
        """\
{{- $system := .System }}
{{- range .Messages }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if $system }}{{ $system }}

{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}<start_of_turn>model
""",
        ("<end_of_turn>", "<start_of_turn>"),
        _gemma,
    ),
    Family(
        "phi3",
        ("<|user|>", "<|end|>"),
        """\
{{- if .System }}<|system|>
{{ .System }}<|end|>
{{ end }}
{{- range .Messages }}
{{- if ne .Role "system" }}<|{{ .Role }}|>
{{ .Content }}<|end|>
{{ end }}
{{- end }}<|assistant|>
""",
        ("<|end|>", "<|user|>", "<|assistant|>"),
        _phi3,
    ),
)

PROBE = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Where is my order?"},
    {"role": "assistant", "content": "It shipped yesterday."},
    {"role": "user", "content": "Thanks! When will it arrive?"},
)


def detect_family(chat_template: str | None) -> Family | None:
    """The known family whose markers all appear in the chat template, or None."""
    for family in FAMILIES:
        if chat_template and all(marker in chat_template for marker in family.markers):
            return family
    return None


def template_difference(tokenizer: Any, family: Family) -> str | None:
    """None when `family`'s Go template renders the probe conversation as the model's own template does,
    else where and how they differ. A leading BOS is not compared: llama.cpp adds it from the GGUF."""
    expected = render(tokenizer, list(PROBE), add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and expected.startswith(bos):
        expected = expected[len(bos) :]
    produced = family.mirror(PROBE)
    if produced == expected:
        return None
    at = next((i for i, (a, b) in enumerate(zip(expected, produced, strict=False)) if a != b), None)
    at = min(len(expected), len(produced)) if at is None else at
    return f"from character {at}: {expected[at : at + 60]!r} vs {produced[at : at + 60]!r}"


@target("ollama", description="model.gguf + a Modelfile for `ollama create`")
def export_ollama(
    context: ExportContext,
    *,
    quantization: GgufType = "q8_0",
    llama_cpp: Path | str | None = None,
    converter: Converter = "auto",
    pre_tokenizer: str | None = None,
) -> None:
    """`model.gguf` and a `Modelfile` (TEMPLATE, stop parameters, SYSTEM) for `ollama create`.

    Args:
        quantization: The GGUF type of model.gguf: f16, q8_0 or q4_K_M (needs llama-quantize).
        llama_cpp: A llama.cpp checkout (default `$TAILORLM_LLAMA_CPP`, ~/llama.cpp, /opt/llama.cpp).
        converter: auto (llama.cpp's when a checkout is found, else built-in), llama.cpp, or builtin.
        pre_tokenizer: llama.cpp's name for the tokenizer's pre-tokenizer, when it can't be recognised.
    """
    from tailorlm.modeling import load_tokenizer

    tokenizer = load_tokenizer(context.model.artifact_dir)
    modelfile = build_modelfile(context, tokenizer)  # before the slow part: template problems show first
    write_gguf(
        context,
        context.output,
        types=[quantization],
        llama_cpp=llama_cpp,
        converter=converter,
        pre_tokenizer=pre_tokenizer,
        names={quantization: "model.gguf"},
    )
    (context.output / "Modelfile").write_text(modelfile, encoding="utf-8")
    name = context.model.name.lower()
    context.report.details["ollama"] = {
        "create": f"ollama create {name} -f {context.final / 'Modelfile'}",
        "run": f"ollama run {name}",
    }


def build_modelfile(context: ExportContext, tokenizer: Any) -> str:
    """The Modelfile text, recording the template check and any warning in the report."""
    report = context.report
    family = detect_family(tokenizer.chat_template)
    if family is None:
        family = CHATML
        report.warn(
            "the chat template is not one of the known families ("
            + ", ".join(f.name for f in FAMILIES)
            + "): the Modelfile uses ChatML, which this model was not trained on; edit its TEMPLATE "
            "to match the training template before relying on it"
        )
        report.check("Ollama template", "failed", "unknown chat template family; ChatML written instead")
    else:
        difference = template_difference(tokenizer, family)
        if difference is None:
            report.check(
                "Ollama template",
                "passed",
                f"{family.name}: the Go template renders a probe conversation exactly as the training template does",
            )
        else:
            report.check(
                "Ollama template",
                "failed",
                f"{family.name}: the Go template (the family's standard layout) renders a probe conversation "
                f"differently from the training template: {difference}",
                family=family.name,
            )
    report.details["ollama_template"] = family.name
    stops = list(dict.fromkeys([*stop_strings(tokenizer), *family.stops]))
    system = context.model.system_prompt or _run_system_prompt(context)
    lines = ["FROM ./model.gguf", "", f"TEMPLATE {_quote(family.template)}", ""]
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    if system:
        lines += ["", f"SYSTEM {_quote(system)}"]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    if '"""' in text:
        raise ExportError('the Modelfile can\'t hold text containing """ (in the template or system prompt)')
    return f'"""{text}"""'


def _run_system_prompt(context: ExportContext) -> str | None:
    """A run's system prompt, from the config it was trained with (registered models carry their own)."""
    config = context.workspace.run_dir(context.model.run_id) / "config.yaml"
    if not config.is_file():
        return None
    return (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("system_prompt")
