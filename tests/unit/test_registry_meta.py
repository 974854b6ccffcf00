"""Registry rows are typed: a closed set of kinds and statuses, one validated meta model per kind, and
rows written by earlier versions still read."""

from __future__ import annotations

import json

import pytest

from tailorlm.registry import (
    KINDS,
    Artifact,
    BaseMeta,
    BaseOrigin,
    DatasetMeta,
    DocumentMeta,
    EvaluationMeta,
    GateVerdict,
    MetaError,
    RunMeta,
)
from tailorlm.registry.meta import META_MODELS
from tailorlm.workspace import Workspace

RUN = {"method": "lora", "base_model": "models/base", "dataset": "dataset-x-v1"}


def run_artifact(**meta) -> Artifact:
    return Artifact(id="run-1", kind="run", name="x", hash="h", path="runs/run-1", meta={**RUN, **meta})


def test_every_kind_has_a_meta_model() -> None:
    assert set(META_MODELS) == set(KINDS)
    assert all(model.kind == kind for kind, model in META_MODELS.items())


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (
            {"metrics": {"train_loss": "low"}},
            r"run-1 \(run\): meta\.metrics\.train_loss: Input should be a valid number",
        ),
        ({"artefact": "adapter"}, r"meta\.artefact: Extra inputs are not permitted"),
        ({"base_model": None}, r"meta\.base_model: Input should be a valid string"),
    ],
)
def test_a_wrong_meta_fails_where_it_is_written_naming_the_field(meta: dict, message: str) -> None:
    with pytest.raises(MetaError, match=message):
        run_artifact(**meta)


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(MetaError, match=r"meta\.dataset: Field required"):
        Artifact(id="run-1", kind="run", name="x", hash="h", path="p", meta={"method": "lora", "base_model": "b"})
    with pytest.raises(MetaError, match=r"meta\.parameters: Field required"):
        base = {"sha256": "s", "dtype": "bfloat16", "architecture": "LlamaForCausalLM"}
        Artifact(id="base-1", kind="base", name="b", hash="h", path="p", meta=base)


def test_kind_and_status_are_closed() -> None:
    with pytest.raises(MetaError, match=r"unknown artifact kind 'runs'; known: document, dataset, run"):
        Artifact(id="x", kind="runs", name="x", hash="h", path="p", meta={})  # type: ignore[arg-type]
    with pytest.raises(MetaError, match=r"unknown artifact status 'done'; known: running, complete"):
        Artifact(id="run-1", kind="run", name="x", hash="h", path="p", meta=RUN, status="done")  # type: ignore[arg-type]


def test_a_meta_of_another_kind_is_refused() -> None:
    with pytest.raises(MetaError, match="a run takes RunMeta, not DatasetMeta"):
        Artifact(id="run-1", kind="run", name="x", hash="h", path="p", meta=DatasetMeta())


def test_writes_are_validated_even_past_model_copy(workspace: Workspace) -> None:
    run = workspace.registry.add(run_artifact())
    sneaky = run.meta_as(RunMeta).model_copy(update={"metrics": {"loss": "nan-ish"}})  # model_copy skips validation
    with pytest.raises(MetaError, match=r"meta\.metrics\.loss"):
        workspace.registry.update(run.id, status="complete", meta=sneaky)
    with pytest.raises(MetaError, match="unknown artifact status 'done'"):
        workspace.registry.update(run.id, status="done")
    assert workspace.registry.get(run.id).status == "complete"  # nothing was written
    updated = workspace.registry.update(run.id, meta=run.meta_as(RunMeta).replace(metrics={"train_loss": 1.5}))
    assert updated.meta_as(RunMeta).metrics == {"train_loss": 1.5}


def test_readers_get_attributes_and_a_clear_error_for_the_wrong_kind(workspace: Workspace) -> None:
    workspace.registry.add(run_artifact())
    run = workspace.registry.get("run-1")
    assert isinstance(run.meta, RunMeta) and run.meta.base_model == "models/base"
    assert run.meta.artifact == "adapter" and run.meta.metrics == {}
    with pytest.raises(MetaError, match="run-1 is a run, not a dataset"):
        run.meta_as(DatasetMeta)


