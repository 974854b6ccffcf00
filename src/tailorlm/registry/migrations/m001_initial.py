"""Artifacts (documents, datasets, runs, evaluations, models) and the parent links between them."""

SQL = """
CREATE TABLE artifacts (
    id          TEXT PRIMARY KEY,          -- e.g. run-20261128-1a2b3c
    kind        TEXT NOT NULL,             -- document | dataset | run | evaluation | model
    name        TEXT NOT NULL,
    version     TEXT,
    hash        TEXT NOT NULL,             -- content hash of the artifact (or of its inputs while running)
    key         TEXT,                      -- hash of inputs + settings, used to skip unchanged stages
    path        TEXT NOT NULL,             -- relative to the workspace
    status      TEXT NOT NULL,             -- running | complete | failed | interrupted
    created_at  TEXT NOT NULL,
    meta        TEXT NOT NULL DEFAULT '{}' -- JSON
);
CREATE INDEX artifacts_kind_name ON artifacts(kind, name);
CREATE INDEX artifacts_key ON artifacts(key);
CREATE INDEX artifacts_hash ON artifacts(hash);

CREATE TABLE lineage (
    child_id   TEXT NOT NULL REFERENCES artifacts(id),
    parent_id  TEXT NOT NULL REFERENCES artifacts(id),
    relation   TEXT NOT NULL DEFAULT 'input',
    PRIMARY KEY (child_id, parent_id, relation)
);
CREATE INDEX lineage_parent ON lineage(parent_id);
"""


def upgrade(connection) -> None:
    connection.executescript(SQL)
