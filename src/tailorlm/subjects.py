"""Data-subject requests (GDPR Arts. 15 and 17): find everything that involves a person, and erase it.

`find(workspace, "jane.doe@example.com")` searches the ingested documents (the text as read, before any
redaction) and every dataset's examples. An example involves the person when it names them in clear, or
when it was built from a document that does: that provenance link (file + row/page/thread) is how a
redacted or pseudonymised example is still found. TailorLM keeps no redaction map at all (pseudonym tables
live only in memory while `prepare` runs), so there is none to leak.

`erase(...)` writes a new version of every affected dataset without those examples, removes the
person's documents from the workspace's document store, and marks every model trained on them
`needs-retraining`: a trained model is not anonymous by default, and removing its training examples does
not make it forget them. The source files themselves (outside the workspace) are the data owner's to
change; the report says which. The audit log records a keyed hash of the request, never the identifier.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from tailorlm.dataset_splits import SPLITS, load_split
from tailorlm.errors import UserError
from tailorlm.formats.examples import Example
from tailorlm.governance import add_notice
from tailorlm.lineage import descendants
from tailorlm.registry import Artifact, DatasetMeta, DocumentMeta
from tailorlm.workspace import (
    Workspace,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    read_jsonl,
    sha256_file,
)

SECRET_FILE = "subjects.key"


class SubjectError(UserError, ValueError):
    """A data-subject request that can't be carried out (empty, or matching nothing)."""


@dataclass
class DocumentHit:
    document: str  # the document artifact (one source file)
    path: str
    locator: str
    thread: str | None = None


@dataclass
class DatasetHit:
    dataset: str
    examples: dict[str, list[str]] = field(default_factory=dict)  # split → example ids
    in_clear: int = 0  # examples naming the person in their text (not redacted)

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.examples.values())


@dataclass
class SubjectReport:
    """What involves a person: documents, examples per dataset, models trained on them."""

    subject: str  # keyed hash of the identifier; never the identifier
    documents: list[DocumentHit] = field(default_factory=list)
    datasets: list[DatasetHit] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    source_files: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.documents and not any(hit.count for hit in self.datasets)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for hit, row in zip(self.datasets, data["datasets"], strict=True):
            row["count"] = hit.count
        return data


@dataclass
class ErasureReport:
    find: SubjectReport
    new_datasets: dict[str, str]  # old id → new id
    documents_removed: int
    models_marked: list[str]
    older_versions: list[str]  # affected dataset versions left as they were (superseded)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "find": self.find.to_json()}


# --- the identifier ------------------------------------------------------------------------------


def _pattern(identifier: str) -> re.Pattern[str]:
    text = " ".join(identifier.split())
    if len(text) < 3:
        raise SubjectError(
            f"{identifier!r} is too short to identify a person", hint="give an e-mail, a full name or an ID"
        )
    words = [re.escape(word) for word in text.split(" ")]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def subject_hash(workspace: Workspace, identifier: str) -> str:
    """`subject-<hex>`: an HMAC of the normalised identifier with a secret kept in the workspace (0600), so
    the audit log can tell two requests apart without anyone reversing it from a list of e-mails."""
    path = workspace.root / SECRET_FILE
    if not path.is_file():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    key = path.read_text().strip().encode()
    normal = " ".join(identifier.split()).casefold()
    return "subject-" + hmac.new(key, normal.encode(), hashlib.sha256).hexdigest()[:16]


# --- find ----------------------------------------------------------------------------------------


def _text(example: Example) -> str:
    parts = [example.text or ""] + [m.content for m in example.messages or []]
    return "\n".join(str(p) for p in parts if p)


def _linked(example: Example, hits: list[DocumentHit]) -> bool:
    """True when the example was built from a document that names the person (same file, same row/page or
    the same e-mail thread; a whole-file document links every example of the file)."""
    label = str(example.meta.get("file") or (example.source or "").partition("#")[0])
    where = (example.source or "").partition("#")[2]
    thread = example.meta.get("thread")
    for hit in hits:
        if not (hit.path == label or hit.path.endswith("/" + label.lstrip("./"))):
            continue
        if not hit.locator or hit.locator == where or (thread is not None and thread == hit.thread):
            return True
    return False


def find(workspace: Workspace, identifier: str) -> SubjectReport:
    """Everything in the workspace that involves the person named by `identifier` (e-mail, name, ID)."""
    pattern = _pattern(identifier)
    report = SubjectReport(subject=subject_hash(workspace, identifier))
    for document in workspace.registry.find("document"):
        path = workspace.documents_file(document.hash)
        if not path.is_file():
            continue
        for row in read_jsonl(path):
            fields = row.get("fields") or {}
            searchable = "\n".join(
                [row.get("text", ""), row.get("title") or "", json.dumps(fields, ensure_ascii=False)]
            )
            if pattern.search(searchable):
                report.documents.append(
                    DocumentHit(
                        document=document.id,
                        path=str(row.get("source_path") or (document.meta_as(DocumentMeta).source_path or "")),
                        locator=str(row.get("locator") or ""),
                        thread=fields.get("thread_id"),
                    )
                )
    for dataset in workspace.registry.find("dataset", status="complete"):
        hit = DatasetHit(dataset.id)
        folder = workspace.path_of(dataset)
        for split in SPLITS:
            if not (folder / f"{split}.jsonl").is_file():
                continue
            for example in load_split(workspace, dataset, split):
                clear = bool(pattern.search(_text(example)))
                if clear or _linked(example, report.documents):
                    hit.examples.setdefault(split, []).append(example.id)
                    hit.in_clear += clear
        if hit.count:
            report.datasets.append(hit)
    models = {m.id for hit in report.datasets for m in descendants(workspace, hit.dataset) if m.kind == "model"}
    report.models = sorted(models)
    report.source_files = sorted({hit.path for hit in report.documents})
    workspace.audit.append(
        "subject.find",
        inputs=[report.subject],
        outputs=[hit.dataset for hit in report.datasets],
        documents=len(report.documents),
        examples=sum(hit.count for hit in report.datasets),
        models=report.models,
    )
    return report


