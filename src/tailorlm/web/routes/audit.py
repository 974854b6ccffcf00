"""Audit & lineage (`/audit`): the hash-chained audit log with its verification state, filtered by action
and user; a model's (or any artifact's) lineage drawn as a graph down to the source files."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tailorlm.registry import Artifact
from tailorlm.web.common import dashboard, page

router = APIRouter()
COLUMNS = ("document", "base", "dataset", "run", "evaluation", "model")
NODE_W, NODE_H, GAP_X, GAP_Y = 210, 38, 60, 14


@dataclass
class Node:
    artifact: Artifact
    x: int
    y: int

    @property
    def label(self) -> str:
        meta = self.artifact.meta
        if self.artifact.kind == "document":
            return (getattr(meta, "source_path", None) or self.artifact.name).rsplit("/", 1)[-1]
        return f"{self.artifact.name}@{self.artifact.version}" if self.artifact.version else self.artifact.id


@router.get("/audit")
async def audit(request: Request, action: str = "", user: str = "", limit: int = 300) -> Response:
    workspace = dashboard(request).workspace
    ok, message = workspace.audit.verify()
    events = workspace.audit.events()
    chosen = [
        (number, e)
        for number, e in enumerate(events, start=1)
        if (not action or e.get("action", "").startswith(action)) and (not user or e.get("user") == user)
    ]
    return page(
        request,
        "audit.html.jinja",
        ok=ok,
        message=message,
        events=list(reversed(chosen))[: max(1, min(limit, 5000))],
        total=len(events),
        action=action,
        who=user,
        users=sorted({e.get("user", "") for e in events}),
        models=workspace.registry.find("model"),
    )


def layout(target: Artifact, ancestors: list[Artifact]) -> tuple[list[Node], list[tuple[Node, Node]], int, int]:
    """Nodes in columns by kind (files on the left, the model on the right) and the parent → child edges."""
    columns: dict[str, list[Artifact]] = {kind: [] for kind in COLUMNS}
    for artifact in [*ancestors, target]:
        columns.setdefault(artifact.kind, []).append(artifact)
    used = [kind for kind in columns if columns[kind]]
    nodes: dict[str, Node] = {}
    for column, kind in enumerate(used):
        for row, artifact in enumerate(sorted(columns[kind], key=lambda a: a.name)):
            nodes[artifact.id] = Node(artifact, 10 + column * (NODE_W + GAP_X), 10 + row * (NODE_H + GAP_Y))
    width = 20 + len(used) * (NODE_W + GAP_X) - GAP_X
    height = 20 + max(len(columns[k]) for k in used) * (NODE_H + GAP_Y)
    return list(nodes.values()), [], width, height


@router.get("/lineage/{artifact_id}")
async def lineage(request: Request, artifact_id: str) -> Response:
    workspace = dashboard(request).workspace
    target = workspace.lookup(artifact_id)
    ancestors = workspace.registry.lineage(target.id)
    nodes, _, width, height = layout(target, ancestors)
    by_id = {node.artifact.id: node for node in nodes}
    edges = [
        (by_id[parent.id], by_id[node.artifact.id])
        for node in nodes
        for parent in workspace.registry.parents(node.artifact.id)
        if parent.id in by_id
    ]
    return page(
        request,
        "lineage.html.jinja",
        target=target,
        nodes=nodes,
        edges=edges,
        width=width,
        height=height,
        node_w=NODE_W,
        node_h=NODE_H,
    )
