"""House style by DPO on SmolLM2-135M-Instruct, the short version of docs/quality.md's measurement.

Preference pairs derived from the sample company's own answers (`tailorlm.examples.house_style`, shared with
`benchmarks/preference_style.py`): chosen = Acme's answer in the first person plural, signed; rejected = the
same content impersonal and unsigned. A fixed set of prompts is held out (chosen by a stable hash, pinned to
the test split), a LoRA adapter is trained with DPO for a few steps on the rest with short sequences, and
the base and the DPO model answer the held-out prompts with the same greedy decoding. The house voice
(`we_voice`) must rise with a paired bootstrap 95% interval above 0, and ROUGE-L against Acme's answers
must not be worse beyond its interval. Everything is seeded (split, training, bootstrap) and decoding is
greedy, so the numbers are the same on every run on one machine.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.real_model

HELD_OUT = 24  # prompts never trained on
STEPS = 8
LEARNING_RATE = 1e-3
MAX_LENGTH = 96  # the voice shows in an answer's first words
MAX_NEW_TOKENS = 40


def test_dpo_on_house_style_pairs_moves_held_out_answers_to_the_house_voice(real_workspace, smollm2_dir, tmp_path):
    from tailorlm.evaluate import evaluate
    from tailorlm.examples.house_style import style_project, style_table, write_style_pairs
    from tailorlm.prepare import prepare
    from tailorlm.train import train
    from tailorlm.workspace import read_jsonl

    pairs = write_style_pairs(real_workspace, smollm2_dir, tmp_path, held_out=HELD_OUT)
    assert pairs.pairs - HELD_OUT >= 100  # a few hundred preference records: two per pair
    project = style_project(
        smollm2_dir,
        real_workspace.root,
        pairs,
        max_steps=STEPS,
        learning_rate=LEARNING_RATE,
        max_length=MAX_LENGTH,
        max_new_tokens=MAX_NEW_TOKENS,
        seed=0,
    )
    dataset = prepare(real_workspace, project).dataset
    run = train(real_workspace, project, dataset=dataset.id)
    result = evaluate(real_workspace, project, run=run.run.id, dataset=dataset.id, baselines=["base"])

    table = {row["metric"]: row for row in style_table(read_jsonl(result.path / "results.jsonl"), "finetuned", "base")}
    voice, content = table["we_voice"], table["rouge_l"]
    assert voice["n"] == content["n"] == HELD_OUT
    assert voice["ci"][0] > 0, table  # the house voice rose, beyond chance
    assert content["ci"][1] >= 0, table  # ROUGE-L not worse beyond its interval
