"""GGUF files for llama.cpp, Ollama, LM Studio and the like: f16 and q8_0, plus q4_K_M when llama.cpp's
quantizer is available (the `llama-quantize` binary, or llama-cpp-python's binding of it).

The model is merged first (see merge.py), then converted with llama.cpp's own `convert_hf_to_gguf.py`
when a checkout is configured (`llama_cpp=` or `$TAILORLM_LLAMA_CPP`) or found in ~/llama.cpp or
/opt/llama.cpp, else with the built-in Llama-family converter (gguf_convert.py). Known traps handled:
the checkout's `conversion/` and `gguf-py/` go on the converter's path; a BPE pre-tokenizer llama.cpp's
hash table doesn't know is named from its tokenizer.json pattern instead of failing.

Checks (in export_report.json): every file is read back with `gguf.GGUFReader`; with llama-cpp-python
installed, the rendered prompts must tokenise identically to the HF tokenizer, greedy answers at f16
must equal the merged model's, and the token agreement of quantised files is reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from tailorlm.export import gguf_convert as builtin
from tailorlm.export.merge import write_merged
from tailorlm.export.parity import (
    compare,
    gguf_greedy,
    hf_greedy,
    llama_cpp_available,
    parity_messages,
    render_prompts,
    stop_ids,
)
from tailorlm.export.runner import ExportContext, ExportError, target

LLAMA_CPP_ENV = "TAILORLM_LLAMA_CPP"
KNOWN_CHECKOUTS = ("~/llama.cpp", "/opt/llama.cpp")
GgufType = Literal["f16", "q8_0", "q4_K_M"]
Converter = Literal["auto", "llama.cpp", "builtin"]
TYPES: tuple[str, ...] = get_args(GgufType)
CONVERTERS: tuple[str, ...] = get_args(Converter)
MIN_QUANTISED_AGREEMENT = 0.5  # below this a quantised file is broken, not just rounded


@target("gguf", description="GGUF files (f16, q8_0, and q4_K_M with llama-quantize) for llama.cpp-based tools")
def export_gguf(
    context: ExportContext,
    *,
    types: Sequence[GgufType] | None = None,
    llama_cpp: Path | str | None = None,
    converter: Converter = "auto",
    pre_tokenizer: str | None = None,
) -> None:
    """GGUF files named `<model>-<type>.gguf`.

    Args:
        types: Any of f16, q8_0, q4_K_M; default f16 and q8_0, plus q4_K_M when llama-quantize is found.
        llama_cpp: A llama.cpp checkout (default `$TAILORLM_LLAMA_CPP`, ~/llama.cpp, /opt/llama.cpp).
        converter: auto (llama.cpp's when a checkout is found, else built-in), llama.cpp, or builtin.
        pre_tokenizer: llama.cpp's name for the tokenizer's pre-tokenizer, when it can't be recognised.
    """
    write_gguf(
        context, context.output, types=types, llama_cpp=llama_cpp, converter=converter, pre_tokenizer=pre_tokenizer
    )


def write_gguf(
    context: ExportContext,
    folder: Path,
    *,
    types: Sequence[str] | None = None,
    llama_cpp: Path | str | None = None,
    converter: str = "auto",
    pre_tokenizer: str | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Merge, convert and check; returns the written file of each type. `names` overrides file names."""
    report = context.report
    checkout = find_llama_cpp(llama_cpp)
    quantizer = find_quantizer(checkout)
    chosen = _choose_types(types, quantizer)
    if converter not in CONVERTERS:
        raise ExportError(f"converter must be one of {', '.join(CONVERTERS)} (got {converter!r})")
    if converter == "llama.cpp" and checkout is None:
        raise ExportError(f"converter='llama.cpp' needs a llama.cpp checkout: set {LLAMA_CPP_ENV} or llama_cpp=")
    use_llama_cpp = checkout is not None and converter != "builtin"
    model = context.model
    config_dir = model.base_model if model.is_adapter else model.artifact_dir
    # Fail before the (slow) merge when the built-in converter can't do this model; with llama.cpp the
    # pre-tokenizer name is only a fallback for one its hash table doesn't know.
    pre: str | None
    if use_llama_cpp:
        try:
            pre = builtin.pre_tokenizer_name(model.artifact_dir, pre_tokenizer)
        except ExportError:
            pre = pre_tokenizer
    else:
        pre = builtin.check_supported(config_dir, pre_tokenizer, tokenizer_dir=model.artifact_dir)
    report.details["gguf"] = {
        "converter": f"llama.cpp ({checkout})" if use_llama_cpp else "built-in",
        "quantizer": _describe(quantizer),
        "types": list(chosen),
        "tokenizer_pre": pre,
    }
    if "q4_K_M" not in chosen and quantizer is None:
        report.skip(
            "q4_K_M",
            f"q4_K_M not written: no llama.cpp quantizer (build llama-quantize and set {LLAMA_CPP_ENV} "
            "or put it on PATH, or pip install llama-cpp-python)",
        )

    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / ".merged"
    written: dict[str, Path] = {}
    try:
        write_merged(context, scratch, reload_check=False)
        with context.progress.task("write GGUF", total=len(chosen), unit="files") as task:
            for kind in chosen:
                name = (names or {}).get(kind, f"{context.label}-{kind}.gguf")
                path = folder / name
                if kind == "q4_K_M":
                    source = written.get("f16") or _convert(
                        scratch, scratch / "f16.gguf", "f16", context.label, checkout if use_llama_cpp else None, pre
                    )
                    _quantize(quantizer, source, path, "Q4_K_M")
                else:
                    _convert(scratch, path, kind, context.label, checkout if use_llama_cpp else None, pre)
                written[kind] = path
                task.advance(1, file=name)
        context.progress.say(f"    checking {', '.join(written)}: read back, parity with the merged model")
        for kind, path in written.items():
            _check_read_back(context, kind, path, scratch)
        _check_parity(context, written, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return written


def _choose_types(types: Sequence[str] | None, quantizer: list[str] | None) -> list[str]:
    if types is None:
        return ["f16", "q8_0", *(["q4_K_M"] if quantizer else [])]
    chosen = [types] if isinstance(types, str) else list(types)
    wrong = [t for t in chosen if t not in TYPES]
    if wrong or not chosen:
        raise ExportError(f"GGUF types must be among {', '.join(TYPES)} (got {', '.join(wrong) or 'none'})")
    if "q4_K_M" in chosen and quantizer is None:
        raise ExportError(
            f"q4_K_M needs llama.cpp's quantizer: build llama.cpp (cmake --build build --target llama-quantize) "
            f"and set {LLAMA_CPP_ENV} to the checkout or put llama-quantize on PATH, or pip install llama-cpp-python"
        )
    return list(dict.fromkeys(chosen))


# --- llama.cpp --------------------------------------------------------------------------------------


def find_llama_cpp(explicit: Path | str | None = None) -> Path | None:
    """The llama.cpp checkout to use: `explicit`, else $TAILORLM_LLAMA_CPP, else a well-known place."""
    for origin, value in (("llama_cpp", explicit), (LLAMA_CPP_ENV, os.environ.get(LLAMA_CPP_ENV))):
        if value:
            path = Path(value).expanduser()
            if not (path / "convert_hf_to_gguf.py").is_file():
                raise ExportError(f"{origin}={path} is not a llama.cpp checkout (no convert_hf_to_gguf.py in it)")
            return path.resolve()
    for place in KNOWN_CHECKOUTS:
        path = Path(place).expanduser()
        if (path / "convert_hf_to_gguf.py").is_file():
            return path.resolve()
    return None


# llama.cpp's quantizer through llama-cpp-python's binding of `llama_model_quantize`, in a subprocess so
# that a failed assertion in C can't take the export down with it.
_QUANTIZE_WITH_BINDINGS = """
import ctypes, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + sys.argv[3].upper())
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""


def find_quantizer(checkout: Path | None) -> list[str] | None:
    """The command that runs llama.cpp's quantizer (`<cmd> IN OUT TYPE`): the `llama-quantize` binary
    in the checkout's build folder or on PATH, else llama-cpp-python's binding of the same function."""
    candidates = (
        [checkout / relative for relative in ("build/bin/llama-quantize", "llama-quantize")] if checkout else []
    )
    found = next((str(path) for path in candidates if path.is_file()), None) or shutil.which("llama-quantize")
    if found:
        return [found]
    if llama_cpp_available() is None:
        return [sys.executable, "-c", _QUANTIZE_WITH_BINDINGS]
    return None


# Runs llama.cpp's converter with two fixes: its folders on the path, and a pre-tokenizer name for a BPE
# tokenizer its hash table doesn't know (it would otherwise stop with NotImplementedError).
_RUN_LLAMA_CPP = """
import sys
checkout, pre = sys.argv[1], sys.argv[2]
sys.path[:0] = [checkout, checkout + "/gguf-py"]
import convert_hf_to_gguf as script
try:
    from conversion.base import TextModel as Model
except ImportError:
    Model = getattr(script, "TextModel", None) or script.Model
original = Model.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return original(self, tokenizer)
    except NotImplementedError:
        if pre:
            return pre
        raise
Model.get_vocab_base_pre = get_vocab_base_pre
sys.argv = ["convert_hf_to_gguf.py", *sys.argv[3:]]
script.main()
"""


def _convert(model_dir: Path, out: Path, kind: str, name: str, checkout: Path | None, pre: str | None) -> Path:
    if checkout is None:
        builtin.convert(model_dir, out, kind, name=name, pre_tokenizer=pre)
        return out
    command = [
        sys.executable,
        "-c",
        _RUN_LLAMA_CPP,
        str(checkout),
        pre or "",
        str(model_dir),
        "--outfile",
        str(out),
        "--outtype",
        kind,
        "--model-name",
        name,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "NO_LOCAL_GGUF": ""})
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        missing = next((line.split("'")[1] for line in tail.splitlines() if "No module named" in line), None)
        hint = f" (install it: pip install {missing})" if missing else ""
        raise ExportError(f"llama.cpp's converter failed on {model_dir.name}{hint}:\n{tail}")
    return out


def _quantize(quantizer: list[str] | None, source: Path, out: Path, kind: str) -> None:
    assert quantizer is not None  # _choose_types refused q4_K_M without it
    done = subprocess.run([*quantizer, str(source), str(out), kind], capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ExportError(f"llama-quantize failed making {kind}:\n{tail}")


def _describe(quantizer: list[str] | None) -> str | None:
    if quantizer is None:
        return None
    return quantizer[0] if len(quantizer) == 1 else "llama-cpp-python (llama_model_quantize)"


# --- checks -----------------------------------------------------------------------------------------


def read_summary(path: Path) -> dict[str, Any]:
    """What a GGUF file holds: architecture, metadata keys, tensor names → (shape, type)."""
    import gguf

    reader = gguf.GGUFReader(path)
    field = reader.get_field("general.architecture")
    tokens = reader.get_field("tokenizer.ggml.tokens")
    return {
        "architecture": field.contents() if field else None,
        "keys": sorted(reader.fields),
        "tensors": {t.name: (tuple(int(n) for n in t.shape), t.tensor_type.name) for t in reader.tensors},
        "tokens": len(tokens.data) if tokens else 0,
    }


def _check_read_back(context: ExportContext, kind: str, path: Path, model_dir: Path) -> None:
    config = builtin.read_config(model_dir)
    try:
        summary = read_summary(path)
    except Exception as error:  # a truncated or malformed file raises from numpy or the reader
        context.report.check(f"GGUF read back ({kind})", "failed", f"{path.name} can't be read: {error}")
        return
    problems = []
    if summary["tokens"] != config["vocab_size"]:
        problems.append(f"{summary['tokens']} tokens, the model has {config['vocab_size']}")
    blocks = {name.split(".")[1] for name in summary["tensors"] if name.startswith("blk.")}
    if len(blocks) != config["num_hidden_layers"]:
        problems.append(f"{len(blocks)} blocks, the model has {config['num_hidden_layers']}")
    if "token_embd.weight" not in summary["tensors"]:
        problems.append("no token_embd.weight")
    context.report.check(
        f"GGUF read back ({kind})",
        "failed" if problems else "passed",
        "; ".join(problems)
        or f"{path.name}: {summary['architecture']}, {len(summary['tensors'])} tensors, {summary['tokens']} tokens",
        tensors=len(summary["tensors"]),
        architecture=summary["architecture"],
    )


def _check_parity(context: ExportContext, written: dict[str, Path], model_dir: Path) -> None:
    """The GGUF files through llama.cpp (llama-cpp-python) against the merged model in transformers."""
    report = context.report
    if not context.check:
        report.skip("GGUF parity", "checks turned off (check=False)")
        return
    reason = llama_cpp_available()
    if reason:
        report.skip("GGUF parity", f"GGUF parity skipped: {reason}")
        return
    import torch
    from transformers import AutoModelForCausalLM

    from tailorlm.modeling import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = context.model
    prompts = render_prompts(
        tokenizer, parity_messages(context.workspace, model.run_id, model.system_prompt, context.prompts)
    )
    stop = stop_ids(tokenizer)
    merged = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
    reference = hf_greedy(merged, prompts, context.max_new_tokens, stop)
    del merged
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    tokenisation_checked = False
    for kind, path in written.items():
        result = gguf_greedy(path, prompts, context.max_new_tokens, stop)
        if not tokenisation_checked:
            same = sum(a == p.ids for a, p in zip(result["tokenised"], prompts, strict=True))
            report.check(
                "GGUF tokenisation",
                "passed" if same == len(prompts) else "failed",
                f"llama.cpp tokenises {same}/{len(prompts)} rendered prompts exactly as the HF tokenizer",
            )
            tokenisation_checked = True
        outcome = compare(reference, result["continuations"], prompts, decode)
        summary = (
            f"{outcome['identical']}/{outcome['prompts']} prompts identical, token agreement "
            f"{outcome['token_agreement']} vs the merged model in transformers (fp32)"
        )
        if kind == "f16":
            ok = outcome["identical"] == outcome["prompts"]
            report.check("GGUF parity (f16)", "passed" if ok else "failed", f"greedy: {summary}", **outcome)
        else:
            ok = outcome["token_agreement"] >= MIN_QUANTISED_AGREEMENT
            report.check(
                f"GGUF agreement ({kind})",
                "passed" if ok else "failed",
                f"greedy: {summary}; quantisation may change near-tied tokens, so only an agreement "
                f"below {MIN_QUANTISED_AGREEMENT} fails",
                **outcome,
            )
