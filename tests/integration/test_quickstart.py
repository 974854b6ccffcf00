"""The journey end to end through the real CLI: `tailorlm quickstart --smoke` on the sample company, then
the verbs a user runs next against the same workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def tailorlm(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tailorlm {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workspace = tmp_path_factory.mktemp("quickstart") / "ws"
    with pytest.MonkeyPatch.context() as patch:  # every connection beyond loopback that is tried, recorded
        patch.setenv("TAILORLM_NETWORK_TRACE", str(workspace.parent / "network.jsonl"))
        result = tailorlm("quickstart", "--smoke", "--workspace", str(workspace))
    return workspace, result.stdout


def test_quickstart_tries_no_connection_beyond_loopback(journey):
    workspace, _ = journey
    trace = workspace.parent / "network.jsonl"
    assert not trace.exists() or trace.read_text() == ""
    events = [json.loads(line)["action"] for line in (workspace / "audit.jsonl").read_text().splitlines()]
    assert "network.refused" not in events


def test_quickstart_runs_every_stage(journey):
    workspace, output = journey
    assert "DEMO model" in output
    for stage in ("1/4 prepare", "2/4 train", "3/4 evaluate", "4/4 register"):
        assert stage in output
    assert f"tailorlm serve --workspace {workspace}" in output
    summary = evaluation_of(workspace, "acme-support")
    candidates = json.dumps(summary)
    for candidate in ("base", "few_shot", "rag"):
        assert candidate in candidates
    assert next((workspace / "evals").glob("*/report.html")).stat().st_size > 1000
    assert list((workspace / "models").glob("acme-support/v1/model.json"))


def evaluation_of(workspace: Path, dataset: str) -> dict:
    """The summary of the quickstart's evaluation on `dataset` (the journey makes one per project)."""
    summaries = [json.loads(p.read_text()) for p in (workspace / "evals").glob("*/summary.json")]
    return next(s for s in summaries if s["dataset"]["name"] == dataset)


def test_quickstart_routes_the_sample_tickets_against_the_ladder(journey, tmp_path):
    workspace, output = journey
    assert "Ticket routing" in output and "tiny demo model" in output
    summary = evaluation_of(workspace, "acme-tickets-category")
    assert set(summary["scores"]) == {"label_similarity", "knn", "tfidf", "finetuned"}
    assert all(0 <= s["accuracy"]["value"] <= 1 and s["accuracy"]["n"] >= 30 for s in summary["scores"].values())
    assert summary["confidence"]["finetuned"]["curve"]
    inbox = tmp_path / "inbox.csv"
    inbox.write_text("body\nMy invoice shows the wrong amount\n", encoding="utf-8")
    routed = tailorlm("classify", "acme-tickets-category", str(inbox), "--workspace", str(workspace), "--json")
    assert json.loads(routed.stdout)["rows"] == 1 and (tmp_path / "inbox.classified.csv").is_file()


def test_run_again_skips_unchanged_stages(journey):
    workspace, _ = journey
    output = tailorlm("run", "--workspace", str(workspace)).stdout
    assert "(unchanged)" in output
    assert output.count("(unchanged)") >= 2  # dataset and run


def test_lists_lineage_and_audit(journey):
    workspace, _ = journey
    runs = tailorlm("runs", "--workspace", str(workspace)).stdout
    assert "complete" in runs and "lora" in runs
    models = tailorlm("models", "--workspace", str(workspace)).stdout
    assert "acme-support@v1" in models
    lineage = tailorlm("lineage", "model-acme-support-v1", "--workspace", str(workspace)).stdout
    assert "faq.csv" in lineage and "support.mbox" in lineage and "dataset" in lineage
    audit = tailorlm("audit", "--workspace", str(workspace)).stdout
    assert "audit chain intact" in audit


def test_lineage_lists_exactly_the_example_files(journey):
    workspace, _ = journey
    found = json.loads(tailorlm("lineage", "model", "acme-support@v1", "--workspace", str(workspace), "--json").stdout)
    used = {Path(s["path"]).name: s for s in found["sources"] if s["used_for"] == "examples"}
    dataset = workspace / "datasets" / "acme-support" / "v1"
    expected = {
        Path(json.loads(line)["meta"]["file"]).name
        for split in ("train", "val", "test")
        for line in (dataset / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert set(used) == expected == {"faq.csv", "support.mbox"}
    assert all(len(s["sha256"]) == 64 for s in used.values())


def test_data_inspect_marks_trained_tokens(journey):
    workspace, _ = journey
    output = tailorlm("data", "inspect", "acme-support", "--workspace", str(workspace), "-n", "1").stdout
    assert "trained (loss)" in output and "<|im_start|>assistant" in output


def test_validate_names_the_bad_field(tmp_path):
    bad = tmp_path / "tailorlm.yaml"
    bad.write_text("project: x\nbase_model: /nowhere\ntrain: {method: sft}\n")
    result = tailorlm("validate", str(bad), check=False)
    assert result.returncode == 1 and "train.method" in result.stderr


def test_train_without_model_dir_is_one_clear_error(journey, tmp_path):
    workspace, _ = journey
    project = tmp_path / "p.yaml"
    project.write_text(f"project: acme-support\nbase_model: {tmp_path / 'missing'}\n")
    result = tailorlm("train", "--workspace", str(workspace), "--project", str(project), check=False)
    assert result.returncode == 1
    assert "base model directory not found" in result.stderr and "Traceback" not in result.stderr


def test_eval_gate_exit_codes(journey, tmp_path):
    import yaml

    workspace, _ = journey
    project = yaml.safe_load((workspace / "tailorlm.yaml").read_text())
    project["evaluate"]["objectives"] = {"rouge_l": 0.99}
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(project))
    failed = tailorlm("eval", "--gate", "--workspace", str(workspace), "--project", str(strict), check=False)
    assert failed.returncode == 1 and "gate failed" in failed.stdout and "rouge_l" in failed.stdout
    refused = tailorlm("register", "--workspace", str(workspace), "--project", str(strict), check=False)
    assert refused.returncode == 1 and "failed the gate" in refused.stderr
    project["evaluate"]["objectives"] = {"rouge_l": 0.0}
    easy = tmp_path / "easy.yaml"
    easy.write_text(yaml.safe_dump(project))
    passed = tailorlm("eval", "--gate", "--workspace", str(workspace), "--project", str(easy))
    assert "gate passed" in passed.stdout


def test_keys_are_shown_once_and_listed_without_secret(journey):
    workspace, _ = journey
    created = tailorlm("keys", "create", "--scope", "admin", "--name", "ops", "--workspace", str(workspace)).stdout
    secret = created.strip().splitlines()[-1]
    listed = tailorlm("keys", "list", "--workspace", str(workspace)).stdout
    assert "ops" in listed and "admin" in listed and secret not in listed
