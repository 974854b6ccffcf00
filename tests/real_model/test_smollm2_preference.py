"""DPO on SmolLM2-135M-Instruct from the tier's SFT run: house-style preference pairs derived from the
sample company's own answers (signed, first person plural vs impersonal, unsigned) raise the
chosen-vs-rejected log-probability margin on held-out prompts, measured against the SFT adapter it started
from. The full measurement (generated answers, style check and ROUGE-L with paired CIs) is
benchmarks/preference_style.py, recorded in docs/quality.md."""

from __future__ import annotations

import pytest

from helpers.feedback import preference_margin
from helpers.real_models import MAX_LENGTH
from tailorlm.config import parse_project
from tailorlm.dataset_splits import load_split
from tailorlm.examples.house_style import house_style_pairs
from tailorlm.feedback import derive, write_feedback
from tailorlm.formats.preference import pair_example
from tailorlm.prepare import prepare
from tailorlm.train import train

pytestmark = pytest.mark.real_model
STEPS = 8


def test_dpo_moves_held_out_answers_towards_the_house_style(real_workspace, smollm2_dir, acme_dataset, smollm2_run):
    train_pairs = house_style_pairs(load_split(real_workspace, acme_dataset, "train")[:48])
    held_out = [
        pair_example(p.prompt, p.chosen, p.rejected)
        for p in derive(house_style_pairs(load_split(real_workspace, acme_dataset, "test")[:12])).pairs
    ]
    path = real_workspace.root / "house-style-pairs.jsonl"
    write_feedback(path, train_pairs)
    project = parse_project(
        {
            "project": "acme-style",
            "base_model": str(smollm2_dir),
            "sources": [{"path": str(path), "kind": "feedback"}],
            "prepare": {"pii": "off", "split": {"test": 0.0, "val": 0.0}},
            "train": {
                "method": "dpo",
                "max_steps": STEPS,
                "batch_size": 4,
                "learning_rate": 5e-4,
                "max_length": MAX_LENGTH,
                "logging_steps": 4,
                "save_steps": 10_000,
                "preference": {"start_from": smollm2_run.run.id, "beta": 0.1},
            },
        },
        root=real_workspace.root,
    )
    dataset = prepare(real_workspace, project).dataset
    run = train(real_workspace, project, dataset=dataset.id)

    before = preference_margin(smollm2_run.run_dir / "adapter", smollm2_dir, held_out)
    after = preference_margin(run.run_dir / "adapter", smollm2_dir, held_out)
    assert len(held_out) >= 8 and run.run.status == "complete"
    assert after > before + 1.0, (
        f"held-out chosen-vs-rejected margin {before:.2f} → {after:.2f} after {STEPS} DPO steps"
    )
    assert smollm2_run.run.id in {p.id for p in real_workspace.registry.parents(run.run.id)}
