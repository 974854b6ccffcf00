"""The fine-tuned SmolLM2 out of the workspace: `tailorlm export merge` gives the same greedy tokens as
base + adapter, and `tailorlm export gguf` read back with `import_base` gives the merged model's tokens
(exactly at f16, within a stated tolerance at q8_0)."""

from __future__ import annotations

import pytest
import torch

from helpers.real_models import MAX_NEW_TOKENS, acme_conversations, greedy, prompt_ids, tailorlm

pytestmark = pytest.mark.real_model

Q8_0_MIN_AGREEMENT = 0.9  # share of identical tokens among the first 16 greedy tokens of every prompt


def load(directory, dtype=torch.float32):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=dtype).eval()


def test_merged_model_equals_adapter_on_base(real_workspace, smollm2_dir, acme_dataset, smollm2_run, merged_dir):
    from tailorlm.modeling import load_tokenizer, load_trained

    tokenizer = load_tokenizer(merged_dir)
    prompts = prompt_ids(tokenizer, acme_conversations(real_workspace, acme_dataset))
    adapter, _ = load_trained(smollm2_run.run_dir / "adapter", smollm2_dir)
    expected = greedy(adapter, prompts, tokenizer)
    del adapter

    assert greedy(load(merged_dir), prompts, tokenizer) == expected
    assert not (merged_dir / "adapter_config.json").exists()
    # the comparison means something only if training changed the answers
    assert greedy(load(smollm2_dir), prompts, tokenizer) != expected


def test_gguf_export_reads_back_as_the_merged_model(real_workspace, acme_dataset, smollm2_run, merged_dir):
    """The f16 file is compared with the merged model rounded as the exporter rounds it (matrices to f16,
    norms kept f32; then back to fp32, as `import_base` dequantises it), so greedy tokens must be
    identical; q8_0 rounds harder, and may flip a near-tie, so it is held to a token agreement."""
    from tailorlm.bases import import_base
    from tailorlm.export.parity import Prompt, compare
    from tailorlm.modeling import load_tokenizer

    out = real_workspace.root / "exports" / "acme-gguf"
    tailorlm("export", "gguf", smollm2_run.run.id, "--workspace", real_workspace.root, "--output", out)
    files = {kind: out / f"{smollm2_run.run.id}-{kind}.gguf" for kind in ("f16", "q8_0")}
    assert all(path.is_file() for path in files.values()), sorted(p.name for p in out.iterdir())

    tokenizer = load_tokenizer(merged_dir)
    conversations = acme_conversations(real_workspace, acme_dataset)
    prompts = prompt_ids(tokenizer, conversations)
    merged = load(merged_dir)
    exact = greedy(merged, prompts, tokenizer)
    with torch.no_grad():
        for parameter in merged.parameters():
            if parameter.ndim >= 2:
                parameter.copy_(parameter.half().float())
    rounded = greedy(merged, prompts, tokenizer)
    del merged

    for kind, path in files.items():
        base = import_base(real_workspace, path, name=f"acme-{kind}")
        assert base.meta.gguf_architecture == "llama" and base.meta.dtype == "float32"
        directory = real_workspace.path_of(base)
        read_back = load_tokenizer(directory)
        assert prompt_ids(read_back, conversations) == prompts, "the GGUF's tokenizer or template differs"
        got = greedy(load(directory), prompts, read_back)
        if kind == "f16":
            assert got == rounded
        else:
            outcome = compare(exact, got, [Prompt(c, "", p) for c, p in zip(conversations, prompts, strict=True)], str)
            assert outcome["token_agreement"] >= Q8_0_MIN_AGREEMENT, outcome
    assert all(len(tokens) <= MAX_NEW_TOKENS for tokens in exact)
