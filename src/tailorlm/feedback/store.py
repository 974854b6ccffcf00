"""Feedback in the registry: store records (all of a batch or none), list and filter them.

from tailorlm.feedback import FeedbackRecord, record, list_feedback
record(workspace, FeedbackRecord(messages=[...], answer="...", rating="down", corrected="...",
                                 reviewer="ana", source="playground", model="acme@v2"))
for item in list_feedback(workspace, model="acme@v2", since="2026-12-01"):
    ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from tailorlm.feedback.records import FeedbackRecord
from tailorlm.workspace import Workspace


@dataclass
class Stored:
    """What storing a batch did: records added, and those already there (same content)."""

    added: list[str]
    already: list[str]


def record(workspace: Workspace, item: FeedbackRecord, *, audit: bool = True) -> FeedbackRecord:
    """Store one record (once: the same content again is not duplicated); returns it with its id."""
    record_many(workspace, [item], audit=audit)
    return item


def record_many(
    workspace: Workspace, items: Iterable[FeedbackRecord], *, audit: bool = True, origin: str | None = None
) -> Stored:
    """Store records in one transaction: all of them or, on any error, none."""
    items = list(items)
    result = Stored([], [])
    with workspace.registry.transaction() as connection:
        for item in items:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO feedback (id, time, source, reviewer, model, completion_id, pair, rating,"
                " corrected, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.time,
                    item.source,
                    item.reviewer,
                    item.model,
                    item.completion_id,
                    item.pair,
                    None if item.rating is None else str(item.rating),
                    int(item.corrected is not None),
                    item.model_dump_json(),
                ),
            )
            (result.added if cursor.rowcount else result.already).append(item.id)
    if audit and result.added:
        workspace.audit.append(
            "feedback.add",
            inputs=[origin] if origin else [],
            outputs=result.added[:100],
            added=len(result.added),
            already=len(result.already),
            sources=sorted({item.source for item in items}),
        )
    return result


def list_feedback(
    workspace: Workspace,
    *,
    model: str | None = None,
    source: str | None = None,
    reviewer: str | None = None,
    since: str | None = None,
    completion_id: str | None = None,
    limit: int | None = None,
) -> list[FeedbackRecord]:
    """Stored records matching every given filter, oldest first (`since`: an ISO date or time)."""
    clauses: list[str] = []
    parameters: list[object] = []
    for column, value in (
        ("model", model),
        ("source", source),
        ("reviewer", reviewer),
        ("completion_id", completion_id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    if since is not None:
        clauses.append("time >= ?")
        parameters.append(since)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    tail = " LIMIT ?" if limit is not None else ""
    if limit is not None:
        parameters.append(limit)
    rows = workspace.registry.execute(
        f"SELECT record FROM feedback {where} ORDER BY time, rowid{tail}", tuple(parameters)
    ).fetchall()
    return [FeedbackRecord.model_validate(json.loads(row[0])) for row in rows]


def count_feedback(workspace: Workspace) -> int:
    return int(workspace.registry.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
