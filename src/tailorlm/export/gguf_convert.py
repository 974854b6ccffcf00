"""The built-in HF → GGUF converter for Llama-family models, used when no llama.cpp checkout is at hand.

It does what llama.cpp's `convert_hf_to_gguf.py` does for `LlamaForCausalLM` / `MistralForCausalLM`
with a byte-level BPE ("gpt2"-style) tokenizer, using the `gguf` library's own tables:

* tensor names through `gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_layers)`;
* Q and K projections permuted from HF's rotate-half RoPE layout to llama.cpp's interleaved one
  (`permute` below — skipping it gives a file that loads and talks nonsense);
* 1-D tensors and norms kept in F32, the rest F16 or Q8_0 (`gguf.quants.quantize`);
* tokenizer metadata: tokens, token types, merges, the pre-tokenizer name llama.cpp needs to split
  text the same way, special ids, add-BOS/EOS as the HF tokenizer does them, and the chat template.

A tokenizer whose pre-tokenizer isn't one of `PRE_TOKENIZERS` needs a name given explicitly
(`pre_tokenizer=`), because llama.cpp only splits text the ways it knows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tailorlm.export.runner import ExportError

ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
OUTTYPES = ("f32", "f16", "q8_0")

# Pre-tokenizer split patterns as they appear in tokenizer.json → llama.cpp's `tokenizer.ggml.pre` name
# (llama.cpp's src/llama-vocab.cpp keeps each original pattern next to its C++ version).
PRE_TOKENIZERS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+": "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+": "qwen35",
}
KNOWN_PRE_NAMES = ("gpt-2", "smollm", *PRE_TOKENIZERS.values())


def read_config(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))


def architecture(config: dict[str, Any]) -> str:
    return (config.get("architectures") or [config.get("model_type", "unknown")])[0]


def check_supported(model_dir: Path, pre_tokenizer: str | None = None, *, tokenizer_dir: Path | None = None) -> str:
    """Raise ExportError unless the built-in converter can convert this model (config.json in `model_dir`,
    tokenizer.json in `tokenizer_dir`, default the same folder); returns the pre-tokenizer's name."""
    config = read_config(model_dir)
    arch = architecture(config)
    if arch not in ARCHITECTURES:
        raise ExportError(
            f"architecture {arch} is not supported by the built-in GGUF converter (it converts "
            f"{', '.join(ARCHITECTURES)}); point TAILORLM_LLAMA_CPP (or llama_cpp=) at a llama.cpp checkout "
            "to use its converter, which handles many more"
        )
    rope_type = rope_settings(config)[1]
    if rope_type not in ("default", "linear", "llama3"):
        raise ExportError(
            f"RoPE scaling {rope_type!r} is not handled by the built-in GGUF converter; use "
            "llama.cpp's converter (TAILORLM_LLAMA_CPP)"
        )
    return pre_tokenizer_name(tokenizer_dir or model_dir, pre_tokenizer)


