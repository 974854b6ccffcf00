"""The dashboard's server side through its real ASGI app (FastAPI's TestClient, real SQLite, real argon2):
users and roles, login sessions, CSRF, the login rate limit, role checks, escaping of untrusted text,
background jobs, the live metrics stream, forms generated from the settings, four-eyes approval."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tailorlm.config import TrainSettings
from tailorlm.errors import UserError
from tailorlm.registry import Artifact, ModelMeta, RunMeta
from tailorlm.web import jobs
from tailorlm.web.app import create_app
from tailorlm.web.forms import form_fields, parse_form
from tailorlm.web.routes.runs import read_metrics
from tailorlm.web.server import DashboardError, check_listening
from tailorlm.web.users import add_user, authenticate, get_user, list_users, remove_user, set_password

PASSWORD = "correct horse battery"
XSS = '<script>alert("pwned")</script> and <img src=x onerror=alert(1)>'


@pytest.fixture
def people(workspace):
    for name, role in (("ada", "admin"), ("eddie", "editor"), ("april", "approver"), ("vic", "viewer")):
        add_user(workspace, name, role, PASSWORD)
    return workspace


def client(workspace, **options) -> TestClient:
    scheme = "https" if options.get("secure_cookies") else "http"  # a Secure cookie only comes back over TLS
    return TestClient(create_app(workspace, **options), base_url=f"{scheme}://127.0.0.1")


def login(http: TestClient, name: str, password: str = PASSWORD):
    form = http.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)[1]
    return http.post("/login", data={"name": name, "password": password, "login_token": token}, follow_redirects=False)


def csrf_of(http: TestClient) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]*)"', http.get("/").text)[1]


# --- users ------------------------------------------------------------------------------------------


def test_users_are_stored_with_argon2_hashes_and_roles(workspace):
    add_user(workspace, "alice", "approver", PASSWORD)
    stored = workspace.registry.execute("SELECT hash FROM users WHERE name = 'alice'").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert authenticate(workspace, "alice", PASSWORD).role == "approver"
    assert authenticate(workspace, "alice", "wrong password") is None
    assert authenticate(workspace, "nobody", PASSWORD) is None
    set_password(workspace, "alice", "another long one")
    assert authenticate(workspace, "alice", PASSWORD) is None
    assert authenticate(workspace, "alice", "another long one") is not None
    assert [u.name for u in list_users(workspace)] == ["alice"]
    remove_user(workspace, "alice")
    assert list_users(workspace) == []
    actions = [e["action"] for e in workspace.audit.events()]
    assert actions == ["user.add", "user.passwd", "user.remove"]


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("bob", "boss", PASSWORD, "unknown role 'boss'"),
        ("bob", "viewer", "short", "at least 8 characters"),
        ("bad name!", "viewer", PASSWORD, "user name 'bad name!'"),
    ],
)
def test_bad_users_are_refused_naming_the_problem(workspace, name, role, password, message):
    with pytest.raises(UserError, match=re.escape(message)):
        add_user(workspace, name, role, password)
    assert list_users(workspace) == []


def test_users_cli_add_list_passwd_remove(tmp_path):
    from typer.testing import CliRunner

    from tailorlm.cli import app
    from tailorlm.workspace import Workspace

    runner, ws = CliRunner(), str(tmp_path / "ws")
    Workspace(Path(ws)).close()
    added = runner.invoke(app, ["users", "add", "carol", "--role", "editor", "--password", PASSWORD, "-w", ws])
    assert added.exit_code == 0, added.output
    duplicate = runner.invoke(app, ["users", "add", "carol", "--password", PASSWORD, "-w", ws])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    listed = runner.invoke(app, ["users", "list", "--json", "-w", ws])
    assert json.loads(listed.output)[0] | {"created_at": ""} == {"name": "carol", "role": "editor", "created_at": ""}
    assert runner.invoke(app, ["users", "passwd", "carol", "--password", "a new password", "-w", ws]).exit_code == 0
    assert runner.invoke(app, ["users", "remove", "carol", "-w", ws]).exit_code == 0
    missing = runner.invoke(app, ["users", "remove", "carol", "-w", ws])
    assert missing.exit_code == 1 and "no user 'carol'" in missing.output


# --- listening and logging in -------------------------------------------------------------------------


def test_listening_beyond_loopback_needs_logins(workspace):
    with pytest.raises(DashboardError, match="without logins"):
        check_listening(workspace, "0.0.0.0", auth=False)
    check_listening(workspace, "127.0.0.1", auth=False)
    with pytest.raises(DashboardError, match="no dashboard user"):
        check_listening(workspace, "0.0.0.0", auth=True)
    add_user(workspace, "ada", "admin", PASSWORD)
    check_listening(workspace, "0.0.0.0", auth=True)


def test_ui_cli_refuses_an_open_dashboard_on_the_network(tmp_path):
    from typer.testing import CliRunner

    from tailorlm.cli import app
    from tailorlm.workspace import Workspace

    Workspace(tmp_path / "ws").close()
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--no-auth", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without logins" in result.output
    assert "Traceback" not in result.output


def test_pages_need_a_login_and_the_session_cookie_is_locked_down(people):
    http = client(people, secure_cookies=True)
    assert http.get("/runs", follow_redirects=False).headers["location"] == "/login?next=/runs"
    assert http.get("/api/runs/x/metrics").status_code == 401
    response = login(http, "eddie")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "tailorlm_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" in cookie
    assert http.get("/").status_code == 200
    headers = http.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert people.audit.events()[-1]["action"] == "ui.login" and people.audit.events()[-1]["user"] == "eddie"
    http.post("/logout", data={"csrf": csrf_of(http)})
    assert http.get("/", follow_redirects=False).status_code == 303


def test_login_redirect_stays_on_this_server(people):
    http = client(people)
    form = http.get("/login?next=//evil.example/x")
    assert 'name="next" value="/"' in form.text


def test_failed_logins_are_rate_limited(people):
    http = client(people)
    for _ in range(5):
        assert login(http, "vic", "wrong password").status_code == 401
    limited = login(http, "vic")  # even the right password waits now
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "Too many failed attempts" in limited.text
    assert [e["action"] for e in people.audit.events()].count("ui.login.failed") == 5


# --- CSRF and roles ---------------------------------------------------------------------------------------


def test_every_state_change_needs_the_csrf_token(people):
    http = client(people)
    login(http, "eddie")
    refused = http.post("/data/prepare", data={})
    assert refused.status_code == 403 and "security token" in refused.text
    refused = http.post("/api/playground/feedback", json={"model": "m", "messages": [], "answer": ""})
    assert refused.status_code == 403
    assert not list(people.root.glob("ui-jobs/*"))


def test_a_viewer_is_refused_editing_and_sees_no_edit_controls(people):
    http = client(people)
    login(http, "vic")
    token = csrf_of(http)
    for path in ("/data/prepare", "/runs/new", "/evals/new", "/models/x/decide", "/jobs/job-x/cancel"):
        response = http.post(path, data={"csrf": token})
        assert response.status_code == 403, path
        assert "vic is a viewer" in response.text
    assert "Start a training run" not in http.get("/runs").text
    assert "Prepare a dataset" not in http.get("/data").text
    assert not list(people.root.glob("ui-jobs/*"))


# --- escaping -----------------------------------------------------------------------------------------------


def test_untrusted_text_renders_as_text(people, tiny_project, tmp_path):
    from tailorlm.dataset_import import import_dataset

    rows = [
        {"messages": [{"role": "user", "content": f"Question {i}: {XSS}"}, {"role": "assistant", "content": XSS}]}
        for i in range(12)
    ]
    data = tmp_path / "xss.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    project = tiny_project.model_copy(deep=True)
    project.prepare.dedup.near_threshold = None  # twelve questions alike but for their number
    dataset = import_dataset(people, data, project=project, name="xss")
    http = client(people)
    login(http, "vic")
    html = http.get(f"/data/{dataset.id}").text
    assert "&lt;script&gt;alert(" in html and "onerror=alert(1)&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert 'class="tok trained' in html and 'class="tok masked' in html  # rendered as training sees it


# --- forms from the settings ----------------------------------------------------------------------------------


def test_the_train_form_is_the_documented_settings():
    fields = {f.name: f for f in form_fields(TrainSettings)}
    assert fields["lora.r"].help == TrainSettings.model_fields["lora"].annotation.model_fields["r"].description
    assert fields["method"].input == "select" and "qlora" in fields["method"].choices
    assert fields["group_by_length"].input == "checkbox"
    nested = {name for name, info in TrainSettings.model_fields.items() if hasattr(info.annotation, "model_fields")}
    assert set(fields) >= set(TrainSettings.model_fields) - nested  # every setting has an input
    assert {f"lora.{name}" for name in ("r", "alpha", "dropout", "targets")} <= set(fields)  # nested ones flattened
    settings, problem = parse_form(TrainSettings, {"method": "lora", "max_steps": "7", "lora.r": "4"})
    assert problem is None and settings["max_steps"] == 7 and settings["lora"]["r"] == 4
    settings, problem = parse_form(TrainSettings, {"lora.r": "0", "epochs": "many"})
    assert settings is None and "lora.r" in problem and "epochs" in problem


def test_a_bad_form_is_shown_again_with_the_field_named(people, tiny_project):
    people.project_file.write_text(f"project: t\nbase_model: {tiny_project.base_model}\n")
    http = client(people)
    login(http, "eddie")
    response = http.post("/runs/new", data={"csrf": csrf_of(http), "lora.r": "0"})
    assert response.status_code == 400 and "lora.r: Input should be greater than 0" in response.text
    assert not list(people.root.glob("ui-jobs/*"))


# --- jobs ---------------------------------------------------------------------------------------------------


def wait_for(job_id: str, workspace, timeout: float = 120.0) -> jobs.Job:
    deadline = time.monotonic() + timeout
    while not (job := jobs.get_job(workspace, job_id)).finished:
        assert time.monotonic() < deadline, jobs.log_tail(workspace, job_id)
        time.sleep(0.2)
    return job


def test_a_failed_job_shows_its_error_message(people):
    http = client(people)
    login(http, "eddie")
    started = http.post("/runs/run-missing/resume", data={"csrf": csrf_of(http)}, follow_redirects=False)
    assert started.status_code == 404  # no such run: refused before anything is queued
    response = http.post("/data/prepare", data={"csrf": csrf_of(http)}, follow_redirects=False)
    job_id = response.headers["location"].rsplit("/", 1)[1]
    job = wait_for(job_id, people)  # the dashboard started a worker for it
    assert job.status == "failed" and job.exit_code == 1 and job.user == "eddie"
    assert "error: no project file" in job.error
    page = http.get(f"/jobs/{job_id}").text
    assert "error: no project file" in page and "failed" in page
    state = http.get(f"/api/jobs/{job_id}").json()
    assert state["status"] == "failed" and state["finished"] and "no project file" in state["log"]
    queued = next(e for e in people.audit.events() if e["action"] == "ui.job")
    assert queued["user"] == "eddie" and queued["outputs"] == [job_id]


def test_a_job_is_cancelled_with_its_process(people):
    from tailorlm import jobs as queue

    job = queue.submit(people, "train", ["--resume", "run-missing"])  # queued, no worker of its own yet
    http = client(people)
    login(http, "eddie")
    cancelled = http.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf_of(http)})
    assert cancelled.status_code == 200 and "cancelled" in cancelled.text
    assert queue.get(people, job.id).status == "cancelled"
    assert people.audit.events()[-1]["action"] == "ui.job.cancel" and people.audit.events()[-1]["user"] == "eddie"


# --- live metrics -------------------------------------------------------------------------------------------------


def test_metrics_reader_waits_for_whole_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    rows, offset = read_metrics(path)
    assert rows == [{"step": 1, "loss": 2.0}]
    with path.open("a") as handle:
        handle.write('ss": 1.5}\n')
    rows, _ = read_metrics(path, offset)
    assert rows == [{"step": 2, "loss": 1.5}]


def test_the_loss_stream_sends_each_new_line_then_done(people):
    run_dir = people.run_dir("run-live")
    run_dir.mkdir(parents=True)
    metrics = run_dir / "metrics.jsonl"
    metrics.write_text('{"step": 1, "loss": 3.0}\n')
    meta = RunMeta(method="lora", base_model="/models/x", dataset="dataset-x-v1")
    people.registry.add(Artifact("run-live", "run", "run-live", "h", "runs/run-live", meta, status="running"))

    def train() -> None:
        for step in range(2, 6):
            time.sleep(0.3)
            with metrics.open("a") as handle:
                handle.write(json.dumps({"step": step, "loss": 3.0 - step / 10}) + "\n")
        people.registry.update("run-live", status="complete")

    http = client(people)
    login(http, "vic")
    trainer = threading.Thread(target=train)
    trainer.start()
    steps, done = [], None
    with http.stream("GET", "/api/runs/run-live/stream") as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "metrics":
                steps.append(json.loads(line[6:])["step"])
            elif line.startswith("data: ") and event == "done":
                done = json.loads(line[6:])
                break
    trainer.join()
    assert steps == [1, 2, 3, 4, 5] and done == {"status": "complete"}


# --- approvals ------------------------------------------------------------------------------------------------------


def test_four_eyes_the_registrant_cannot_approve_their_model(people):
    meta = ModelMeta(name="acme", version="v1", run="run-1", artifact="runs/run-1/adapter", base_model="/m")
    people.registry.add(Artifact("model-acme-v1", "model", "acme", "h", "models/acme/v1", meta, version="v1"))
    people.audit.append("register", outputs=["model-acme-v1"], user="april")
    http = client(people)
    login(http, "april")
    refused = http.post("/models/model-acme-v1/decide", data={"csrf": csrf_of(http), "decision": "approve"})
    assert refused.status_code == 400 and "four-eyes" in refused.text
    rejected = http.post("/models/model-acme-v1/decide", data={"csrf": csrf_of(http), "decision": "reject"})
    assert rejected.status_code == 400 and "a rejection needs a reason" in rejected.text
    http = client(people)
    login(http, "ada")
    approved = http.post("/models/model-acme-v1/decide", data={"csrf": csrf_of(http), "decision": "approve"})
    assert approved.status_code == 200 and 'id="approval-state">approved<' in approved.text
    decision = people.audit.events()[-1]
    assert decision["action"] == "approve" and decision["user"] == "ada"


def test_every_page_answers_on_an_empty_workspace(people):
    http = client(people)
    login(http, "vic")
    for path in ("/", "/data", "/runs", "/runs/new", "/evals", "/playground", "/models", "/audit", "/jobs"):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text[:500])
    missing = http.get("/runs/run-nope")
    assert missing.status_code == 404 and "no artifact &#39;run-nope&#39;" in missing.text


def test_get_user_names_the_missing_user(workspace):
    with pytest.raises(UserError, match="no user 'ghost'"):
        get_user(workspace, "ghost")


def test_the_static_assets_ship_in_the_package():
    static = Path(__file__).resolve().parents[2] / "src" / "tailorlm" / "web" / "static"
    assert {p.name for p in static.iterdir()} >= {"app.js", "app.css"}
    assert "http" not in re.sub(r"http://www\.w3\.org/2000/svg", "", (static / "app.js").read_text())


def test_retrieved_passages_join_the_system_prompt_as_the_rag_baseline_asks():
    from tailorlm.evaluate.baselines import RAG_INSTRUCTION, Passage
    from tailorlm.web.routes.playground import with_context

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund?"}]
    asked = with_context(messages, [Passage("Refunds take ten days.", title="refund-policy")])
    assert asked[0] == {
        "role": "system",
        "content": f"Be brief.\n\n{RAG_INSTRUCTION}\n\n[1] refund-policy\nRefunds take ten days.",
    }
    assert asked[1:] == messages[1:]
    assert with_context(messages, []) == messages


def test_the_journey_says_what_is_stale_and_what_to_do_next(people, tiny_project):
    from tailorlm.config import load_project
    from tailorlm.registry import DatasetMeta
    from tailorlm.web.journey import journey, next_action

    people.project_file.write_text(f"project: t\nbase_model: {tiny_project.base_model}\n")
    old, new = "2020-01-01T00:00:00+00:00", "2099-01-01T00:00:00+00:00"
    for version, stamp in (("v1", old), ("v2", new)):
        meta = DatasetMeta(counts={"train": 3})
        people.registry.add(
            Artifact(
                f"dataset-t-{version}",
                "dataset",
                "t",
                "h",
                f"datasets/t/{version}",
                meta,
                version=version,
                created_at=stamp,
            )
        )
    run_meta = RunMeta(method="lora", base_model="/m", dataset="dataset-t-v1")
    people.registry.add(Artifact("run-old", "run", "run-old", "h", "runs/run-old", run_meta, created_at=new))
    stages = {stage.name: stage for stage in journey(people, load_project(people.project_file))}
    assert stages["prepare"].stale is None  # v2 is newer than the project file
    assert stages["train"].stale == "trained on dataset-t-v1, not the latest dataset-t-v2"
    assert stages["evaluate"].artifact is None
    assert next_action(list(stages.values()))[1] == "/runs/new"
    people.registry.update("dataset-t-v2", created_at=old)
    assert "changed after v2 was built" in journey(people, load_project(people.project_file))[1].stale
