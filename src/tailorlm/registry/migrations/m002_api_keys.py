"""API keys for `tailorlm serve`: only a salted SHA-256 of each secret is stored, never the secret."""

SQL = """
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,          -- the public part of the key (tlm_<id>_...)
    name        TEXT NOT NULL,             -- what the key is for, e.g. helpdesk-bot
    scope       TEXT NOT NULL CHECK (scope IN ('chat', 'admin')),
    models      TEXT,                      -- JSON list of served model names, NULL for all
    salt        TEXT NOT NULL,             -- hex, random per key
    hash        TEXT NOT NULL,             -- sha256(salt + secret), hex
    created_at  TEXT NOT NULL,
    revoked_at  TEXT                       -- NULL while the key works
)
"""
