"""Governance: approval decisions on registered models (four-eyes) and notices on models such as
`needs-retraining` after a data subject's erasure."""

SQL = """
CREATE TABLE approvals (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id       TEXT NOT NULL REFERENCES artifacts(id),
    decision       TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    user           TEXT NOT NULL,      -- who decided (TAILORLM_USER, else the OS user)
    os_user        TEXT NOT NULL,      -- the OS account that ran the command
    registered_by  TEXT,               -- who registered the model (must differ from user to approve)
    trained_by     TEXT,               -- who trained its run, when the audit log says
    note           TEXT,               -- the approval note or the rejection reason
    decided_at     TEXT NOT NULL
);
CREATE INDEX approvals_model ON approvals(model_id);

CREATE TABLE model_notices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id    TEXT NOT NULL REFERENCES artifacts(id),
    notice      TEXT NOT NULL,         -- e.g. needs-retraining
    reason      TEXT NOT NULL,         -- never a data subject's identifier in clear
    created_at  TEXT NOT NULL
);
CREATE INDEX model_notices_model ON model_notices(model_id)
"""
