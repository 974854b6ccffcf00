"""Data-subject requests on the sample company's files with a person planted in them: `subject find` finds
her in clear and, through provenance, in examples whose e-mail was redacted; `subject erase` writes a new
dataset version without them, removes her documents, marks the model needs-retraining and audits only a
keyed hash; a request matching nothing changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.acme import acme_workspace
from tailorlm.cli import app
from tailorlm.dataset_splits import SPLITS, load_split
from tailorlm.governance import approval_state
from tailorlm.subjects import SubjectError, erase, find

EMAIL = "ottilie.brenneke@example.net"
NAME = "Ottilie Brenneke"
PLANT = {
    "faq.csv": "any Parcelway or SwiftLine location.=>any Parcelway or SwiftLine location, or ask "
    f"{NAME} ({EMAIL}) at the returns desk.",
    "support.mbox": f"From: Sanjay Quarry <quarry.s@example.com>=>From: {NAME} <{EMAIL}>",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def planted(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread):
    ws, _, _ = acme_workspace(tmp_path_factory.mktemp("subject"), tiny_model_dir, plant=PLANT)
    yield ws
    ws.close()


def tailorlm(*args: object):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", "COLUMNS": "200"})


def test_find_and_erase_a_planted_person(planted) -> None:
    ws = planted
    dataset = ws.resolve("dataset", "acme-support@v1")
    everything = [e for split in SPLITS for e in load_split(ws, dataset, split)]
    assert not any(EMAIL in json.dumps(e.to_json()) for e in everything)  # redacted by prepare

    by_email = find(ws, EMAIL)
    assert {Path(hit.path).name for hit in by_email.documents} == {"faq.csv", "support.mbox"}
    assert [hit.dataset for hit in by_email.datasets] == ["dataset-acme-support-v1"]
    hit = by_email.datasets[0]
    assert hit.count == 2 and hit.in_clear == 0  # both only through provenance: the e-mail was redacted
    assert by_email.models == ["model-acme-support-v1"]
    by_name = find(ws, "  ottilie   BRENNEKE ")  # in clear, or (redacted as [PERSON]) through provenance
    assert by_name.datasets[0].count == 2
    assert by_name.subject == find(ws, NAME).subject != by_email.subject

    shown = tailorlm("subject", "find", EMAIL, "-w", ws.root, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["datasets"][0]["count"] == 2

    result = tailorlm("subject", "erase", EMAIL, "--yes", "-w", ws.root)
    assert result.exit_code == 0, result.output
    assert "dataset-acme-support-v1 → dataset-acme-support-v2" in result.output and "needs-retraining" in result.output
    new = ws.resolve("dataset", "acme-support@v2")
    kept = [e for split in SPLITS for e in load_split(ws, new, split)]
    assert len(kept) == len(everything) - 2
    assert not any(NAME in json.dumps(e.to_json()) for e in kept)
    assert new.meta.counts == {s: len(load_split(ws, new, s)) for s in SPLITS}  # type: ignore[union-attr]
    assert "erasures" in json.loads((ws.path_of(new) / "card.json").read_text())
    assert EMAIL not in "".join(p.read_text() for p in ws.documents_dir.glob("*.jsonl"))
    assert not [h for h in find(ws, EMAIL).datasets if h.dataset == new.id]

    notices = approval_state(ws, "acme-support@v1").notices
    assert [n["notice"] for n in notices] == ["needs-retraining"] and "not anonymous" in notices[0]["reason"]
    audit = ws.audit.path.read_text()
    assert EMAIL not in audit and NAME.lower() not in audit.lower() and by_email.subject in audit
    assert ws.audit.verify().ok


def test_erase_matching_nothing_changes_nothing(planted) -> None:
    ws = planted
    datasets = [a.id for a in ws.registry.find("dataset")]
    documents = {p.name: p.read_bytes() for p in ws.documents_dir.glob("*.jsonl")}
    with pytest.raises(SubjectError, match="nothing was changed"):
        erase(ws, "nobody.here@example.org")
    result = tailorlm("subject", "erase", "Nobody Here", "--yes", "-w", ws.root)
    assert result.exit_code == 1 and "nothing was changed" in result.output and "Traceback" not in result.output
    assert [a.id for a in ws.registry.find("dataset")] == datasets
    assert {p.name: p.read_bytes() for p in ws.documents_dir.glob("*.jsonl")} == documents
    assert tailorlm("subject", "find", "Jo", "-w", ws.root).exit_code == 1  # too short to identify anyone
