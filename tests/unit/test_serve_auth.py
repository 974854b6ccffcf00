"""API keys (hashed, scoped, revocable), the rate limiter, limits and the request log's retention."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from tailorlm.serve.auth import InvalidKey, KeyStore, UnknownKey, create_key, list_keys, revoke_key
from tailorlm.serve.limits import Limits, RateLimiter
from tailorlm.serve.request_log import LogEntry, RequestLog, purge_request_log, read_request_log


def test_key_is_stored_hashed_with_a_salt_and_shown_once(workspace):
    key_id, secret = create_key(workspace, "chat", models=["acme"], name="helpdesk", allow_alias=True)
    assert secret.startswith(f"tlm_{key_id}_") and len(secret) > 40
    row = workspace.registry.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    stored = " ".join(str(value) for value in dict(row).values())
    assert secret not in stored and secret.split("_", 2)[2] not in stored
    assert row["hash"] == hashlib.sha256(bytes.fromhex(row["salt"]) + secret.encode()).hexdigest()
    [key] = list_keys(workspace)
    assert (key.id, key.name, key.scope, key.models, key.revoked) == (key_id, "helpdesk", "chat", ("acme",), False)
    assert [e["action"] for e in workspace.audit.events()] == ["key.create"]


def test_two_keys_with_one_secret_would_still_hash_differently(workspace):
    create_key(workspace, "chat")
    create_key(workspace, "chat")
    salts = {row["salt"] for row in workspace.registry.execute("SELECT salt FROM api_keys").fetchall()}
    assert len(salts) == 2


@pytest.mark.parametrize(
    ("scope", "models", "message"),
    [
        ("root", None, "scope must be one of chat, admin"),
        ("chat", [], "non-empty list"),
        ("chat", "acme", "non-empty list"),
        ("chat", ["acme"], "no registered model or run of that name"),
        ("chat", ["base", "acme@v1"], "without a version"),
        ("chat", ["run-0000"], "no registered model or run"),
    ],
)
def test_bad_key_settings_are_refused(workspace, scope, models, message):
    with pytest.raises(ValueError, match=message):
        create_key(workspace, scope, models=models)


def test_key_store_verifies_and_names_what_is_wrong(workspace):
    key_id, secret = create_key(workspace, "admin")
    store = KeyStore(workspace)
    assert store.verify(secret).scope == "admin"
    with pytest.raises(InvalidKey, match="malformed"):
        store.verify("sk-not-ours")
    with pytest.raises(InvalidKey, match="not valid"):
        store.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    with pytest.raises(InvalidKey, match="not valid"):
        store.verify("tlm_000000000000_whatever")
    revoke_key(workspace, key_id)
    with pytest.raises(InvalidKey, match="revoked"):
        store.verify(secret)
    assert list_keys(workspace, include_revoked=False) == []
    with pytest.raises(UnknownKey, match="no API key 'nope'"):
        revoke_key(workspace, "nope")


def test_key_store_sees_new_and_revoked_keys_at_once(workspace):
    store = KeyStore(workspace)
    assert len(store) == 0
    key_id, secret = create_key(workspace, "chat")
    assert store.verify(secret).scope == "chat"  # no cache to wait for
    assert len(store) == 1
    revoke_key(workspace, key_id)
    with pytest.raises(InvalidKey, match="revoked"):
        store.verify(secret)
    assert len(store) == 0


def test_rate_limiter_allows_a_burst_then_says_how_long_to_wait(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("tailorlm.serve.limits.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(per_minute=3)
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("k")
    assert wait == pytest.approx(20.0)  # one request every 20 s
    assert limiter.take("other") == 0.0  # buckets are per key
    clock[0] += 20.0
    assert limiter.take("k") == 0.0
    assert RateLimiter.retry_after(0.2) == "1"
    assert RateLimiter(per_minute=0).take("k") == 0.0  # off


def test_rate_limiter_forgets_the_oldest_clients_beyond_its_bound():
    limiter = RateLimiter(per_minute=1, max_clients=2)
    for client in ("a", "b", "c"):
        limiter.take(client)
    assert limiter.take("a") == 0.0  # "a" was forgotten: a fresh bucket
    assert limiter.take("c") > 0


def test_limits_name_the_bad_setting():
    with pytest.raises(ValueError, match="max_tokens_cap must be > 0"):
        Limits(max_tokens_cap=0)
    with pytest.raises(ValueError, match="rate_limit_per_minute must be >= 0"):
        Limits(rate_limit_per_minute=-1)


def test_request_log_writes_rows_and_purges_old_ones(workspace):
    log = RequestLog(workspace, retention_days=30)
    now = datetime.now(UTC)
    for days, status in ((40, 200), (1, 404)):
        log.record(
            LogEntry(
                time=(now - timedelta(days=days)).isoformat(),
                endpoint="/v1/completions",
                status=status,
                latency_ms=3.0,
                model="acme",
                prompt_text="secret text",
            )
        )
    log.flush()
    rows = read_request_log(workspace)
    assert [r["status"] for r in rows] == [404, 200]
    assert all(r["prompt_text"] is None for r in rows)  # texts only with log_texts
    assert purge_request_log(workspace, older_than_days=30) == 1
    assert [r["status"] for r in read_request_log(workspace)] == [404]
    log.close()


def test_migrations_add_the_serve_tables(workspace):
    assert workspace.registry.schema_version >= 3
    tables = {r[0] for r in workspace.registry.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"api_keys", "request_log"} <= tables


def test_wait_until_healthy_reports_a_server_that_exited():
    import subprocess
    import sys

    from tailorlm.serve import ServeError, wait_until_healthy

    process = subprocess.Popen(
        [sys.executable, "-c", "print('port already in use')"], stdout=subprocess.PIPE, text=True
    )
    process.wait()
    with pytest.raises(ServeError, match=r"(?s)exited.*port already in use"):
        wait_until_healthy("http://127.0.0.1:9", process=process, timeout=30)


@pytest.mark.parametrize("days", [-1, -0.001, float("nan")])
def test_a_negative_retention_is_refused_before_anything_is_deleted(workspace, days):
    from tailorlm.serve import serve

    workspace.registry.execute(
        "INSERT INTO request_log (time, endpoint, status, latency_ms) VALUES (?, ?, ?, ?)",
        (datetime.now(UTC).isoformat(), "/v1/models", 200, 1.0),
    )
    with pytest.raises(ValueError, match="log_retention_days must be >= 0"):
        RequestLog(workspace, retention_days=days)
    with pytest.raises(ValueError, match="must be >= 0"):
        purge_request_log(workspace, days)
    with pytest.raises(ValueError, match="must be >= 0"):  # refused before a model is loaded
        serve(workspace, models=[], base_model=workspace.root, log_retention_days=days)
    assert len(read_request_log(workspace)) == 1


def test_a_purge_says_what_it_deletes_before_deleting(workspace, caplog):
    rows = [((datetime.now(UTC) - timedelta(days=days)).isoformat(), "/v1/models", 200, 1.0) for days in (9, 8, 1)]
    for row in rows:
        workspace.registry.execute(
            "INSERT INTO request_log (time, endpoint, status, latency_ms) VALUES (?, ?, ?, ?)", row
        )
    said: list[int] = []

    def count_when_said(record):  # the rows are still there when the warning is written
        said.append(len(read_request_log(workspace)))
        return True

    caplog.set_level("WARNING", logger="tailorlm.serve.request_log")
    logging.getLogger("tailorlm.serve.request_log").addFilter(count_when_said)
    try:
        assert purge_request_log(workspace, 7) == 2
    finally:
        logging.getLogger("tailorlm.serve.request_log").removeFilter(count_when_said)
    assert said == [3]
    assert "deleting 2 rows older than 7 days (before " in caplog.text
    assert purge_request_log(workspace, 7) == 0 and len(read_request_log(workspace)) == 1


def test_credentials_never_reach_the_request_log(workspace):
    key = "tlm_0123456789ab_S3cretS3cretS3cretS3cretS3cretS3cret00"
    log = RequestLog(workspace, log_texts=True)
    log.record(
        LogEntry(
            time=datetime.now(UTC).isoformat(),
            endpoint=f"/v1/models/{key}",
            status=404,
            latency_ms=1.0,
            prompt_text=f"my key is {key}, header Authorization: Bearer {key}",
            error=f"no model {key}",
        )
    )
    log.flush()
    log.close()
    stored = " ".join(str(v) for v in read_request_log(workspace)[0].values())
    assert "S3cret" not in stored and "tlm_0123456789ab_[REDACTED]" in stored


def test_the_registry_is_private_while_artifacts_follow_the_umask(tmp_path):
    from tailorlm.workspace import Workspace

    previous = os.umask(0o022)
    try:
        workspace = Workspace(tmp_path / "ws")
        create_key(workspace, "chat")  # a write: the -wal and -shm files exist now
        db = workspace.registry.path
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in db.parent.glob(db.name + "*")}
        assert modes == {"tailorlm.db": 0o600, "tailorlm.db-wal": 0o600, "tailorlm.db-shm": 0o600}
        assert stat.S_IMODE((workspace.root / "audit.jsonl").stat().st_mode) == 0o644
        workspace.close()
        os.chmod(db, 0o666)  # a registry made before this release, or by hand
        Workspace(tmp_path / "ws").close()
        assert stat.S_IMODE(db.stat().st_mode) & 0o037 == 0
    finally:
        os.umask(previous)
