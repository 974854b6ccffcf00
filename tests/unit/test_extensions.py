"""Each recipe of docs/architecture.md ("to add a reader / builder / metric / export target, add this
file and this line") proven: a throwaway one is registered here exactly as the doc says, with nothing
else edited, and the stage around it uses it. Each is unregistered afterwards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from tailorlm.checks import problems
from tailorlm.config import Project, Source, load_project
from tailorlm.documents import Document
from tailorlm.export import ExportContext
from tailorlm.formats.examples import Example

# --- a reader: one file in ingest/ with @reader(...) --------------------------------------------------


@pytest.fixture
def memo_reader():
    from tailorlm.ingest.readers import READERS, reader
    from tailorlm.ingest.source import SourceFile, decode_text

    @reader(".memo")
    def read_memo(path: Path) -> Iterator[Document]:
        """Reads a memo: a `Subject:` line, a blank line, then the body."""
        text, _encoding = decode_text(path.read_bytes())
        head, _, body = text.partition("\n\n")
        yield SourceFile.of(path, "memo").document(body.strip(), title=head.removeprefix("Subject:").strip())

    yield read_memo
    READERS.pop("memo")


def test_a_new_reader_is_one_registration(memo_reader, workspace, tmp_path):
    from tailorlm.documents import load_documents
    from tailorlm.ingest import ingest

    (tmp_path / "a.memo").write_text("Subject: Opening hours\n\nWe open at nine.\n", encoding="utf-8")
    report = ingest(workspace, [tmp_path / "a.memo"])
    assert [(f.status, f.documents) for f in report.files] == [("ingested", 1)]
    [document] = load_documents(workspace, [report.files[0].sha256])
    assert (document.title, document.text, document.reader) == ("Opening hours", "We open at nine.", "memo")


# --- a builder: one file in prepare/builders/ with @builder(...) -------------------------------------


@pytest.fixture
def notes_builder():
    from tailorlm.prepare.builders import BUILDERS, Reads, builder, source_ref

    @builder("notes", tasks=("chat", "generate"), reads=lambda source: Reads.columns([], text=True))
    def notes(documents: Sequence[Document], source: Source, project: Project) -> Iterator[Example]:
        """Notes → one chat example each: the title asks, the text answers."""
        for document in documents:
            yield Example.chat(
                system=project.system_prompt,
                user=f"What do our notes say about {document.title}?",
                assistant=document.text.strip(),
                source=source_ref(document, project),
            )

    yield notes
    BUILDERS.pop("notes")


NOTES = [
    ("billing", "Invoices go out on the first working day; write to ana.lopez@example.com with questions."),
    ("shipping", "Parcels leave the warehouse within two days and are tracked until they arrive."),
    ("returns", "A return is free within thirty days when the product comes back in its box."),
    ("warranty", "Every thermostat carries two years of warranty against manufacturing faults."),
    ("support hours", "The phone line answers from eight to six on weekdays, and chat runs on Saturdays."),
    ("firmware", "Updates install overnight; a device that misses one retries the following night."),
    ("privacy", "Usage data stays in the customer's region and is deleted after thirteen months."),
    ("installation", "Installers book a two-hour window and bring the wall plate for older wiring."),
    ("pairing", "Hold the hub button for five seconds until the ring blinks blue, then open the app."),
    ("batteries", "Sensors run three years on two AA cells; the app warns a month before they run out."),
]


def notes_project(root: Path, model: Path, task: str) -> Project:
    (root / "notes").mkdir(parents=True, exist_ok=True)
    for title, text in NOTES:
        (root / "notes" / f"{title.replace(' ', '-')}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    data = {
        "project": "notes",
        "base_model": str(model),
        "task": task,
        "sources": [{"path": "notes", "kind": "notes"}],
        "prepare": {"split": {"test": 0.2, "val": 0.0}},
    }
    (root / "tailorlm.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_project(root / "tailorlm.yaml")


def test_a_new_builder_is_one_registration(notes_builder, workspace, tmp_path, tiny_model_dir):
    from tailorlm.dataset_splits import load_split
    from tailorlm.ingest import ingest
    from tailorlm.prepare import PrepareError, prepare

    project = notes_project(tmp_path, tiny_model_dir, "chat")
    assert problems(project) == []
    result = prepare(workspace, project, ingest=ingest)
    examples = [e for split in ("train", "val", "test") for e in load_split(workspace, result.dataset, split)]
    assert len(examples) == len(NOTES) and result.card["sources"][0]["kind"] == "notes"
    billing = next(e for e in examples if "billing" in e.messages[-2].content)
    assert "ana.lopez@example.com" not in billing.target and "[EMAIL]" in billing.target  # `reads` → redacted

    wrong = notes_project(tmp_path, tiny_model_dir, "classify")
    expected = "sources[0].kind: 'notes' is not a source for task 'classify' (allowed: dataset, documents, table)"
    assert [str(p) for p in problems(wrong)] == [expected]
    with pytest.raises(PrepareError, match=r"sources\[0\]\.kind: 'notes' is not a source"):
        prepare(workspace, wrong, ingest=ingest)


# --- a metric: one function in evaluate/metrics/ with @metric(...) ------------------------------------


@pytest.fixture
def thanks_metric():
    from tailorlm.evaluate.metrics import _REGISTRY, MetricResult, mean_or_nan, metric

    @metric("says_thanks", tasks=("chat",), default=False)
    def says_thanks(predictions: list[str], cases: list) -> MetricResult:
        """Share of answers that thank the customer."""
        per_item: list[float | None] = [float("thank" in p.lower()) for p in predictions]
        return MetricResult("says_thanks", mean_or_nan(per_item), per_item)

    yield says_thanks
    _REGISTRY.pop("says_thanks")


def test_a_new_metric_is_one_registration(thanks_metric):
    from tailorlm.evaluate.metrics import Case, evaluate_metrics, get_metric, known_metrics

    assert "says_thanks" in known_metrics() and get_metric("says_thanks").tasks == ("chat",)
    results = evaluate_metrics(["says_thanks", "exact_match"], ["Thanks, done.", "Done."], [Case("Done.")] * 2)
    assert results["says_thanks"].value == 0.5 and results["says_thanks"].per_item == [1.0, 0.0]


# --- an export target: one file in export/ with @target(...) ------------------------------------------


@pytest.fixture
def manifest_target():
    from tailorlm.export import TARGETS, target

    @target("manifest", description="A JSON manifest of the model's files.")
    def manifest(context: ExportContext, *, indent: int = 2) -> None:
        """A JSON manifest of the model's files."""
        files = sorted(p.name for p in context.model.artifact_dir.iterdir())
        (context.output / "manifest.json").write_text(json.dumps({"files": files}, indent=indent), encoding="utf-8")
        context.report.check("manifest", "passed", f"{len(files)} files listed")

    yield manifest
    TARGETS.pop("manifest")


def test_a_new_export_target_is_one_registration(manifest_target, workspace, tiny_model_dir):
    from tailorlm.export import available_targets, export
    from tailorlm.registry import Artifact

    run_dir = workspace.run_dir("run-full")  # a complete full fine-tune: the tiny model's own weights
    shutil.copytree(tiny_model_dir, run_dir / "model")
    workspace.registry.add(
        Artifact(
            id="run-full",
            kind="run",
            name="tiny",
            hash="0" * 64,
            path=workspace.relative(run_dir),
            meta={"base_model": str(tiny_model_dir), "artifact": "model", "method": "full", "dataset": "none"},
        )
    )
    assert "manifest" in available_targets()
    result = export(workspace, "run-full", "manifest", indent=0)
    assert "config.json" in json.loads((result.path / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert result.report["checks"][0]["name"] == "manifest" and result.passed