def pre_tokenizer_name(model_dir: Path, override: str | None = None) -> str:
    """llama.cpp's name for how this tokenizer splits text before BPE (see PRE_TOKENIZERS)."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ExportError(
            f"{model_dir} has no tokenizer.json: the built-in GGUF converter handles byte-level "
            "BPE tokenizers only (SentencePiece models need llama.cpp's converter)"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    bpe = data.get("model", {})
    if bpe.get("type") != "BPE" or bpe.get("byte_fallback") or (data.get("decoder") or {}).get("type") != "ByteLevel":
        raise ExportError(
            f"{path}: not a byte-level BPE tokenizer; the built-in GGUF converter handles those "
            "only (use llama.cpp's converter via TAILORLM_LLAMA_CPP)"
        )
    if override:
        return override
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True) and not steps[0].get("add_prefix_space"):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        name = PRE_TOKENIZERS.get((steps[0].get("pattern") or {}).get("Regex", ""))
        if name:
            return name
    raise ExportError(
        f"{path}: its pre-tokenizer ({' + '.join(str(k) for k in kinds) or 'none'}) is not one llama.cpp is known "
        f"to reproduce; pass pre_tokenizer= with llama.cpp's name for it (one of {', '.join(KNOWN_PRE_NAMES)}, "
        "or another from llama.cpp's llama-vocab.cpp) if you know it splits text the same way"
    )


def rope_settings(config: dict[str, Any]) -> tuple[float, str, dict[str, Any]]:
    """(theta, rope type, parameters) from transformers 5 `rope_parameters` or older `rope_scaling`."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", config.get("rope_theta", 10000.0)))
    rope_type = str(params.get("rope_type") or params.get("type") or "default")
    return theta, rope_type, params


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """HF's rotate-half Q/K row order → llama.cpp's interleaved pairs (as llama.cpp's LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def convert(model_dir: Path, out: Path, outtype: str, *, name: str, pre_tokenizer: str | None = None) -> dict:
    """Write `model_dir` (a merged HF Llama-family folder) as one GGUF file; returns what was written."""
    import gguf

    if outtype not in OUTTYPES:
        raise ExportError(f"GGUF type {outtype!r} is not written by the built-in converter ({', '.join(OUTTYPES)})")
    pre = check_supported(model_dir, pre_tokenizer)
    config = read_config(model_dir)
    n_layers, n_head = config["num_hidden_layers"], config["num_attention_heads"]
    n_head_kv = config.get("num_key_value_heads") or n_head
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    theta, rope_type, rope = rope_settings(config)
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[outtype]

    writer = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA], use_temp_file=True)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_block_count(n_layers)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base(theta)
    writer.add_rope_dimension_count(head_dim)
    if "head_dim" in config:  # as llama.cpp: explicit whenever the config names it
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    vocab = _add_vocab(writer, model_dir, config["vocab_size"], pre)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    counts: dict[str, int] = {}
    if rope_type == "llama3":
        _add_tensor(writer, "rope_freqs.weight", _llama3_rope_factors(head_dim, theta, rope), outtype, counts)
    for hf_name, data in _tensors(model_dir):
        if hf_name.endswith(".rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(
                f"tensor {hf_name} has no GGUF name for a Llama model; is this really a {architecture(config)}?"
            )
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute(data, n_head, n_head)
        elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute(data, n_head, n_head_kv)
        _add_tensor(writer, gguf_name, data, outtype, counts)

    writer.add_size_label(gguf.size_label(*writer.get_total_parameter_count()))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"converter": "built-in", "outtype": outtype, "tokenizer_pre": pre, "tensor_types": counts, **vocab}


def _tensors(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor of a safetensors folder (sharded or not) as float32 numpy, one at a time."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir} has no *.safetensors weights")
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                yield key, handle.get_tensor(key).float().numpy()


def _add_tensor(writer: Any, name: str, data: np.ndarray, outtype: str, counts: dict[str, int]) -> None:
    import gguf

    array: np.ndarray
    # As llama.cpp: 1-D tensors and norms stay F32 (its kernels expect that), the rest take the file type.
    if data.ndim <= 1 or name.endswith("_norm.weight") or outtype == "f32":
        qtype, array = gguf.GGMLQuantizationType.F32, data.astype(np.float32)
    elif outtype == "q8_0":
        try:
            qtype, array = gguf.GGMLQuantizationType.Q8_0, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        except gguf.QuantError:  # rows not a multiple of the 32-value block
            qtype, array = gguf.GGMLQuantizationType.F16, data.astype(np.float16)
    else:
        qtype, array = gguf.GGMLQuantizationType.F16, data.astype(np.float16)
    raw = qtype if array.dtype == np.uint8 else None
    writer.add_tensor(name, array, raw_dtype=raw)
    counts[qtype.name] = counts.get(qtype.name, 0) + 1


def _add_vocab(writer: Any, model_dir: Path, vocab_size: int, pre: str) -> dict[str, Any]:
    """Tokens, types, merges, special ids and the chat template (as llama.cpp's `_set_vocab_gpt2`)."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if max(tokenizer.vocab.values()) >= vocab_size:
        raise ExportError(f"the tokenizer has ids beyond the model's vocab_size {vocab_size}")
    reverse = {index: token for token, index in tokenizer.vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for index in range(vocab_size):
        token = reverse.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        if token in added:
            if not decoder[index].normalized:  # llama.cpp expects added tokens pre-normalised
                token = str(tokenizer.decode(tokenizer.encode(token, add_special_tokens=False)))
            special = decoder[index].special or (token.startswith("<|") and token.endswith("|>"))
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)

    special_vocab = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    # llama.cpp adds BOS/EOS to a prompt only if told to; say exactly what the HF tokenizer does.
    probe = tokenizer("a")["input_ids"]
    add_bos = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]
    add_eos = tokenizer.eos_token_id is not None and probe[-1:] == [tokenizer.eos_token_id]
    special_vocab.add_special_token.update(bos=add_bos, eos=add_eos)
    if getattr(tokenizer, "chat_template", None) and not special_vocab.chat_template:
        special_vocab.chat_template = tokenizer.chat_template
    special_vocab.add_to_gguf(writer, quiet=True)
    return {"tokens": len(tokens), "merges": len(special_vocab.merges), "add_bos": add_bos, "add_eos": add_eos}


def _llama3_rope_factors(dim: int, base: float, rope: dict[str, Any]) -> np.ndarray:
    """Llama 3.1's frequency-dependent RoPE scaling as the `rope_freqs` tensor (as llama.cpp writes it)."""
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_context / low, old_context / high
    factors = []
    for freq in 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim)):
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)
