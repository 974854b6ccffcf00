"""Exporting a classification run (`classifier.json` beside its weights): the `merge` target folds a LoRA
adapter and its trained head into the base and writes a standalone folder that plain transformers loads as
`AutoModelForSequenceClassification` (or `pipeline("text-classification")`), with the label names in its
config and `classifier.json` (temperature, abstain threshold, per-label thresholds) beside it. The other
targets (gguf, ollama, vllm) serve generative models and refuse a classifier with that reason.

Check (in export_report.json):
* classifier parity (fp32) — the run's texts through base+adapter and through the written folder, reloaded
  on its own: the same label for every text, and the largest difference of the logits.
"""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

from tailorlm.classifier import CLASSIFIER_FILE, load_sequence_classifier, read_info
from tailorlm.export.parity import parity_messages
from tailorlm.export.runner import ExportContext, ExportError

PARITY_TEXTS = 8  # texts from the run's test split (or the given prompts) compared label by label


def refuse_unless_merge(name: str, target: str) -> None:
    """gguf, ollama and vllm run generative models: a classification head has nothing to generate."""
    if target != "merge":
        raise ExportError(
            f"{name} is a classification model: export it with the `merge` target (a standalone "
            f"transformers folder for AutoModelForSequenceClassification); {target} serves generative models. "
            "To serve it over HTTP use `tailorlm serve` (POST /v1/classify)"
        )


def write_classifier(context: ExportContext, folder: Path, *, dtype: str) -> str:
    """Merge the adapter and head into the base (float32), check parity, save in `dtype`; returns it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from tailorlm.modeling import load_tokenizer

    model, report = context.model, context.report
    info = read_info(model.artifact_dir)
    tokenizer = load_tokenizer(model.artifact_dir)
    context.progress.say(f"    merging the adapter and its {len(info.labels)}-label head into {model.base_model}")
    base = load_sequence_classifier(model.base_model, info.labels, multi_label=info.multi_label, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, model.artifact_dir).eval()
    texts = _parity_texts(context)
    reference = _logits(peft_model, tokenizer, texts, info.max_length) if context.check else None
    merged = peft_model.merge_and_unload(safe_merge=True)
    if merged.config.pad_token_id is None:
        merged.config.pad_token_id = tokenizer.pad_token_id
    saved = dtype if dtype != "auto" else "float32"
    merged.to(getattr(torch, saved)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    shutil.copyfile(model.artifact_dir / CLASSIFIER_FILE, folder / CLASSIFIER_FILE)
    del merged, peft_model, base
    gc.collect()
    if reference is None:
        report.skip("classifier parity (fp32)", "checks turned off (check=False)")
        return saved
    reloaded = AutoModelForSequenceClassification.from_pretrained(
        folder, local_files_only=True, dtype=torch.float32
    ).eval()
    again = _logits(reloaded, load_tokenizer(folder), texts, info.max_length)
    same = int((reference.argmax(-1) == again.argmax(-1)).sum())
    difference = float((reference - again).abs().max())
    exact = saved == "float32"
    report.check(
        "classifier parity (fp32)",
        "passed" if same == len(texts) or not exact else "failed",
        f"base+adapter vs the written folder reloaded alone: {same}/{len(texts)} texts get the same label; "
        f"max |Δlogit| {difference:.2e}" + ("" if exact else f" (saved in {saved}: a near tie may flip)"),
        texts=len(texts),
        same_label=same,
        max_logit_difference=difference,
    )
    return saved


def _parity_texts(context: ExportContext) -> list[str]:
    messages = parity_messages(context.workspace, context.model.run_id, None, context.prompts)
    texts = [m[-1]["content"] for m in messages if m and m[-1].get("content")]
    if not texts:
        raise ExportError("no text to check the exported classifier on: pass --prompts")
    return texts[:PARITY_TEXTS]


def _logits(network: object, tokenizer: object, texts: list[str], max_length: int):  # -> torch.Tensor
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        return network(**batch).logits.float()  # type: ignore[operator]
