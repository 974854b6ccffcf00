"""Read and check a GGUF file, and convert it once into a Hugging Face model directory.

A GGUF (llama.cpp's format, what Ollama and LM Studio run) holds quantised weights plus the
tokenizer and chat template in its metadata. transformers dequantises it on load; we then save a
plain safetensors directory so every stage loads it like any other local model. Problems are found
before the slow part and named: not a GGUF, a truncated file, an architecture or quantisation type
transformers can't load.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm.errors import UserError

GGUF_MAGIC = b"GGUF"
DTYPES = ("float32", "bfloat16", "float16")


class BaseModelError(UserError, ValueError):
    """A base model that can't be imported or found; the message names the file and the problem."""


@dataclass
class GGUFInfo:
    """What a GGUF file says about itself, read from its header and metadata."""

    path: Path
    architecture: str
    name: str | None
    license: str | None
    size_label: str | None
    file_types: list[str]
    tensors: int
    has_chat_template: bool


def read_gguf_info(path: Path) -> GGUFInfo:
    """Check that `path` is a complete GGUF that transformers can load, and return its metadata.

    Raises:
        BaseModelError: not a GGUF file, truncated, or an architecture/quantisation transformers lacks.
    """
    path = Path(path)
    if not path.is_file():
        raise BaseModelError(f"GGUF file not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise BaseModelError(
            f"{path} is not a GGUF file (it starts with {magic!r}, a GGUF starts with {GGUF_MAGIC!r}); "
            "base_model takes a GGUF file, a model directory or a registered base name"
        )
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as error:  # gguf raises ValueError, IndexError, struct errors… on a cut header
        raise BaseModelError(f"{path} is a damaged or truncated GGUF file: {error}") from None
    size = os.path.getsize(path)
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise BaseModelError(
            f"{path} is truncated: its tensors need {end:,} bytes but the file has {size:,} "
            "(an interrupted download or copy? copy it again)"
        )

    def field(key: str) -> Any:
        value = reader.fields.get(key)
        if value is None:
            return None
        try:
            return value.contents()
        except Exception:  # a field of a type this gguf version can't decode: treat as absent
            return None

    architecture = field("general.architecture")
    if not architecture:
        raise BaseModelError(f"{path}: the GGUF metadata names no architecture (general.architecture)")
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        supported = ", ".join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in {"general", "tokenizer"})
        raise BaseModelError(
            f"{path}: architecture {architecture!r} can't be loaded from GGUF by transformers; supported: "
            f"{supported}. Use the model's original safetensors directory instead"
        )
    file_types = sorted({t.tensor_type.name for t in reader.tensors})
    unsupported = [name for name in file_types if not _can_dequantize(name)]
    if unsupported:
        raise BaseModelError(
            f"{path}: quantisation type(s) {', '.join(unsupported)} can't be dequantised by the installed "
            f"gguf library {gguf.__version__ if hasattr(gguf, '__version__') else ''}".rstrip()
        )
    return GGUFInfo(
        path=path.resolve(),
        architecture=str(architecture),
        name=field("general.name"),
        license=field("general.license"),
        size_label=field("general.size_label"),
        file_types=file_types,
        tensors=len(reader.tensors),
        has_chat_template=bool(field("tokenizer.chat_template")),
    )


def _can_dequantize(type_name: str) -> bool:
    import gguf
    from gguf import quants

    qtype = gguf.GGMLQuantizationType[type_name]
    if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16):
        return True
    return qtype in getattr(quants, "_type_traits", {})


@contextmanager
def _no_tqdm() -> Iterator[None]:
    r"""transformers' per-tensor tqdm bars are noise in our output (and \r-garbage in a log)."""
    from transformers.utils import logging as hf_logging

    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF loader's bar is a plain tqdm on stderr
            yield
    finally:
        hf_logging.enable_progress_bar()
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


def convert_gguf(path: Path, out: Path, *, dtype: str = "float32") -> dict[str, Any]:
    """Dequantise `path` into a Hugging Face directory at `out` (safetensors, config, tokenizer with the
    GGUF's chat template, generation config). Returns facts about the model for the registry."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if dtype not in DTYPES:
        raise BaseModelError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    folder, name = path.parent, path.name
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with _no_tqdm():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=getattr(torch, dtype), local_files_only=True
            )
    except Exception as error:  # transformers raises many kinds for what it can't convert
        raise BaseModelError(f"{path}: transformers could not load this GGUF: {error}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    # Known trap: a model loaded from GGUF refuses save_pretrained while it carries the quantizer
    # marker; the weights are already dequantised, so dropping the marker is exact.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with _no_tqdm():
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "vocab_size": int(model.config.vocab_size),
        "chat_template": "gguf" if getattr(tokenizer, "chat_template", None) else "none (ChatML fallback at use)",
        "eos_token": tokenizer.eos_token,
    }
