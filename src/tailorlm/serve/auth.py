"""API keys for the server: create, list, revoke, and verify a bearer token.

A key looks like `tlm_<id>_<secret>`. The id is public (it names the key in lists and in the request
log); only a SHA-256 of the whole key with a random per-key salt is stored, so the key is shown once,
at creation, and can't be recovered from the workspace. Keys are random 256-bit secrets, which is why
a fast salted hash is enough (a slow KDF guards guessable passwords, not random keys).

Scopes: `chat` keys may list models and call the completion endpoints, optionally only for the
models named at creation; `admin` keys may also load and unload adapters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tailorlm.errors import UserError
from tailorlm.registry.store import now
from tailorlm.workspace import Workspace

Scope = Literal["chat", "admin"]
SCOPES: tuple[str, ...] = ("chat", "admin")
PREFIX = "tlm"


class UnknownKey(UserError, LookupError):
    """No key with this id."""


class KeySettingsError(UserError, ValueError):
    """A key can't be created with these settings (the message says what to change)."""


class InvalidKey(PermissionError):
    """A bearer token that is malformed, unknown, wrong or revoked (the message says which)."""


@dataclass(frozen=True)
class ApiKey:
    """A key as stored, without its secret."""

    id: str
    name: str
    scope: str
    models: tuple[str, ...] | None  # None: every served model
    created_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        models = json.loads(row["models"]) if row["models"] else None
        return cls(
            id=row["id"],
            name=row["name"],
            scope=row["scope"],
            models=tuple(models) if models is not None else None,
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


def check_key_models(workspace: Workspace, models: Sequence[str]) -> None:
    """Refuse model names a key could never use: not `base`, a registered model's name or a run id."""
    for model in models:
        if model == "base":
            continue
        if "@" in model:
            raise KeySettingsError(
                f"--models {model}: a key names served models without a version "
                f"(use {model.partition('@')[0]!r}; the server serves every version under that name)"
            )
        try:
            if model.startswith("run-"):
                workspace.registry.get(model)
            else:
                workspace.resolve("model", model)
        except KeyError:  # NotFound is a KeyError too
            known = sorted({a.name for a in workspace.registry.find("model")})
            raise KeySettingsError(
                f"--models {model}: no registered model or run of that name in this workspace; "
                f"registered models: {', '.join(known[:10]) or 'none yet'} (and 'base'). "
                "For a name given at serve time (alias=model), pass --allow-alias"
            ) from None


def create_key(
    workspace: Workspace,
    scope: Scope,
    models: Sequence[str] | None = None,
    name: str = "",
    *,
    allow_alias: bool = False,
) -> tuple[str, str]:
    """Create an API key; returns `(key_id, secret)`. The secret is the whole bearer token and is
    shown only now: store it where the client can read it.

    Args:
        scope: `chat` (completions) or `admin` (also adapter management).
        models: Served model names the key may use; None for all.
        name: What the key is for (shown in `list_keys`).
        allow_alias: Accept model names that are not registered (aliases given at serve time).
    """
    if scope not in SCOPES:
        raise KeySettingsError(f"scope must be one of {', '.join(SCOPES)} (got {scope!r})")
    if models is not None and (
        isinstance(models, str) or not models or not all(isinstance(m, str) and m for m in models)
    ):
        raise KeySettingsError(f"models must be a non-empty list of model names, or None for all (got {models!r})")
    if models is not None and not allow_alias:
        check_key_models(workspace, models)
    key_id = secrets.token_hex(6)
    secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_hex(16)
    workspace.registry.execute(
        "INSERT INTO api_keys (id, name, scope, models, salt, hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            key_id,
            name,
            scope,
            json.dumps(list(models)) if models is not None else None,
            salt,
            _digest(salt, secret),
            now(),
        ),
    )
    workspace.audit.append("key.create", outputs=[key_id], scope=scope, models=list(models or []) or None, name=name)
    return key_id, secret


def list_keys(workspace: Workspace, *, include_revoked: bool = True) -> list[ApiKey]:
    """Every key, newest first (secrets are never stored, so never shown)."""
    rows = workspace.registry.execute("SELECT * FROM api_keys ORDER BY created_at DESC, rowid DESC").fetchall()
    keys = [ApiKey.from_row(row) for row in rows]
    return keys if include_revoked else [key for key in keys if not key.revoked]


def revoke_key(workspace: Workspace, key_id: str) -> ApiKey:
    """Revoke a key: a running server refuses it from its next request on."""
    row = workspace.registry.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        known = ", ".join(k.id for k in list_keys(workspace)[:10]) or "none"
        raise UnknownKey(f"no API key {key_id!r}; known: {known}")
    if row["revoked_at"] is None:
        workspace.registry.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now(), key_id))
        workspace.audit.append("key.revoke", inputs=[key_id])
    return ApiKey.from_row(workspace.registry.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone())


class KeyStore:
    """Verifies bearer tokens for the server against the key table.

    Each request reads its key's row (one primary-key lookup), so a key created or revoked by the CLI
    while the server runs takes effect at once: the request after `keys revoke` returns is refused.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def __len__(self) -> int:
        """How many keys are not revoked."""
        row = self.workspace.registry.execute("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()
        return int(row[0])

    def verify(self, token: str) -> ApiKey:
        """The key for a bearer token, or `InvalidKey`."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1]:
            raise InvalidKey("the API key is malformed (TailorLM keys look like tlm_<id>_<secret>)")
        row = self.workspace.registry.execute("SELECT * FROM api_keys WHERE id = ?", (parts[1],)).fetchone()
        if row is None or not hmac.compare_digest(_digest(row["salt"], token), row["hash"]):
            raise InvalidKey("the API key is not valid for this server")
        key = ApiKey.from_row(row)
        if key.revoked:
            raise InvalidKey(f"the API key {key.id} was revoked")
        return key
