"""GGUF exports through llama.cpp itself: parity via llama-cpp-python, and the built-in converter against
llama.cpp's `convert_hf_to_gguf.py`. Each test is skipped, with the reason, when its tool is absent:
`pip install llama-cpp-python`; `TAILORLM_LLAMA_CPP=/path/to/llama.cpp` (see docs/export.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helpers.data import train_registered
from tailorlm.export import export
from tailorlm.export.parity import llama_cpp_available
from tailorlm.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, _one_thread):
    root = tmp_path_factory.mktemp("export-llama-cpp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root / "home"))
        ws = Workspace(root / "ws")
        train_registered(ws, tiny_model_dir, "acme")
    yield ws
    ws.close()


def test_gguf_parity_through_llama_cpp(trained: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = llama_cpp_available()
    if reason:
        pytest.skip(reason)
    monkeypatch.delenv("TAILORLM_LLAMA_CPP", raising=False)
    result = export(trained, "acme", "gguf", converter="builtin")
    checks = {c["name"]: c for c in result.report["checks"]}
    assert checks["GGUF tokenisation"]["status"] == "passed", checks["GGUF tokenisation"]["detail"]
    f16 = checks["GGUF parity (f16)"]
    assert f16["status"] == "passed", f16["mismatches"]
    assert f16["identical"] == f16["prompts"] > 0
    q8 = checks["GGUF agreement (q8_0)"]
    assert q8["status"] == "passed" and q8["token_agreement"] >= 0.5


def llama_cpp_checkout() -> Path:
    from tailorlm.export.gguf import find_llama_cpp

    value = os.environ.get("TAILORLM_LLAMA_CPP")
    if not value:
        pytest.skip("TAILORLM_LLAMA_CPP is not set: no llama.cpp checkout to compare the built-in converter with")
    return find_llama_cpp(value)


def test_builtin_converter_matches_llama_cpp(trained: Workspace, tmp_path: Path) -> None:
    import gguf

    from tailorlm.export import gguf_convert
    from tailorlm.export.gguf import _convert

    checkout = llama_cpp_checkout()
    merged = export(trained, "acme", "merge", check=False).path
    for kind in ("f16", "q8_0"):
        ours, theirs = tmp_path / f"builtin-{kind}.gguf", tmp_path / f"llama-cpp-{kind}.gguf"
        gguf_convert.convert(merged, ours, kind, name="acme-v1")
        _convert(merged, theirs, kind, "acme-v1", checkout, "gpt-2")
        a, b = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
        tensors_a, tensors_b = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
        assert set(tensors_a) == set(tensors_b)
        for name, tensor in tensors_a.items():
            other = tensors_b[name]
            assert tensor.tensor_type == other.tensor_type, name
            assert list(tensor.shape) == list(other.shape), name
            assert np.array_equal(np.asarray(tensor.data), np.asarray(other.data)), f"{kind}: {name} differs"
        # llama.cpp leaves add_bos/add_eos out for this tokenizer (its default is false); the rest matches.
        assert set(b.fields) - set(a.fields) == set()
        shared = {key for key in set(a.fields) & set(b.fields) if not key.startswith("GGUF.")}
        for key in shared:
            assert a.fields[key].contents() == b.fields[key].contents(), key


def test_llama_cpp_converter_and_quantizer_in_an_export(trained: Workspace) -> None:
    from tailorlm.export.gguf import find_quantizer, read_summary

    checkout = llama_cpp_checkout()
    types = ["f16", "q8_0", *(["q4_K_M"] if find_quantizer(checkout) else [])]
    result = export(trained, "acme", "gguf", llama_cpp=checkout, types=types, check=False)
    assert result.report["gguf"]["converter"].startswith("llama.cpp")
    for kind in types:
        summary = read_summary(result.path / f"acme-v1-{kind}.gguf")
        assert summary["architecture"] == "llama" and summary["tokens"] > 0
