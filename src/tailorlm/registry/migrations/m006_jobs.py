"""The job queue: training, synthesis and evaluation jobs that outlive a terminal (see tailorlm.jobs).

A worker claims a job atomically (one `UPDATE … WHERE status IN ('queued', 'interrupted')` inside
`BEGIN IMMEDIATE`), so two workers never run the same job; its heartbeat tells a later worker when the one
running a job died, and the job is then resumed.
"""

SQL = """
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,       -- job-20261204-221500-1a2b3c
    kind              TEXT NOT NULL,          -- the verb it runs: train | prepare | eval
    args              TEXT NOT NULL,          -- JSON list: the verb's arguments as submitted
    status            TEXT NOT NULL CHECK (status IN
                          ('queued', 'running', 'complete', 'failed', 'cancelled', 'interrupted')),
    created_at        TEXT NOT NULL,
    started_at        TEXT,                   -- first start
    finished_at       TEXT,
    worker            TEXT,                   -- host:pid of the worker that runs (or last ran) it
    pid               INTEGER,                -- the job's process (leader of its process group)
    heartbeat         REAL,                   -- Unix time the worker last said it was alive
    attempts          INTEGER NOT NULL DEFAULT 0,
    exit_code         INTEGER,
    outputs           TEXT NOT NULL DEFAULT '[]', -- JSON list of artifact ids it made (a train job's run)
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    error             TEXT
);
CREATE INDEX jobs_status ON jobs(status, created_at)
"""
