"""`tailorlm classify MODEL FILE`: a CSV and a JSONL labelled by a classification run, results beside the
input; a row without text is marked and the rest still classified; a bad column or a generative model is
a clear error with exit code 1."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.classify import ticket_examples
from helpers.data import register_dataset
from tailorlm.cli import app
from tailorlm.config import parse_project
from tailorlm.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def classifier_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from tailorlm.workspace import Workspace

    root = tmp_path_factory.mktemp("classify-cli")
    workspace = Workspace(root / "ws")
    register_dataset(workspace, ticket_examples(96), name="tickets", val=24, test=0)
    project = parse_project(
        {
            "project": "tickets",
            "base_model": str(tiny_model_dir),
            "task": "classify",
            "train": {"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0},
        },
        root=root,
    )
    run = train(workspace, project).run.id
    workspace.close()
    return root / "ws", run


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_a_csv_is_labelled_beside_itself(classifier_run, tmp_path):
    ws, run = classifier_run
    source = tmp_path / "inbox.csv"
    source.write_text("id,body\n1,refund invoice please\n2,\n3,parcel shipped days\n", encoding="utf-8")
    result = invoke("classify", run, str(source), "--workspace", str(ws), "--column", "body", "--min-confidence", "0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "inbox.classified.csv").open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert [r["label"] for r in rows] == ["billing", "", "shipping"]
    assert rows[1]["error"] == "empty text" and rows[0]["abstained"] == "False"
    assert "3 rows" in result.output


def test_a_jsonl_gets_probabilities_and_json_output(classifier_run, tmp_path):
    ws, run = classifier_run
    source = tmp_path / "mails.jsonl"
    source.write_text(json.dumps({"text": "restart hub button"}) + "\n", encoding="utf-8")
    result = invoke("classify", run, str(source), "--workspace", str(ws), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 1 and summary["output"].endswith("mails.classified.jsonl")
    [row] = [json.loads(line) for line in (tmp_path / "mails.classified.jsonl").read_text().splitlines()]
    assert set(row["probabilities"]) == {"billing", "shipping", "technical"}


def test_a_missing_column_is_named_with_the_columns_there(classifier_run, tmp_path):
    ws, run = classifier_run
    source = tmp_path / "inbox.csv"
    source.write_text("id,subject\n1,hello\n", encoding="utf-8")
    result = invoke("classify", run, str(source), "--workspace", str(ws))
    assert result.exit_code == 1
    assert "none of the text columns" in result.output and "its columns: id, subject" in result.output
    assert not (tmp_path / "inbox.classified.csv").exists()
