"""Dashboard users and their login sessions (`tailorlm users`, `tailorlm ui`): only an argon2 hash of each
password and a SHA-256 of each session token are stored, never the secret."""

SQL = """
CREATE TABLE users (
    name        TEXT PRIMARY KEY,          -- the login name
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'approver', 'admin')),
    hash        TEXT NOT NULL,             -- argon2id hash of the password (argon2-cffi's encoded form)
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,          -- sha256 of the cookie's token, hex
    user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,             -- the token every state-changing request must echo
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user)
"""
