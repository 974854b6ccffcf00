"""Lineage across the registry, both ways: a model back to every source file (with its hash and the rows or
pages its examples came from), and a source file forward to every dataset, run, model and deployment.

The registry links artifacts (file → dataset → run → evaluation → model); the dataset's examples carry
their source (`faq.csv#row 12`), so row/page detail comes from the splits themselves; deployments
(serve, deploy, export) come from the audit log. `tailorlm lineage model|source` prints what this returns,
and the dashboard draws it from `to_json()`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.dataset_splits import SPLITS, load_split
from tailorlm.errors import NotFound
from tailorlm.registry import Artifact, DocumentMeta, ModelMeta
from tailorlm.workspace import Workspace, sha256_file


@dataclass
class SourceUse:
    """One source file as a dataset used it: its hash, examples per split and where in the file they came from."""

    path: str
    sha256: str | None
    document: str | None
    examples: dict[str, int] = field(default_factory=dict)
    locators: list[str] = field(default_factory=list)
    used_for: str = "examples"
    """`examples` (trained and evaluated on), or `chunks` (only retrieval chunks for the RAG baseline)."""
    recipe: str | None = None
    """The source kind (builder) that made its examples: faq, email, documents..."""
    synthetic: dict[str, int] = field(default_factory=dict)
    """Examples a teacher model wrote from the file's chunks, by teacher."""
    redactions: dict[str, int] = field(default_factory=dict)
    """Personal data replaced in the dataset, by type (the dataset card's count; not per file)."""


@dataclass
class Lineage:
    """What `tailorlm lineage` reports: the starting artifact, its chain, the files and the deployments."""

    start: str
    chain: list[dict[str, Any]]
    sources: list[SourceUse]
    deployments: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(artifact: Artifact) -> dict[str, Any]:
    label = f"{artifact.name}@{artifact.version}" if artifact.version else artifact.name
    if isinstance(artifact.meta, DocumentMeta):
        label = artifact.meta.source_path or artifact.name
    return {"kind": artifact.kind, "id": artifact.id, "name": label, "hash": artifact.hash, "status": artifact.status}


def example_file(example: Any) -> str:
    """The source file an example came from (`meta.file`, else its `source` up to `#`)."""
    return str(example.meta.get("file") or (example.source or "").partition("#")[0] or "?")


def _document_for(label: str, documents: dict[str, Artifact]) -> Artifact | None:
    """The document whose file an example's label names: the same path, or a path ending in it (labels are
    relative to the project folder)."""
    if label in documents:
        return documents[label]
    matches = [doc for path, doc in documents.items() if path.endswith("/" + label.lstrip("./"))]
    return matches[0] if len(matches) == 1 else None


def source_uses(workspace: Workspace, dataset: Artifact, documents: list[Artifact]) -> list[SourceUse]:
    """Per source file of a dataset: examples per split and the rows/pages/messages they came from."""
    by_path = {str(doc.meta.source_path): doc for doc in documents if isinstance(doc.meta, DocumentMeta)}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    synthetic: dict[str, Counter[str]] = defaultdict(Counter)
    locators: dict[str, set[str]] = defaultdict(set)
    owners: dict[str, Artifact | None] = {}
    folder = workspace.path_of(dataset)
    for split in SPLITS:
        if not (folder / f"{split}.jsonl").is_file():
            continue
        for example in load_split(workspace, dataset, split):
            label = example_file(example)
            if label not in owners:
                owners[label] = _document_for(label, by_path)
            document = owners[label]
            path = str(document.meta.source_path) if document and isinstance(document.meta, DocumentMeta) else label
            counts[path][split] += 1
            if example.meta.get("synthetic"):
                synthetic[path][str(example.meta.get("teacher") or "?")] += 1
            source = example.source or ""
            where = source.partition("#")[2] or (source if source not in ("", label) else "")
            if where:
                locators[path].add(where)
    used = {document.id for document in owners.values() if document}
    card = _card(folder)
    kinds = {f.get("path"): s.get("kind") for s in card.get("sources", []) for f in s.get("files", [])}
    redactions = dict(card.get("pii", {}).get("counts", {}))
    uses = []
    for path in sorted(counts):
        document = by_path.get(path)
        uses.append(
            SourceUse(
                path=path,
                sha256=document.hash if document else None,
                document=document.id if document else None,
                examples=dict(counts[path]),
                locators=sorted(locators[path], key=_natural),
                recipe=kinds.get(path) or next((k for f, k in kinds.items() if f and path.endswith("/" + f)), None),
                synthetic=dict(synthetic[path]),
                redactions=redactions,
            )
        )
    parents = {p.id for p in workspace.registry.parents(dataset.id)}
    for path, document in sorted(by_path.items()):
        if document.id not in used and document.id in parents:  # read for retrieval chunks, no example from it
            uses.append(SourceUse(path=path, sha256=document.hash, document=document.id, used_for="chunks"))
    return uses


