"""The iteration loop end to end on the sample company (tiny model): a registered model answers over the
real API and a reviewer corrects it by completion id; a file of house-style preference pairs (derived from
Acme's own answers) is imported with the CLI; `tailorlm iterate --rounds 2` then runs unattended — a
preference dataset, a DPO run from the current model, an evaluation against the parent, a registered
version — twice; the last model traces back to the feedback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from typer.testing import CliRunner

from helpers.serve import ServerThread, openai_client, single_torch_thread
from tailorlm.cli import app
from tailorlm.config import dump_project, parse_project
from tailorlm.dataset_splits import load_split
from tailorlm.examples import sample_company
from tailorlm.examples.house_style import SIGNATURE, house_style_pairs
from tailorlm.feedback import list_feedback, record, write_feedback
from tailorlm.ingest import ingest
from tailorlm.modeling import resolve_model
from tailorlm.prepare import prepare
from tailorlm.register import register
from tailorlm.serve.app import create_app
from tailorlm.serve.auth import KeyStore, create_key
from tailorlm.serve.engine import Engine
from tailorlm.serve.limits import Limits
from tailorlm.train import train

pytestmark = pytest.mark.integration


def test_feedback_from_the_api_and_a_file_then_two_unattended_rounds(workspace, tiny_model_dir, tmp_path):
    acme = sample_company()
    project = parse_project(
        {
            "project": "acme",
            "base_model": str(tiny_model_dir),
            "system_prompt": "You are the Acme Care Team.",
            "sources": [
                {"path": str(acme / "faq.csv"), "kind": "faq"},
                {"path": str(acme / "support.mbox"), "kind": "email"},
            ],
            "prepare": {"pii": "off", "split": {"test": 0.1, "val": 0.05}},
            "train": {
                "method": "lora",
                "max_steps": 6,
                "batch_size": 8,
                "learning_rate": 3e-3,
                "max_length": 128,
                "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            },
            "evaluate": {"max_new_tokens": 8, "batch_size": 16},
            "iterate": {"rounds": 2, "require_gain": False, "review_items": 5},
        },
        root=workspace.root,
    )
    (workspace.root / "tailorlm.yaml").write_text(dump_project(project))
    dataset = prepare(workspace, project, ingest=ingest).dataset
    register(workspace, train(workspace, project).run.id, name="acme", system_prompt=project.system_prompt)

    # a reviewer corrects an answer of the served model, by the id the server returned
    key = create_key(workspace, "chat", name="helpdesk")[1]
    with single_torch_thread():
        engine = Engine(tiny_model_dir, max_batch_size=2, max_queue=4, threads=1)
        engine.load("acme", resolve_model(workspace, "acme"))
        api = create_app(
            engine,
            auth=KeyStore(workspace),
            limits=Limits(),
            request_log=None,
            feedback=lambda item: record(workspace, item),
        )
        with ServerThread(api) as server:
            question = [{"role": "user", "content": "How long do I have to return something?"}]
            answer = openai_client(server.url, key).chat.completions.create(
                model="acme", messages=question, max_tokens=8
            )
            response = httpx2.post(
                f"{server.url}/v1/feedback",
                headers={"authorization": f"Bearer {key}"},
                json={
                    "completion_id": answer.id,
                    "rating": "down",
                    "corrected": f"You have 30 days from delivery; we e-mail you a free label.\n\n{SIGNATURE}",
                },
                timeout=60,
            )
        engine.close()
    assert response.status_code == 200, response.text

    # house-style pairs from Acme's own answers, imported as a file
    pairs_file = tmp_path / "house-style.jsonl"
    write_feedback(pairs_file, house_style_pairs(load_split(workspace, dataset, "train")[:60]), "openai")
    runner = CliRunner()
    imported = runner.invoke(
        app,
        [
            "feedback",
            "import",
            str(pairs_file),
            "--reviewer",
            "style-guide",
            "--workspace",
            str(workspace.root),
            "--json",
        ],
    )
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["added"] > 50
    assert {f.source for f in list_feedback(workspace)} == {"api", "file"}

    done = runner.invoke(app, ["iterate", "--workspace", str(workspace.root), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert [r["registered"] for r in report["rounds"]] == ["acme@v2", "acme@v3"] and report["model"] == "acme@v3"
    assert all(r["gain"]["n"] > 0 and r["feedback_gain"]["n"] > 0 for r in report["rounds"])
    assert report["stopped"] == "2 round(s) done"
    # every round recorded: in the report the verb printed, in report.md and in the audit log
    shown = (Path(report["path"]) / "report.md").read_text()
    assert "| 1 | acme@v1 |" in shown and "| 2 | acme@v2 |" in shown
    rounds = [e for e in workspace.audit.events() if e["action"] == "iterate.round"]
    assert [e["details"]["round"] for e in rounds] == [1, 2]
    assert {e["details"]["iteration"] for e in rounds} == {report["id"]}

    lineage = workspace.registry.lineage(workspace.resolve("model", "acme@v3").id)
    kinds = {a.kind for a in lineage}
    assert {"run", "dataset", "model"} <= kinds
    datasets = [a for a in lineage if a.kind == "dataset"]
    assert any(source.endswith("feedback.jsonl") for a in datasets for source in a.meta.sources)  # type: ignore[union-attr]
