"""`tailorlm export`: merged weights with parity, GGUF read back, Ollama Modelfile, vLLM layout, and
bad input that is refused with nothing written. One LoRA run on the tiny model serves every test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers.data import train_registered
from tailorlm.export import REPORT_FILE, ExportError, export
from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, _one_thread):
    """A workspace with one LoRA run registered twice on the tiny base: `acme` and `legal`."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:  # module scope runs before the per-test isolation
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("HF_HOME", str(root / "home" / "hf"))
        ws = Workspace(root / "ws")
        run_id = train_registered(ws, tiny_model_dir, "acme", "legal")
    yield ws, run_id
    ws.close()


@pytest.fixture(autouse=True)
def _no_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same results whatever is installed: no llama.cpp checkout, quantizer or llama-cpp-python
    (tests/integration/test_export_llama_cpp.py uses them when present)."""
    from tailorlm.export import gguf

    monkeypatch.delenv("TAILORLM_LLAMA_CPP", raising=False)
    monkeypatch.setattr(gguf, "KNOWN_CHECKOUTS", ())
    monkeypatch.setattr(gguf, "find_quantizer", lambda checkout: None)
    monkeypatch.setattr(gguf, "llama_cpp_available", lambda: "llama-cpp-python not installed (test)")


def fake_run(ws: Workspace, base: Path, adapter: Path | None, *, status: str = "complete") -> str:
    """A run row whose artifact is a copy of `adapter` (or, with None, full weights copied from `base`)."""
    run_id = f"run-fake-{len(ws.registry.find('run'))}"
    run_dir = ws.run_dir(run_id)
    artifact = "adapter" if adapter else "model"
    shutil.copytree(adapter or base, run_dir / artifact)
    ws.registry.add(
        Artifact(
            id=run_id,
            kind="run",
            name="tiny",
            hash="0" * 64,
            path=ws.relative(run_dir),
            status=status,
            meta={
                "base_model": str(base),
                "artifact": artifact,
                "method": "lora" if adapter else "full",
                "dataset": "none",
            },
        )
    )
    return run_id


def adapter_dir(ws: Workspace, run_id: str) -> Path:
    return ws.run_dir(run_id) / "adapter"


def greedy(model, ids: list[int], n: int = 16) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, len(ids) :].tolist()


# --- merge -----------------------------------------------------------------------------------------


def test_merge_gives_identical_greedy_tokens(trained) -> None:
    from transformers import AutoModelForCausalLM

    from tailorlm.formats.templates import render
    from tailorlm.modeling import load_tokenizer, load_trained

    ws, run_id = trained
    models_before = len(ws.registry.find("model"))
    result = export(ws, "acme", "merge")

    assert result.path == ws.root / "exports" / "acme-v1" / "merged"
    names = {p.name for p in result.files}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "chat_template.jinja",
        "README.md",
        REPORT_FILE,
    } <= names
    checks = {c["name"]: c for c in result.report["checks"]}
    parity = checks["merge parity (fp32)"]
    assert parity["status"] == "passed" and parity["identical"] == parity["prompts"] > 0
    assert parity["adapter_changes_output"] > 0, "the adapter must change answers for parity to mean anything"
    assert checks["reload"]["status"] == "passed"
    assert result.passed

    # Independently of the report: base+adapter and the merged folder (plain transformers) agree.
    adapted, tokenizer = load_trained(adapter_dir(ws, run_id), Path(result.report["base_model"]))
    merged = AutoModelForCausalLM.from_pretrained(result.path, local_files_only=True).eval()
    messages = [
        {"role": "system", "content": "You are Acme support."},
        {"role": "user", "content": "How do I pair the hub? (ticket 7)"},
    ]
    ids = tokenizer(render(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert greedy(merged, ids) == greedy(adapted, ids)
    assert load_tokenizer(result.path).chat_template == tokenizer.chat_template
    generation = json.loads((result.path / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in np.atleast_1d(generation["eos_token_id"])

    # Registers nothing; records an audit event with the model and run in, the folder out.
    assert len(ws.registry.find("model")) == models_before
    event = ws.audit.events()[-1]
    assert event["action"] == "export" and event["outputs"] == [str(result.path)]
    assert "model-acme-v1" in event["inputs"] and run_id in event["inputs"]
    assert json.loads((result.path / REPORT_FILE).read_text())["target"] == "merge"


def test_full_weight_run_is_copied(trained, tiny_model_dir: Path, tmp_path: Path) -> None:
    from tailorlm.export.gguf import read_summary

    ws, _ = trained
    run_id = fake_run(ws, tiny_model_dir, None)
    result = export(ws, run_id, "merge", output=tmp_path / "out")
    checks = {c["name"]: c["status"] for c in result.report["checks"]}
    assert checks == {"copy": "passed", "merge parity (fp32)": "skipped"}
    assert (result.path / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()

    gguf_export = export(ws, run_id, "gguf", types=["q8_0"], check=False)
    assert gguf_export.path == ws.root / "exports" / run_id / "gguf"
    assert read_summary(gguf_export.path / f"{run_id}-q8_0.gguf")["architecture"] == "llama"
    vllm = export(ws, run_id, "vllm")
    assert vllm.report["vllm"]["command"] == (f"vllm serve {vllm.path}/model --served-model-name {run_id} --port 8000")
    assert (vllm.path / "model" / "model.safetensors").is_file()
    with pytest.raises(ExportError, match="full-weight model"):
        export(ws, run_id, "vllm", models=["acme"])


# --- GGUF ------------------------------------------------------------------------------------------


def test_gguf_f16_and_q8_0_read_back(trained) -> None:
    import gguf
    from safetensors.numpy import load_file

    from tailorlm.export.gguf import read_summary

    ws, _ = trained
    result = export(ws, "acme", "gguf")
    assert sorted(p.name for p in result.files) == ["acme-v1-f16.gguf", "acme-v1-q8_0.gguf", REPORT_FILE]
    report = result.report
    assert report["gguf"]["converter"] == "built-in" and report["gguf"]["tokenizer_pre"] == "gpt-2"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["GGUF read back (f16)"]["status"] == checks["GGUF read back (q8_0)"]["status"] == "passed"
    assert checks["merge parity (fp32)"]["status"] == "passed"
    assert checks["q4_K_M"]["status"] == "skipped" and "quantizer" in checks["q4_K_M"]["detail"]
    assert checks["GGUF parity"] == {
        "name": "GGUF parity",
        "status": "skipped",
        "detail": "GGUF parity skipped: llama-cpp-python not installed (test)",
    }

    config = json.loads((Path(report["base_model"]) / "config.json").read_text())
    hidden, ff, vocab, layers = (
        config[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_hidden_layers")
    )
    for kind, matrix_type in (("f16", "F16"), ("q8_0", "Q8_0")):
        summary = read_summary(result.path / f"acme-v1-{kind}.gguf")
        tensors = summary["tensors"]
        # token_embd + output_norm + 9 per block; tied embeddings: no output.weight
        assert len(tensors) == 2 + 9 * layers
        assert tensors["token_embd.weight"] == ((hidden, vocab), matrix_type)
        assert tensors["blk.0.attn_q.weight"] == ((hidden, hidden), matrix_type)
        assert tensors["blk.1.ffn_up.weight"] == ((hidden, ff), matrix_type)
        assert tensors["blk.1.ffn_down.weight"] == ((ff, hidden), matrix_type)
        assert tensors["blk.0.attn_norm.weight"] == ((hidden,), "F32")
        assert tensors["output_norm.weight"] == ((hidden,), "F32")
        assert summary["architecture"] == "llama" and summary["tokens"] == vocab

    reader = gguf.GGUFReader(result.path / "acme-v1-f16.gguf")
    value = lambda key: reader.get_field(key).contents()  # noqa: E731
    assert value("llama.block_count") == layers and value("llama.embedding_length") == hidden
    assert value("llama.context_length") == config["max_position_embeddings"]
    assert value("llama.attention.head_count") == config["num_attention_heads"]
    assert value("tokenizer.ggml.model") == "gpt2" and value("tokenizer.ggml.pre") == "gpt-2"
    assert len(value("tokenizer.ggml.merges")) > 0
    assert value("tokenizer.ggml.eos_token_id") == config["eos_token_id"]
    assert value("tokenizer.ggml.add_bos_token") is False  # training never saw a BOS
    assert "<|im_start|>" in value("tokenizer.chat_template")
    tokens = value("tokenizer.ggml.tokens")
    assert tokens[2] == "<|im_end|>" and value("tokenizer.ggml.token_type")[2] == gguf.TokenType.CONTROL

    # The stored weights are the merged ones: embeddings as is, Q rows in llama.cpp's RoPE order.
    merged = export(ws, "acme", "merge", check=False).path
    weights = load_file(merged / "model.safetensors")
    stored = {t.name: t for t in reader.tensors}
    embd = np.asarray(stored["token_embd.weight"].data, dtype=np.float32)
    assert np.allclose(embd, weights["model.embed_tokens.weight"], atol=1e-3)
    from tailorlm.export.gguf_convert import permute

    q = np.asarray(stored["blk.0.attn_q.weight"].data, dtype=np.float32)
    expected_q = permute(weights["model.layers.0.self_attn.q_proj.weight"], config["num_attention_heads"])
    assert np.allclose(q, expected_q, atol=1e-3)
    assert not np.allclose(q, weights["model.layers.0.self_attn.q_proj.weight"], atol=1e-3)


def test_permute_interleaves_rotate_half_pairs() -> None:
    from tailorlm.export.gguf_convert import permute

    head_dim, heads = 8, 2
    rows = np.arange(heads * head_dim)[:, None]
    order = permute(rows, heads)[:, 0].tolist()
    # HF pairs row i with row i + d/2 (rotate-half); llama.cpp wants them adjacent.
    assert order[:head_dim] == [0, 4, 1, 5, 2, 6, 3, 7]
    assert order[head_dim:] == [8, 12, 9, 13, 10, 14, 11, 15]


@pytest.mark.parametrize(
    ("pre_tokenizer", "expected"),
    [
        ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
        (
            {
                "type": "Sequence",
                "pretokenizers": [
                    {
                        "type": "Split",
                        "pattern": {
                            "Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?"
                            r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
                        },
                        "behavior": "Isolated",
                        "invert": False,
                    },
                    {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False},
                ],
            },
            "llama-bpe",
        ),
    ],
)
def test_pre_tokenizer_is_named_from_its_pattern(tmp_path: Path, pre_tokenizer: dict, expected: str) -> None:
    from tailorlm.export.gguf_convert import pre_tokenizer_name

    tokenizer = {"model": {"type": "BPE"}, "decoder": {"type": "ByteLevel"}, "pre_tokenizer": pre_tokenizer}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert pre_tokenizer_name(tmp_path) == expected


def test_unknown_pre_tokenizer_asks_for_a_name(tmp_path: Path) -> None:
    from tailorlm.export.gguf_convert import pre_tokenizer_name

    tokenizer = {
        "model": {"type": "BPE"},
        "decoder": {"type": "ByteLevel"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}]},
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ExportError, match="pre_tokenizer="):
        pre_tokenizer_name(tmp_path)
    assert pre_tokenizer_name(tmp_path, "gpt-2") == "gpt-2"


def test_unsupported_architecture_is_refused_and_nothing_written(trained, tiny_model_dir, tmp_path) -> None:
    ws, run_id = trained
    base = tmp_path / "gpt2-base"
    shutil.copytree(tiny_model_dir, base)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    fake = fake_run(ws, base, adapter_dir(ws, run_id))
    with pytest.raises(ExportError, match=r"GPT2LMHeadModel.*TAILORLM_LLAMA_CPP"):
        export(ws, fake, "gguf")
    assert not (ws.root / "exports" / fake).exists()


def test_failure_midway_leaves_nothing(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    from tailorlm.export import gguf_convert

    ws, _ = trained

    def broken(model_dir, out, kind, **_):
        out.write_bytes(b"GGUF half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf_convert, "convert", broken)
    final = ws.root / "exports" / "legal-v1" / "gguf"
    with pytest.raises(RuntimeError, match="disk full"):
        export(ws, "legal", "gguf", check=False, converter="builtin")
    assert not final.exists()
    leftovers = list(final.parent.glob(".*")) if final.parent.exists() else []
    assert not leftovers, f"staging folders left behind: {leftovers}"


def test_q4_k_m_without_quantizer_is_a_clear_error(trained) -> None:
    ws, _ = trained
    with pytest.raises(ExportError, match="llama-quantize"):
        export(ws, "acme", "gguf", types=["q4_K_M"])


# --- Ollama ----------------------------------------------------------------------------------------


def test_ollama_modelfile(trained) -> None:
    from tailorlm.export.gguf import read_summary

    ws, _ = trained
    result = export(ws, "acme", "ollama", converter="builtin", check=False)
    assert sorted(p.name for p in result.files) == ["Modelfile", REPORT_FILE, "model.gguf"]
    modelfile = (result.path / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model.gguf\n")
    assert "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>" in modelfile
    assert "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert 'SYSTEM """You are Acme support."""' in modelfile
    statuses = {c["name"]: c["status"] for c in result.report["checks"]}
    assert statuses["Ollama template"] == "passed"
    assert result.report["ollama"]["create"].startswith("ollama create acme -f ")
    assert read_summary(result.path / "model.gguf")["tensors"]["blk.0.attn_q.weight"][1] == "Q8_0"


LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{% if loop.last and messages[0]['role'] == 'system' %}{{ '[INST] ' + messages[0]['content'] + '\n\n' + "
    "message['content'] + '[/INST]' }}{% else %}{{ '[INST] ' + message['content'] + '[/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
)


@pytest.mark.parametrize(
    ("template", "family"),
    [
        (None, "chatml"),
        (LLAMA3_TEMPLATE, "llama3"),
        (MISTRAL_TEMPLATE, "mistral"),
    ],
)
def test_go_templates_render_like_the_training_template(tiny_model_dir, template, family) -> None:
    from tailorlm.export.ollama import detect_family, template_difference
    from tailorlm.modeling import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    if template:
        tokenizer.chat_template = template
        tokenizer.eos_token = "</s>" if family == "mistral" else tokenizer.eos_token
    found = detect_family(tokenizer.chat_template)
    assert found is not None and found.name == family
    assert template_difference(tokenizer, found) is None


def test_unknown_template_falls_back_to_chatml_with_a_warning(trained, tmp_path: Path) -> None:
    ws, run_id = trained
    adapter = tmp_path / "adapter"
    shutil.copytree(adapter_dir(ws, run_id), adapter)
    (adapter / "chat_template.jinja").write_text("{% for m in messages %}### {{ m['content'] }}\n{% endfor %}")
    fake = fake_run(
        ws, Path(json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]), adapter
    )
    result = export(ws, fake, "ollama", check=False, converter="builtin")
    assert any("not one of the known families" in w for w in result.report["warnings"])
    assert "<|im_start|>{{ .Role }}" in (result.path / "Modelfile").read_text()


# --- vLLM ------------------------------------------------------------------------------------------


def test_vllm_command_and_modules(trained) -> None:
    ws, run_id = trained
    result = export(ws, "acme", "vllm", same_base=True)
    modules = json.loads((result.path / "lora_modules.json").read_text())
    assert [m["name"] for m in modules] == ["acme", "legal"]
    base = result.report["base_model"]
    for module in modules:
        assert module["base_model_name"] == base
        assert Path(module["path"]) == result.path / "adapters" / module["name"]
        copied = Path(module["path"]) / "adapter_model.safetensors"
        assert copied.read_bytes() == (adapter_dir(ws, run_id) / "adapter_model.safetensors").read_bytes()
    command = result.report["vllm"]["command"]
    assert command.startswith(f"vllm serve {base} --served-model-name {Path(base).name} --enable-lora")
    assert f"--lora-modules acme={result.path}/adapters/acme legal={result.path}/adapters/legal" in command
    assert "--max-lora-rank 8 --max-loras 2" in command
    launch = (result.path / "launch.sh").read_text()
    assert 'acme="$HERE/adapters/acme"' in launch and (result.path / "launch.sh").stat().st_mode & 0o100
    subprocess.run(["bash", "-n", str(result.path / "launch.sh")], check=True)  # valid shell
    assert {c["name"]: c["status"] for c in result.report["checks"]} == {"vLLM serving": "skipped"}


def test_vllm_refuses_a_model_on_another_base(trained, tiny_model_dir, tmp_path) -> None:
    ws, run_id = trained
    other_base = tmp_path / "other-base"
    shutil.copytree(tiny_model_dir, other_base)
    fake = fake_run(ws, other_base, adapter_dir(ws, run_id))
    with pytest.raises(ExportError, match="one vLLM server shares one base model"):
        export(ws, "acme", "vllm", models=[fake])


def test_vllm_refuses_dora(trained, tiny_model_dir, tmp_path) -> None:
    ws, run_id = trained
    adapter = tmp_path / "dora"
    shutil.copytree(adapter_dir(ws, run_id), adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    fake = fake_run(ws, tiny_model_dir, adapter)
    with pytest.raises(ExportError, match="DoRA"):
        export(ws, fake, "vllm")
    assert not (ws.root / "exports" / fake).exists()


# --- bad input -------------------------------------------------------------------------------------


def test_bad_references_and_options(trained, tiny_model_dir, tmp_path) -> None:
    ws, run_id = trained
    with pytest.raises(ExportError, match=r"no model matches nope; known: .*acme@v1"):
        export(ws, "nope", "merge")
    with pytest.raises(ExportError, match="no run 'run-missing'"):
        export(ws, "run-missing", "merge")
    running = fake_run(ws, tiny_model_dir, adapter_dir(ws, run_id), status="running")
    with pytest.raises(ExportError, match="running, not complete"):
        export(ws, running, "merge")
    with pytest.raises(ExportError, match="unknown export target 'onnx'; choose one of gguf, merge, ollama, vllm"):
        export(ws, "acme", "onnx")
    with pytest.raises(ExportError, match="unknown option quantisation for export target 'ollama'"):
        export(ws, "acme", "ollama", quantisation="q8_0")
    with pytest.raises(ExportError, match="GGUF types must be among"):
        export(ws, "acme", "gguf", types=["q2_K"])
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty and is not an earlier export"):
        export(ws, "acme", "merge", output=precious)
    assert (precious / "keep.txt").read_text() == "mine"
    assert not (ws.root / "exports" / "nope").exists()


GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

type Case struct {
	Template string
	System   string
	Messages []Message
}

func main() {
	var cases []Case
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	for _, c := range cases {
		t := template.Must(template.New("t").Parse(c.Template))
		if err := t.Execute(os.Stdout, map[string]any{"System": c.System, "Messages": c.Messages}); err != nil {
			panic(err)
		}
		os.Stdout.WriteString("\\x00")
	}
}
"""


@pytest.mark.skipif(
    shutil.which("go") is None, reason="Go is not installed: the Go templates are checked by mirror only"
)
def test_go_templates_execute_as_their_python_mirrors(tmp_path: Path) -> None:
    """Run every family's TEMPLATE with Go's text/template, fed as Ollama feeds it (system messages joined
    into .System and kept in .Messages), and compare with the mirror the Ollama-template check uses."""
    from tailorlm.export.ollama import FAMILIES, PROBE

    conversations = [list(PROBE), list(PROBE[1:]), list(PROBE[:2])]
    cases, expected = [], []
    for family in FAMILIES:
        for messages in conversations:
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            cases.append(
                {
                    "Template": family.template,
                    "System": system,
                    "Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages],
                }
            )
            expected.append(family.mirror(messages))
    (tmp_path / "render.go").write_text(GO_RENDER)
    env = {**os.environ, "GOCACHE": str(tmp_path / "gocache"), "GOPATH": str(tmp_path / "gopath"), "GOFLAGS": ""}
    done = subprocess.run(
        ["go", "run", "render.go"],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=True,
    )
    assert done.stdout.split("\x00")[:-1] == expected
