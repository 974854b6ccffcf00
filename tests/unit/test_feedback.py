"""Feedback: records stored once in the registry, files imported in every format (bad lines named,
nothing half-imported), exported back, and derived into corrections, pairs and single ratings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailorlm.cli import app
from tailorlm.feedback import (
    FeedbackFileError,
    FeedbackRecord,
    derive,
    export_rows,
    list_feedback,
    read_feedback,
    record,
    record_many,
)

ASK = [{"role": "user", "content": "Where is my parcel?"}]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_record_is_stored_once_and_listed_with_filters(workspace):
    item = FeedbackRecord(
        messages=ASK,
        answer="No idea.",
        rating="down",
        corrected="We will track it today.",
        reviewer="ana",
        source="playground",
        model="acme@v1",
        decoding={"temperature": 0.0},
    )
    record(workspace, item)
    record(workspace, FeedbackRecord.model_validate(item.model_dump() | {"id": "", "time": "2030-01-01T00:00:00"}))
    found = list_feedback(workspace)
    assert [f.id for f in found] == [item.id]
    assert found[0].corrected == "We will track it today." and found[0].decoding == {"temperature": 0.0}
    assert list_feedback(workspace, model="acme@v2") == []
    assert len(list_feedback(workspace, source="playground", reviewer="ana")) == 1


def test_a_record_needs_a_rating_or_a_correction_and_a_prompt_ending_with_the_user():
    with pytest.raises(ValueError, match="rating, a corrected answer"):
        FeedbackRecord(messages=ASK, answer="x")
    with pytest.raises(ValueError, match="end with the user"):
        FeedbackRecord(messages=[*ASK, {"role": "assistant", "content": "a"}], answer="x", rating="up")
    with pytest.raises(ValueError):
        FeedbackRecord(messages=ASK, answer="x", rating=6)


def test_every_import_format_reads(tmp_path):
    rows = [
        {
            "input": {"messages": ASK},
            "preferred_output": [{"role": "assistant", "content": "We track it."}],
            "non_preferred_output": [{"role": "assistant", "content": "Dunno."}],
        },
        {"prompt": "Refund?", "chosen": "We refund within 5 days.", "rejected": "No."},
        {
            "prompt": ASK,
            "chosen": [{"role": "assistant", "content": "A"}],
            "rejected": [{"role": "assistant", "content": "B"}],
        },
        {
            "chosen": [*ASK, {"role": "assistant", "content": "C"}],
            "rejected": [*ASK, {"role": "assistant", "content": "D"}],
        },
        {"prompt": "Hours?", "completion": "9 to 5, Monday to Friday.", "label": True},
        {"messages": ASK, "answer": "Soon.", "rating": 2, "corrected": "Tomorrow by noon."},
    ]
    records = read_feedback(write_jsonl(tmp_path / "f.jsonl", rows), reviewer="bob")
    assert len(records) == 4 * 2 + 1 + 1
    assert {r.reviewer for r in records} == {"bob"} and {r.source for r in records} == {"file"}
    openai_pair = records[:2]
    assert [r.rating for r in openai_pair] == ["up", "down"] and openai_pair[0].pair == openai_pair[1].pair
    assert records[-2].rating == "up" and records[-2].messages[0].content == "Hours?"


def test_bad_lines_are_named_and_nothing_is_imported(tmp_path, workspace):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "ok", "completion": "fine", "label": True},
            "{not json",
            {"prompt": "x", "completion": "y", "label": "yes"},
            {"foo": 1},
            {"messages": ASK, "answer": "a", "rating": 9},
        ],
    )
    with pytest.raises(FeedbackFileError) as caught:
        read_feedback(path)
    message = str(caught.value)
    for line in (2, 3, 4, 5):
        assert f"bad.jsonl:{line}:" in message
    assert "bad.jsonl:1:" not in message and "label must be true or false" in message

    result = CliRunner().invoke(app, ["feedback", "import", str(path), "--workspace", str(workspace.root)])
    assert result.exit_code == 1 and "bad.jsonl:2" in result.output and "Traceback" not in result.output
    assert list_feedback(workspace) == []


def test_derive_turns_corrections_paired_and_single_ratings_into_training_material():
    other = [{"role": "user", "content": "Can I return shoes?"}]
    derived = derive(
        [
            FeedbackRecord(messages=ASK, answer="Dunno.", rating="down", corrected="We track it today."),
            FeedbackRecord(messages=other, answer="Yes, within 30 days.", rating=5),
            FeedbackRecord(messages=other, answer="No.", rating=1),
            FeedbackRecord(messages=[{"role": "user", "content": "Hi"}], answer="Hello!", rating="up"),
            FeedbackRecord(messages=[{"role": "user", "content": "Price?"}], answer="Ask sales.", rating=3),
        ]
    )
    assert sorted((p.chosen, p.rejected, p.why) for p in derived.pairs) == [
        ("We track it today.", "Dunno.", "corrected"),
        ("Yes, within 30 days.", "No.", "rated"),
    ]
    assert [c.completion for c in derived.corrected] == ["We track it today."]
    assert [(s.completion, s.desirable) for s in derived.singles] == [("Hello!", True)]
    assert derived.neutral == 1


def test_cli_import_list_export_round_trip(tmp_path, workspace):
    source = write_jsonl(
        tmp_path / "prefs.jsonl",
        [{"prompt": f"Question {i}?", "chosen": f"We answer {i}.", "rejected": f"no {i}"} for i in range(3)],
    )
    runner = CliRunner()
    ws = ["--workspace", str(workspace.root)]
    first = runner.invoke(app, ["feedback", "import", str(source), "--reviewer", "ana", *ws, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) | {"file": ""} == {"file": "", "records": 6, "added": 6, "already": 0}
    again = runner.invoke(app, ["feedback", "import", str(source), "--reviewer", "ana", *ws, "--json"])
    assert json.loads(again.output)["already"] == 6

    listed = runner.invoke(app, ["feedback", "list", *ws, "--json"])
    assert len(json.loads(listed.output)) == 6

    out = tmp_path / "out.jsonl"
    exported = runner.invoke(app, ["feedback", "export", str(out), "--format", "openai", *ws])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and {r["preferred_output"][0]["content"] for r in rows} == {
        f"We answer {i}." for i in range(3)
    }
    # what we export, we import: same records (the pair ids match), nothing added
    assert len(read_feedback(out)) == 6
    kto = export_rows(list_feedback(workspace), "kto")
    assert sorted(r["label"] for r in kto) == [False] * 3 + [True] * 3
    records_out = tmp_path / "records.jsonl"
    runner.invoke(app, ["feedback", "export", str(records_out), *ws])
    stored = record_many(workspace, read_feedback(records_out))
    assert stored.added == [] and len(stored.already) == 6


def test_an_evaluated_answer_is_rated_from_the_report(tmp_path, tiny_model_dir, one_torch_thread):
    from helpers.data import train_registered
    from tailorlm.config import parse_project
    from tailorlm.evaluate import evaluate
    from tailorlm.workspace import Workspace, read_jsonl

    workspace = Workspace(tmp_path / "ws")
    run_id = train_registered(workspace, tiny_model_dir, "acme", max_steps=2)
    project = parse_project(
        {"project": "tiny", "base_model": str(tiny_model_dir), "evaluate": {"max_new_tokens": 4}}, root=tmp_path
    )
    result = evaluate(workspace, project, run=run_id, baselines=[])
    row = read_jsonl(result.path / "results.jsonl")[0]
    runner = CliRunner()
    ws = ["--workspace", str(workspace.root)]
    rated = runner.invoke(
        app,
        [
            "feedback",
            "rate",
            result.evaluation.id,
            row["case"],
            "--rating",
            "2",
            "--corrected",
            "We ship today.",
            "--reviewer",
            "ana",
            *ws,
            "--json",
        ],
    )
    assert rated.exit_code == 0, rated.output
    [stored] = list_feedback(workspace, source="evaluation")
    assert stored.rating == 2 and stored.answer == row["output"] and stored.model == run_id
    assert stored.messages[-1].content == row["input"] and f"case:{row['case']}" in stored.tags
    wrong = runner.invoke(app, ["feedback", "rate", result.evaluation.id, "nope", "--rating", "up", *ws])
    assert wrong.exit_code == 1 and "has no answer" in wrong.output and "Traceback" not in wrong.output
    workspace.close()
