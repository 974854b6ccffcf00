"""prepare's `feedback` builder: corrections → pairs that are also supervised examples, paired ratings →
pairs, single ratings → desirable/undesirable answers, neutral ratings counted; one prompt in one split
only; rejected answers redacted like the rest; undesirable answers neither trained by SFT nor used as
evaluation references."""

from __future__ import annotations

from collections import Counter

from helpers.feedback import ask, bad, feedback_project, good, style_feedback, write_records
from tailorlm.dataset_splits import load_split
from tailorlm.evaluate.cases import cases_from_examples
from tailorlm.feedback import FeedbackRecord
from tailorlm.formats.preference import desirable_of, rejected_of
from tailorlm.prepare import prepare
from tailorlm.registry import DatasetMeta


def examples_by_split(workspace, dataset):
    return {split: load_split(workspace, dataset, split) for split in ("train", "val", "test")}


def test_each_feedback_kind_becomes_its_examples_and_a_prompt_stays_in_one_split(workspace, tiny_model_dir, tmp_path):
    records = [
        *style_feedback(12, "pairs"),
        *[FeedbackRecord(messages=ask(100 + i), answer=bad(i), rating="down", corrected=good(i)) for i in range(6)],
        *[FeedbackRecord(messages=ask(200 + i), answer=good(i), rating=5) for i in range(4)],
        *[FeedbackRecord(messages=ask(300 + i), answer=bad(i), rating=1) for i in range(4)],
        FeedbackRecord(messages=ask(400), answer="Maybe.", rating=3),
        # a second reviewer's pair on a prompt already seen: same split as the first
        FeedbackRecord(messages=ask(0), answer="We will look into it. The Acme Care Team", rating="up"),
    ]
    path = write_records(tmp_path / "feedback.jsonl", records)
    result = prepare(workspace, feedback_project(tiny_model_dir, tmp_path, path))
    splits = examples_by_split(workspace, result.dataset)
    every = [e for examples in splits.values() for e in examples]
    kinds = Counter("pair" if rejected_of(e) else ("good" if desirable_of(e) else "bad") for e in every)
    assert kinds == {"pair": 12 + 1 + 6, "good": 4, "bad": 4}
    assert all(e.messages[0].content == "You are Acme support." for e in every)
    corrected = [e for e in every if e.meta.get("why") == "corrected"]
    assert len(corrected) == 6 and all(e.target.endswith("The Acme Care Team") for e in corrected)
    assert result.dataset.meta_as(DatasetMeta).skipped.get("feedback: neutral rating") == 1

    side = {}
    for split, examples in splits.items():
        for example in examples:
            assert side.setdefault(example.input_text, split) == split, example.input_text
    assert len(splits["test"]) > 0


def test_rejected_answers_are_redacted_and_undesirable_answers_are_no_reference(workspace, tiny_model_dir, tmp_path):
    records = [
        FeedbackRecord(messages=ask(i), answer=f"Write to jane.doe{i}@example.com", rating="down", corrected=good(i))
        for i in range(10)
    ] + [FeedbackRecord(messages=ask(50 + i), answer=bad(i), rating="down") for i in range(10)]
    path = write_records(tmp_path / "feedback.jsonl", records)
    result = prepare(workspace, feedback_project(tiny_model_dir, tmp_path, path))
    every = [e for examples in examples_by_split(workspace, result.dataset).values() for e in examples]
    rejected = [rejected_of(e) for e in every if rejected_of(e)]
    assert len(rejected) == 10 and not any("@example.com" in r for r in rejected) and "[EMAIL]" in rejected[0]
    cases = cases_from_examples(every)
    assert len(cases) == 10 and all(c.expected.endswith("The Acme Care Team") for c in cases)