def _card(folder: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((folder / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _natural(text: str) -> list[Any]:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def deployments(workspace: Workspace, model: Artifact) -> list[dict[str, Any]]:
    """Serve, deploy and export events of the audit log that name this model (by label or id)."""
    names = {model.id, f"{model.name}@{model.version}"}
    found = []
    for event in workspace.audit.events():
        action = event.get("action", "")
        if action not in ("serve.start", "deploy", "export"):
            continue
        if names & set(event.get("inputs", [])):
            details = event.get("details", {})
            where = details.get("url") or (f"{details['host']}:{details['port']}" if "host" in details else "")
            where = where or ", ".join(event.get("outputs", []))
            found.append({"action": action, "time": event["time"], "user": event["user"], "where": where, **details})
    return found


def model_lineage(workspace: Workspace, reference: str) -> Lineage:
    """A registered model (`name`, `name@version`, id) or a run id, back to its source files."""
    start = _lookup_model(workspace, reference)
    chain = [start, *workspace.registry.lineage(start.id)]
    chain.sort(key=lambda a: a.kind == "document")  # documents last; the files table details them
    documents = [a for a in chain if a.kind == "document"]
    datasets = [a for a in chain if a.kind == "dataset"]
    sources = [use for dataset in datasets for use in source_uses(workspace, dataset, documents)]
    return Lineage(
        start=start.id,
        chain=[_row(a) for a in chain],
        sources=sources,
        deployments=deployments(workspace, start) if start.kind == "model" else [],
    )


def _lookup_model(workspace: Workspace, reference: str) -> Artifact:
    if reference.startswith("run-"):
        try:
            return workspace.registry.get(reference)
        except NotFound:
            raise NotFound(f"no run {reference!r} in this workspace", hint="see `tailorlm runs`") from None
    return workspace.resolve("model", reference)


def descendants(workspace: Workspace, artifact_id: str) -> list[Artifact]:
    """Every artifact made from this one, nearest first."""
    seen: dict[str, Artifact] = {}
    frontier = [artifact_id]
    while frontier:
        children = [c for parent in frontier for c in workspace.registry.children(parent) if c.id not in seen]
        for child in children:
            seen[child.id] = child
        frontier = [c.id for c in children]
    return list(seen.values())


def source_lineage(workspace: Workspace, path: str | Path) -> Lineage:
    """Every dataset, run, model and deployment that used a source file (matched by content, else by path)."""
    given = Path(path).expanduser()
    documents = workspace.registry.find("document")
    matches: list[Artifact] = []
    if given.is_file():
        digest = sha256_file(given)
        matches = [d for d in documents if d.hash == digest]
    if not matches:
        wanted = str(given.resolve()) if given.exists() else str(path)
        matches = [
            d
            for d in documents
            if isinstance(d.meta, DocumentMeta)
            and (d.meta.source_path in (wanted, str(path)) or Path(d.meta.source_path or "").name == str(path))
        ]
    if not matches:
        known = sorted({Path(d.meta.source_path or d.name).name for d in documents if isinstance(d.meta, DocumentMeta)})
        raise NotFound(
            f"no ingested file matches {str(path)!r} (by content or path)",
            hint=f"known files: {', '.join(known[:10]) or 'none yet'}; ingest it with `tailorlm ingest`",
        )
    chain: dict[str, Artifact] = {d.id: d for d in matches}
    for document in matches:
        for artifact in descendants(workspace, document.id):
            chain.setdefault(artifact.id, artifact)
    sources = []
    for dataset in (a for a in chain.values() if a.kind == "dataset"):
        sources += [u for u in source_uses(workspace, dataset, matches) if u.document in chain]
    deployed = [d for a in chain.values() if a.kind == "model" for d in deployments(workspace, a)]
    return Lineage(
        start=", ".join(d.id for d in matches),
        chain=[_row(a) for a in chain.values()],
        sources=sources,
        deployments=deployed,
    )


def models_using(workspace: Workspace, dataset_id: str) -> list[Artifact]:
    """Registered models trained (through a run) on a dataset."""
    return [a for a in descendants(workspace, dataset_id) if a.kind == "model" and isinstance(a.meta, ModelMeta)]
