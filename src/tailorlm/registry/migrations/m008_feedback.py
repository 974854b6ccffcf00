"""Reviewers' feedback on answers (ratings, corrections) and the completion id the server answered with.

A feedback row keeps the whole record as JSON (`record`: the conversation, the answer, the rating, the
correction...) and the columns it is listed and filtered by. `request_log.completion_id` lets
`POST /v1/feedback` name the answer it rates the way the server returned it.
"""

SQL = """
CREATE TABLE feedback (
    id             TEXT PRIMARY KEY,       -- fb-<hash of the content>: importing a file twice adds nothing
    time           TEXT NOT NULL,          -- UTC ISO 8601, when the reviewer gave it
    source         TEXT NOT NULL,          -- api | file | evaluation | playground
    reviewer       TEXT,
    model          TEXT,                   -- the model (name@version or served name) that answered
    completion_id  TEXT,                   -- the id the server returned with the answer, if any
    pair           TEXT,                   -- links answers to one prompt compared side by side
    rating         TEXT,                   -- up | down | 1..5, NULL when only corrected
    corrected      INTEGER NOT NULL,       -- 1 when a corrected answer was given
    record         TEXT NOT NULL           -- the FeedbackRecord as JSON
);
CREATE INDEX feedback_time ON feedback(time);
CREATE INDEX feedback_model ON feedback(model);
CREATE INDEX feedback_completion ON feedback(completion_id);
ALTER TABLE request_log ADD COLUMN completion_id TEXT;
CREATE INDEX request_log_completion ON request_log(completion_id)
"""
