"""Merged weights: the adapter folded into its base, saved as safetensors with the tokenizer, chat
template and generation config, so the folder loads in plain transformers (or any HF-format tool)
without peft. A full-weight run is copied unchanged; a classification run is merged by export/classifier.py.

Checks (in export_report.json):
* merge parity (fp32) — the prompts through base+adapter and through the merged model give identical
  greedy tokens; also the largest difference of next-token logits.
* reload — the written folder loads on its own and reproduces the reference tokens (exactly when
  saved in float32; a near-tie may flip when saved in bfloat16/float16, so there the agreement is given).
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from typing import Any, Literal, get_args

from tailorlm.classifier import is_classifier
from tailorlm.export.classifier import write_classifier
from tailorlm.export.parity import (
    Prompt,
    compare,
    hf_greedy,
    hf_next_logits,
    parity_messages,
    render_prompts,
    stop_ids,
)
from tailorlm.export.runner import ExportContext, ExportError, target
from tailorlm.workspace import sha256_file

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: tuple[str, ...] = get_args(Dtype)


@target("merge", folder="merged")
def export_merged(context: ExportContext, *, dtype: Dtype = "auto") -> None:
    """Merged safetensors + tokenizer + chat template + generation config (loads without peft).

    Args:
        dtype: Precision of the saved weights: auto (the base model's own), float32, bfloat16 or float16.
    """
    write_merged(context, context.output, dtype=dtype)


def write_merged(context: ExportContext, folder: Path, *, dtype: str = "auto", reload_check: bool = True) -> None:
    """Write the model as a standalone HF folder into `folder`, recording the checks in the report.
    `reload_check=False` skips loading the written folder again (a caller that checks it itself)."""
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    from tailorlm.modeling import load_tokenizer

    model = context.model
    tokenizer = load_tokenizer(model.artifact_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if model.is_adapter and is_classifier(model.artifact_dir):  # a head, not a language model: export/classifier.py
        context.report.details["merged"] = {"dtype": write_classifier(context, folder, dtype=dtype)}
    elif model.is_adapter:
        tokenizer.save_pretrained(folder)  # first: the reload check loads the folder on its own
        _merge_adapter(context, folder, tokenizer, dtype, reload_check)
    else:
        _copy_full_weights(context, folder)
        tokenizer.save_pretrained(folder)  # with the chat template that training used
    if not is_classifier(model.artifact_dir):
        _write_generation_config(folder, model.base_model if model.is_adapter else model.artifact_dir, tokenizer)
    card = context.workspace.model_dir(model.name, model.version) / "MODEL_CARD.md" if model.version else None
    if card is not None and card.is_file():
        shutil.copyfile(card, folder / "README.md")


def _copy_full_weights(context: ExportContext, folder: Path) -> None:
    source = context.model.artifact_dir
    copied = []
    for path in sorted(source.iterdir()):
        if path.is_file():
            shutil.copy2(path, folder / path.name)
            copied.append(path.name)
    weights = [name for name in copied if name.endswith(".safetensors")]
    if not weights:
        raise ExportError(f"{source} has no *.safetensors weights to export")
    same = all(sha256_file(source / name) == sha256_file(folder / name) for name in weights)
    context.report.check(
        "copy",
        "passed" if same else "failed",
        f"full-weight run: {len(weights)} weight file(s) copied unchanged (sha256 compared)",
    )
    context.report.skip("merge parity (fp32)", "not applicable: a full-weight run has no adapter to merge")


def _merge_adapter(context: ExportContext, folder: Path, tokenizer: Any, dtype: str, reload_check: bool) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, report = context.model, context.report
    if model.method == "qlora":
        report.warn(
            "trained with QLoRA on a 4-bit base: the adapter is merged into the full-precision base, "
            "so answers can differ slightly from base(4-bit)+adapter"
        )
    context.progress.say(f"    merging the adapter into {model.base_model} (float32)")
    base = AutoModelForCausalLM.from_pretrained(model.base_model, local_files_only=True, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, model.artifact_dir).eval()

    prompts = render_prompts(
        tokenizer, parity_messages(context.workspace, model.run_id, model.system_prompt, context.prompts)
    )
    stop = stop_ids(tokenizer)
    reference: list[list[int]] | None = None
    if context.check:
        context.progress.say(f"    parity check: {len(prompts)} prompt(s), base+adapter vs merged")
        reference = hf_greedy(peft_model, prompts, context.max_new_tokens, stop)
        reference_logits = hf_next_logits(peft_model, prompts)
        with peft_model.disable_adapter():
            base_tokens = hf_greedy(peft_model, prompts, context.max_new_tokens, stop)
        changed = sum(a != b for a, b in zip(reference, base_tokens, strict=True))
        if not changed:
            report.warn(
                "the adapter does not change the greedy answer to any parity prompt, so the merge "
                "parity check says little; pass other prompts to check it"
            )

    merged = peft_model.merge_and_unload(safe_merge=True)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    if reference is not None:
        result = compare(reference, hf_greedy(merged, prompts, context.max_new_tokens, stop), prompts, decode)
        difference = max(
            float((a - b).abs().max()) for a, b in zip(reference_logits, hf_next_logits(merged, prompts), strict=True)
        )
        result.update(max_logit_difference=difference, adapter_changes_output=changed)
        ok = result["identical"] == result["prompts"]
        report.check(
            "merge parity (fp32)",
            "passed" if ok else "failed",
            f"base+adapter vs merged, greedy {context.max_new_tokens} tokens: {result['identical']}/"
            f"{result['prompts']} prompts identical; max |Δlogit| {difference:.2e}",
            **result,
        )
    else:
        report.skip("merge parity (fp32)", "checks turned off (check=False)")

    saved_dtype = _saved_dtype(model.base_model, dtype)
    merged.to(getattr(torch, saved_dtype)).save_pretrained(folder)
    del merged, peft_model, base
    gc.collect()
    report.details["merged"] = {"dtype": saved_dtype}

    if reference is None:
        report.skip("reload", "checks turned off (check=False)")
    elif reload_check:
        _check_reload(context, folder, tokenizer, prompts, reference, stop, saved_dtype)


def _check_reload(
    context: ExportContext,
    folder: Path,
    tokenizer: Any,
    prompts: list[Prompt],
    reference: list[list[int]],
    stop: list[int],
    saved_dtype: str,
) -> None:
    """Load what was written, as a user would, and compare with base+adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    from tailorlm.modeling import load_tokenizer

    reloaded_tokenizer = load_tokenizer(folder)
    again = render_prompts(reloaded_tokenizer, [p.messages for p in prompts])
    if [p.ids for p in again] != [p.ids for p in prompts]:
        context.report.check(
            "reload",
            "failed",
            "the written tokenizer or chat template renders the prompts differently from the trained one",
        )
        return
    reloaded = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
    result = compare(
        reference,
        hf_greedy(reloaded, again, context.max_new_tokens, stop),
        prompts,
        lambda ids: tokenizer.decode(ids, skip_special_tokens=False),
    )
    del reloaded
    gc.collect()
    exact = saved_dtype == "float32"
    ok = result["identical"] == result["prompts"] if exact else result["token_agreement"] >= 0.5
    how = (
        "identical tokens required"
        if exact
        else (f"saved in {saved_dtype}: rounding may flip near-tied tokens, so agreement is reported (fails below 0.5)")
    )
    context.report.check(
        "reload",
        "passed" if ok else "failed",
        f"the written folder alone vs base+adapter: {result['identical']}/{result['prompts']} "
        f"identical, token agreement {result['token_agreement']} ({how})",
        **result,
    )


def _saved_dtype(base_model: Path, dtype: str) -> str:
    if dtype != "auto":
        return dtype
    config = json.loads((base_model / "config.json").read_text(encoding="utf-8"))
    stored = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return stored if stored in DTYPES else "float32"


def _write_generation_config(folder: Path, source: Path, tokenizer: Any) -> None:
    """The base's generation config, stopping at the template's end-of-turn tokens as well as EOS."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(source, local_files_only=True)
    except OSError:
        config = GenerationConfig()
    stops = stop_ids(tokenizer)
    existing = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    eos = sorted({*(i for i in existing if i is not None), *stops})
    config.eos_token_id = eos[0] if len(eos) == 1 else eos
    if tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    config.save_pretrained(folder)
