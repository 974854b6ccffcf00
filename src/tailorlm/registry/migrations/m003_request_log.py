"""The server's request log: one row per API request (texts only when enabled, with PII redacted)."""

SQL = """
CREATE TABLE request_log (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    time               TEXT NOT NULL,      -- UTC ISO 8601, when the request arrived
    key_id             TEXT,               -- api_keys.id, NULL without auth or when the key was refused
    endpoint           TEXT NOT NULL,      -- e.g. /v1/chat/completions
    model              TEXT,
    status             INTEGER NOT NULL,   -- HTTP status, 499 when the client went away mid-answer
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    latency_ms         REAL NOT NULL,      -- arrival to last byte
    finish_reason      TEXT,
    error              TEXT,
    prompt_text        TEXT,               -- only with log_texts, PII redacted
    completion_text    TEXT                -- only with log_texts, PII redacted
);
CREATE INDEX request_log_time ON request_log(time);
CREATE INDEX request_log_key ON request_log(key_id)
"""
