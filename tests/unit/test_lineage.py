"""Lineage both ways on the sample company's own files: a model back to exactly the files its examples came
from (hash, rows, messages), a source file forward to its dataset, run, model and exports; every name
form; unknown names are one clear error. And the compliance documents built from the same registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.acme import acme_workspace
from tailorlm.cli import app
from tailorlm.dataset_splits import SPLITS, load_split
from tailorlm.errors import NotFound
from tailorlm.export import export
from tailorlm.lineage import model_lineage, source_lineage
from tailorlm.registry import ModelMeta
from tailorlm.workspace import sha256_file

runner = CliRunner()


@pytest.fixture(scope="module")
def acme(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread):
    ws, project, run_id = acme_workspace(tmp_path_factory.mktemp("lineage"), tiny_model_dir)
    yield ws, project, run_id
    ws.close()


def tailorlm(*args: object):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", "COLUMNS": "100"})


def test_model_traces_back_to_exactly_the_files_of_its_examples(acme) -> None:
    ws, project, run_id = acme
    dataset = ws.resolve("dataset", "acme-support@v1")
    # What the dataset's examples say they came from, read independently of the lineage code.
    labels = [example.meta["file"] for split in SPLITS for example in load_split(ws, dataset, split)]
    files = {str(project.resolve(Path(label))) for label in labels}
    assert {Path(f).name for f in files} == {"faq.csv", "support.mbox"}

    found = model_lineage(ws, "acme-support@v1")
    trained = {use.path: use for use in found.sources if use.used_for == "examples"}
    assert set(trained) == files
    for path, use in trained.items():
        assert use.sha256 == sha256_file(Path(path))
        assert sum(use.examples.values()) == sum(1 for label in labels if str(project.resolve(Path(label))) == path)
    faq = trained[str(project.resolve(Path("faq.csv")))]
    assert "row 2" in faq.locators and faq.recipe == "faq" and faq.synthetic == {}
    assert trained[str(project.resolve(Path("support.mbox")))].recipe == "email"
    chunks_only = {Path(use.path).name for use in found.sources if use.used_for == "chunks"}
    assert chunks_only == {"refund-policy.md", "privacy-notice.md"}
    assert {row["id"] for row in found.chain} >= {"model-acme-support-v1", run_id, "dataset-acme-support-v1"}

    # Every name form works, as a table and as JSON.
    for reference in ("acme-support", "acme-support@v1", "model-acme-support-v1", run_id):
        result = tailorlm("lineage", "model", reference, "-w", ws.root, "--json")
        assert result.exit_code == 0, result.output
        assert {Path(s["path"]).name for s in json.loads(result.stdout)["sources"] if s["used_for"] == "examples"} == {
            "faq.csv",
            "support.mbox",
        }
    table = tailorlm("lineage", "model", "acme-support@v1", "-w", ws.root).stdout
    assert "faq.csv" in table and "train " in table and "none (retrieval chunks only)" in table


def test_source_traces_forward_to_models_and_exports(acme, tmp_path: Path) -> None:
    ws, project, run_id = acme
    export(ws, "acme-support@v1", "merge", output=tmp_path / "merged", check=False)
    faq = project.resolve(Path("faq.csv"))
    found = source_lineage(ws, faq)
    kinds = {row["kind"]: row["id"] for row in found.chain}
    assert kinds["dataset"] == "dataset-acme-support-v1" and kinds["run"] == run_id
    assert kinds["model"] == "model-acme-support-v1"
    assert [use.path for use in found.sources] == [str(faq)]
    assert [(d["action"], d["where"]) for d in found.deployments] == [("export", str(tmp_path / "merged"))]
    # By name only, too; and a copy of the file elsewhere is the same content.
    assert source_lineage(ws, "faq.csv").chain == found.chain
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(faq.read_bytes())
    assert source_lineage(ws, copy).chain == found.chain
    result = tailorlm("lineage", "source", faq, "-w", ws.root)
    assert result.exit_code == 0 and "model-acme-support-v1" in result.stdout and "export" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lineage", "model", "acme-support@v9"), "no model matches acme-support@v9"),
        (("lineage", "model", "run-20250101-000000-abcdef"), "no run 'run-20250101-000000-abcdef'"),
        (("lineage", "source", "nowhere.csv"), "no ingested file matches 'nowhere.csv'"),
        (("lineage", "acme-support@v9"), "nothing in"),
    ],
)
def test_unknown_names_are_one_clear_error(acme, args, message) -> None:
    ws, _, _ = acme
    result = tailorlm(*args, "-w", ws.root)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    with pytest.raises(NotFound):
        model_lineage(ws, "nope")


def test_documents_build_from_the_registry(acme, tmp_path: Path) -> None:
    ws, project, run_id = acme
    result = tailorlm("docs", "build", "-w", ws.root, "--output", tmp_path / "compliance", "--json")
    assert result.exit_code == 0, result.output
    files = {Path(f).relative_to(tmp_path / "compliance").as_posix() for f in json.loads(result.stdout)["files"]}
    assert files == {
        "models/acme-support-v1/MODEL_CARD.md",
        "datasets/acme-support-v1/DATASHEET.md",
        "ANNEX_IV.md",
        "ART30_RECORD.md",
    }
    card = (tmp_path / "compliance" / "models" / "acme-support-v1" / "MODEL_CARD.md").read_text()
    model = ws.resolve("model", "acme-support@v1").meta_as(ModelMeta)
    faq = project.resolve(Path("faq.csv"))
    for fact in (model.base_model, f"method: {model.method}", run_id, "acme-support@v1", sha256_file(faq)[:16]):
        assert fact in card, fact
    assert "r: 4" in card and "Approval: pending" in card and "TO FILL" in card
    dataset_card = json.loads((ws.path_of(ws.resolve("dataset", "acme-support@v1")) / "card.json").read_text())
    found = dataset_card["pii"]["counts"]
    assert found and all(
        f"{kind} ({count})" in (tmp_path / "compliance" / "ART30_RECORD.md").read_text()
        for kind, count in found.items()
    )
    annex = (tmp_path / "compliance" / "ANNEX_IV.md").read_text()
    assert "acme-support@v1" in annex and "## 5. Risk management system" in annex and "TO FILL" in annex
    sheet = (tmp_path / "compliance" / "datasets" / "acme-support-v1" / "DATASHEET.md").read_text()
    assert run_id in sheet and "TO FILL" in sheet
    assert ws.audit.events()[-1]["action"] == "docs.build"