# --- erase ---------------------------------------------------------------------------------------


def erase(workspace: Workspace, identifier: str) -> ErasureReport:
    """Remove the person from the workspace: new dataset versions without their examples, their documents
    out of the document store, the models trained on them marked `needs-retraining`. Refused (nothing
    changed) when nothing matches."""
    report = find(workspace, identifier)
    if report.empty:
        raise SubjectError(
            f"nothing in {workspace.root} matches the request ({report.subject}); nothing was changed",
            hint="check the spelling, or search with another identifier (`tailorlm subject find`)",
        )
    latest: dict[str, DatasetHit] = {}
    older: list[str] = []
    for hit in report.datasets:  # newest first: one new version per dataset name, from its latest
        name = workspace.registry.get(hit.dataset).name
        if name in latest:
            older.append(hit.dataset)
        else:
            latest[name] = hit
    pattern = _pattern(identifier)
    new_datasets = {
        hit.dataset: _without(workspace, hit, report.subject, pattern, report.documents).id for hit in latest.values()
    }
    removed = _remove_documents(workspace, report.documents)
    for model_id in report.models:
        datasets = ", ".join(new_datasets.values())
        add_notice(
            workspace,
            model_id,
            "needs-retraining",
            f"erasure request {report.subject}: examples it was trained on were removed; a trained model is not "
            f"anonymous by default and does not forget them: retrain on {datasets}",
        )
    workspace.audit.append(
        "subject.erase",
        inputs=[report.subject, *new_datasets],
        outputs=list(new_datasets.values()),
        examples_removed=sum(hit.count for hit in latest.values()),
        documents_removed=removed,
        models_needing_retraining=report.models,
        superseded_versions=older,
    )
    return ErasureReport(report, new_datasets, removed, report.models, older)


def _without(
    workspace: Workspace, hit: DatasetHit, subject: str, pattern: re.Pattern[str], documents: list[DocumentHit]
) -> Artifact:
    old = workspace.registry.get(hit.dataset)
    meta = old.meta_as(DatasetMeta)
    version = workspace.next_version("dataset", old.name)
    final = workspace.dataset_dir(old.name, version)
    source = workspace.path_of(old)
    counts: dict[str, int] = {}
    with workspace.staging(final) as folder:
        for split in SPLITS:
            if not (source / f"{split}.jsonl").is_file():
                continue
            drop = set(hit.examples.get(split, []))
            rows = [row for row in read_jsonl(source / f"{split}.jsonl") if row.get("id") not in drop]
            counts[split] = atomic_write_jsonl(folder / f"{split}.jsonl", rows)
        files = {f"{split}.jsonl": sha256_file(folder / f"{split}.jsonl") for split in counts}
        if (source / "chunks.jsonl").is_file():  # retrieval chunks naming the person, or of their documents, go too
            gone = {(hit.path, hit.locator) for hit in documents}
            chunks = [
                chunk
                for chunk in read_jsonl(source / "chunks.jsonl")
                if not pattern.search(chunk.get("text", ""))
                and (chunk.get("source_path"), chunk.get("locator") or "") not in gone
            ]
            atomic_write_jsonl(folder / "chunks.jsonl", chunks)
        removed = {split: len(ids) for split, ids in hit.examples.items()}
        note = {"subject": subject, "from": old.id, "removed": removed}
        card_path = source / "card.json"
        card = json.loads(card_path.read_text("utf-8")) if card_path.is_file() else {}
        card.update(version=version, id=f"dataset-{old.name}-{version}", files=files)
        card["counts"] = {**counts, "total": sum(counts.values())}
        card.setdefault("erasures", []).append(note)
        atomic_write_json(folder / "card.json", card)
        markdown = (source / "card.md").read_text("utf-8") if (source / "card.md").is_file() else f"# {old.name}\n"
        atomic_write_text(
            folder / "card.md",
            markdown.replace(f"{old.name} {old.version}", f"{old.name} {version}")
            + f"\n## Erasure\n\n{old.name}@{version} is {old.name}@{old.version} without "
            f"{sum(removed.values())} example(s) removed on a data subject's request ({subject}).\n",
        )
    digest = hashlib.sha256("".join(f"{file}:{sha}\n" for file, sha in files.items()).encode()).hexdigest()
    artifact = Artifact(
        id=f"dataset-{old.name}-{version}",
        kind="dataset",
        name=old.name,
        version=version,
        hash=digest,
        path=workspace.relative(final),
        meta=meta.replace(counts=counts, files=files),
    )
    parents = [p.id for p in workspace.registry.parents(old.id)]
    return workspace.registry.add(artifact, parents=parents)


def _remove_documents(workspace: Workspace, hits: list[DocumentHit]) -> int:
    """Drop the person's documents from the document store (the source files are not ours to change)."""
    by_document: dict[str, set[str]] = defaultdict(set)
    for hit in hits:
        by_document[hit.document].add(hit.locator)
    removed = 0
    for document_id, locators in by_document.items():
        path = workspace.documents_file(workspace.registry.get(document_id).hash)
        rows = read_jsonl(path)
        kept = [row for row in rows if str(row.get("locator") or "") not in locators]
        removed += len(rows) - len(kept)
        atomic_write_jsonl(path, kept)
    return removed