def test_a_base_model_row_round_trips(workspace: Workspace) -> None:
    meta = BaseMeta(
        sha256="ab" * 32,
        origin=BaseOrigin(file="/models/tiny.gguf", package="tailorlm-tiny", version="1.0"),
        license="apache-2.0",
        dtype="bfloat16",
        architecture="LlamaForCausalLM",
        parameters=2_000_000,
    )
    workspace.registry.add(
        Artifact(id="base-tiny", kind="base", name="tiny", hash="ab" * 32, path="bases/tiny", meta=meta)
    )
    assert workspace.registry.find("base")[0].meta == meta


def insert_raw(workspace: Workspace, artifact_id: str, kind: str, meta: dict, status: str = "complete") -> None:
    """A row as an earlier TailorLM wrote it, straight into SQLite."""
    workspace.registry.execute(
        "INSERT INTO artifacts (id, kind, name, version, hash, key, path, status, created_at, meta)"
        " VALUES (?, ?, 'x', NULL, 'h', NULL, 'p', ?, '2026-11-28T10:00:00+00:00', ?)",
        (artifact_id, kind, status, json.dumps(meta)),
    )


def test_rows_written_by_earlier_versions_read(workspace: Workspace) -> None:
    insert_raw(workspace, "doc-1", "document", {})
    insert_raw(workspace, "run-1", "run", {**RUN, "obsolete_key": 3})  # no artifact, metrics, plan, data
    insert_raw(
        workspace,
        "eval-1",
        "evaluation",
        {"scores": {"run-1": {"rouge_l": 0.4}}, "gate": {"passed": False, "unmet": ["rouge_l 0.4 (needs >= 0.5)"]}},
    )
    gate_of_another_version = {"passed": True, "verdict_note": "a key this version does not know"}
    insert_raw(workspace, "eval-2", "evaluation", {"gates": {"run-1": gate_of_another_version}})

    document = workspace.registry.get("doc-1").meta_as(DocumentMeta)
    assert document.source_path is None and document.warnings == []
    run = workspace.registry.get("run-1").meta_as(RunMeta)
    assert run.artifact == "adapter" and run.metrics == {} and "obsolete_key" not in run.model_dump()
    evaluation = workspace.registry.get("eval-1").meta_as(EvaluationMeta)
    assert evaluation.gates is None and evaluation.gate_for("run-1") == GateVerdict(
        passed=False, unmet=["rouge_l 0.4 (needs >= 0.5)"]
    )
    assert workspace.registry.get("eval-2").meta_as(EvaluationMeta).gate_for("run-1") == GateVerdict(passed=True)
    with pytest.raises(MetaError, match=r"meta\.gates\.run-1\.verdict_note: Extra inputs are not permitted"):
        Artifact(
            id="eval-3",
            kind="evaluation",
            name="x",
            hash="h",
            path="p",
            meta={"gates": {"run-1": gate_of_another_version}},
        )


def test_a_damaged_row_names_the_artifact_and_field(workspace: Workspace) -> None:
    insert_raw(workspace, "run-2", "run", {**RUN, "metrics": {"loss": "?"}})
    with pytest.raises(MetaError, match=r"run-2 \(run\): meta\.metrics\.loss"):
        workspace.registry.get("run-2")


def test_the_gate_for_a_run_prefers_its_own_verdict() -> None:
    own = GateVerdict(passed=True, candidate="run-a")
    combined = GateVerdict(passed=False, unmet=["run-b: accuracy 0.1 (needs >= 0.9)"])
    evaluation = EvaluationMeta(gate=combined, gates={"run-a": own, "run-b": GateVerdict(passed=False)})
    assert evaluation.gate_for("run-a") == own
    assert evaluation.gate_for("run-c") == combined  # not compared one by one: the combined verdict
    assert EvaluationMeta().gate_for("run-a") is None
