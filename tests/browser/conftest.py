"""The browser tier: the dashboard served by the real `tailorlm ui` (uvicorn, in a subprocess) on a workspace
built once by `tailorlm quickstart --smoke`, driven in Debian's chromium through selenium. Skipped with the
reason when chromium, chromedriver or selenium is absent. Screenshots go to $TAILORLM_TEST_ARTIFACTS (default:
a temp folder, printed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "browser test password"
USERS = {"ada": "admin", "eddie": "editor", "bob": "approver", "vera": "viewer"}
XSS = '<script>window.pwned = "script"</script><img src=x onerror="window.pwned = \'onerror\'">'


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.fspath)).parents]
    reason = None
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        reason = (
            f"needs chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium chromium-driver"
        )
    else:
        try:
            import selenium  # noqa: F401
        except ImportError:
            reason = "needs selenium (the dev extra)"
    if reason:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))


def tailorlm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tailorlm.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, f"tailorlm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("TAILORLM_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"browser screenshots: {folder}")
    return folder


@pytest.fixture(scope="session")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the whole journey (dataset, run, evaluation, model), users of every role, and a
    dataset holding a hostile document."""
    from tailorlm.config import load_project
    from tailorlm.dataset_import import import_dataset
    from tailorlm.web.users import add_user
    from tailorlm.workspace import Workspace

    root = tmp_path_factory.mktemp("dashboard") / "ws"
    tailorlm("quickstart", "--smoke", "--workspace", str(root))
    hostile = root.parent / "hostile.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"{word} question {XSS}"}, {"role": "assistant", "content": XSS}]}
        for word in ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliet")
    ]
    hostile.write_text("".join(json.dumps(row) + "\n" for row in rows))
    workspace = Workspace(root)
    project = load_project(workspace.project_file)
    project.prepare.dedup.near_threshold = None  # ten rows alike but for their first word
    import_dataset(workspace, hostile, project=project, name="hostile")
    for name, role in USERS.items():
        add_user(workspace, name, role, PASSWORD)
    workspace.close()
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def dashboard(journey: Path, artifacts: Path) -> Iterator[str]:
    """`tailorlm ui` on a free loopback port; yields its URL."""
    port = free_port()
    log = (artifacts / "ui-server.log").open("w")
    env = {**os.environ, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tailorlm.cli", "ui", "--workspace", str(journey), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            assert process.poll() is None, (artifacts / "ui-server.log").read_text()
            assert time.monotonic() < deadline, "the dashboard did not start in 60 s"
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="session")
def chrome() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    driver.test_password = PASSWORD  # every user of the journey workspace has it
    yield driver
    driver.quit()


@pytest.fixture
def browser(chrome, dashboard):
    """The session's browser, logged out, at the dashboard."""
    chrome.delete_all_cookies()
    chrome.get(f"{dashboard}/login")
    return chrome
