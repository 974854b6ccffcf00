"""The dashboard in a real browser: log in; data as training sees it; a run's loss curve drawn with points;
a tiny training run started from the form whose curve grows live until it completes; an evaluation
compared side by side; the playground streaming two answers and storing a rating; a second user
approving a model; a viewer refused; a hostile document rendered as text. axe-core checks every page
for serious or critical accessibility violations; each test saves a screenshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tailorlm.workspace import Workspace

pytestmark = pytest.mark.browser
WebDriverException = pytest.importorskip("selenium.common.exceptions").WebDriverException

SERIOUS = ("serious", "critical")


def wait(condition: Callable[[], Any], timeout: float = 60, every: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (IndexError, WebDriverException):  # an element not there yet
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what or condition}"
        time.sleep(every)


def login(browser, dashboard: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{dashboard}/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(browser.test_password)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(lambda: "/login" not in browser.current_url, 15, what="the login to finish")


def check_page(browser, artifacts: Path, name: str) -> None:
    """Screenshot, then axe-core: no serious or critical violation."""
    from axe_selenium_python import Axe

    browser.save_screenshot(str(artifacts / f"{name}.png"))
    axe = Axe(browser)
    axe.inject()
    results = axe.run()
    bad = [v for v in results["violations"] if v.get("impact") in SERIOUS]
    assert not bad, axe.report(bad)


def find(browser, css: str):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, css)


def latest(journey: Path, kind: str) -> str:
    """The chat journey's latest artifact of `kind` (the quickstart also trains a ticket router)."""
    workspace = Workspace(journey)
    try:
        return workspace.registry.find(kind, name="acme-support")[0].id
    finally:
        workspace.close()


def test_log_in_and_see_the_journey(browser, dashboard, artifacts):
    login(browser, dashboard, "vera")
    stages = [e.text.lower() for e in find(browser, ".journey .stage-name")]
    assert stages == ["ingest", "prepare", "train", "evaluate", "register", "deploy"]
    assert find(browser, ".next a")
    check_page(browser, artifacts, "overview")


def test_data_as_training_sees_it(browser, dashboard, artifacts):
    login(browser, dashboard, "vera")
    browser.get(f"{dashboard}/data/dataset-acme-support-v1")
    assert find(browser, ".rendered .tok.trained") and find(browser, ".rendered .tok.masked")
    assert "<|im_start|>assistant" in find(browser, ".rendered")[0].text
    assert find(browser, ".rendered .eos")  # the end-of-sequence token training sees
    check_page(browser, artifacts, "data")


def test_a_run_shows_its_loss_curve_with_points(browser, dashboard, artifacts, journey):
    run = latest(journey, "run")
    login(browser, dashboard, "vera")
    browser.get(f"{dashboard}/runs/{run}")
    points = wait(lambda: int(find(browser, "figure.chart")[0].get_attribute("data-points") or 0), 15, what="points")
    assert points >= 5
    assert len(find(browser, "figure.chart circle.point")) == points
    assert len(find(browser, "figure.chart path.series")) == 2  # train and validation loss
    check_page(browser, artifacts, "run")


def test_start_a_run_from_the_form_and_watch_it_grow(browser, dashboard, artifacts, journey):
    from selenium.webdriver.common.by import By

    login(browser, dashboard, "eddie")
    browser.get(f"{dashboard}/runs/new")
    check_page(browser, artifacts, "train-form")
    small = {"max_steps": "16", "logging_steps": "1", "eval_steps": "4", "save_steps": "8", "batch_size": "2"}
    for name, value in {**small, "max_length": "128"}.items():
        field = browser.find_element(By.ID, f"f-{name}")
        field.clear()
        field.send_keys(value)
    browser.find_element(By.ID, "f-force").click()
    browser.find_element(By.CSS_SELECTOR, "#train-form button[type=submit]").click()
    wait(lambda: "/jobs/job-" in browser.current_url, 15, what="the job page")
    seen: list[int] = []

    def finished() -> bool:
        count = int(find(browser, "figure.chart")[0].get_attribute("data-points") or 0)
        if count and (not seen or seen[-1] != count):
            seen.append(count)
        status = find(browser, ".job-status")[0].text
        assert status != "failed", find(browser, ".log")[0].text
        return status == "complete" and bool(find(browser, "figure.chart[data-done='yes']"))

    wait(finished, 300, 0.2, "the training job to complete")
    browser.save_screenshot(str(artifacts / "training-live.png"))
    assert len(seen) >= 2 and seen == sorted(seen), f"the curve did not grow live: {seen}"
    assert seen[-1] >= 16  # one train-loss point per step, plus validation
    run = find(browser, ".job-run a")[0].text
    assert run.startswith("run-")
    workspace = Workspace(journey)
    assert workspace.registry.get(run).status == "complete"
    workspace.close()


def test_compare_an_evaluation(browser, dashboard, artifacts, journey):
    evaluation = latest(journey, "evaluation")
    login(browser, dashboard, "vera")
    browser.get(f"{dashboard}/evals/{evaluation}?a=base&b=finetuned")
    ladder = [row.text.split()[0] for row in find(browser, ".ladder tbody th")]
    assert ladder[:3] == ["base", "few_shot", "rag"] and "finetuned" in ladder
    headers = [h.text for h in find(browser, ".items thead th")]
    assert headers[2:4] == ["base", "finetuned"]
    assert len(find(browser, ".items tbody tr")) == 6
    check_page(browser, artifacts, "evaluation")


def test_playground_streams_both_answers_and_stores_a_rating(browser, dashboard, artifacts, journey):
    from selenium.webdriver.common.by import By

    login(browser, dashboard, "eddie")
    browser.get(f"{dashboard}/playground")
    browser.find_element(By.ID, "p-max").clear()
    browser.find_element(By.ID, "p-max").send_keys("12")
    browser.find_element(By.ID, "p-prompt").send_keys("How do I return my thermostat?")
    browser.find_element(By.ID, "p-rag").click()  # both sides get the passages the RAG baseline retrieves
    browser.find_element(By.ID, "p-send").click()
    bubbles = wait(lambda: len(done := find(browser, ".bubble.assistant[data-done='yes']")) == 2 and done, 180)
    notes = find(browser, ".answer .context")
    assert len(notes) == 2 and all(n.text.startswith("Retrieved: ") for n in notes)
    for bubble in bubbles:
        assert "error" not in bubble.get_attribute("class"), bubble.text
        assert int(bubble.get_attribute("data-chunks")) > 1  # streamed piece by piece, not in one block
    browser.find_element(By.XPATH, "//button[text()='Good answer']").click()
    wait(lambda: "Saved as feedback." in browser.page_source, 15, what="the rating to be stored")
    check_page(browser, artifacts, "playground")
    workspace = Workspace(journey)
    events = [e for e in workspace.audit.events() if e["action"].startswith(("feedback", "playground.chat"))]
    workspace.close()
    assert any(e["user"] == "eddie" and e["action"].startswith("playground.chat") for e in events)


def test_a_second_user_approves_the_model(browser, dashboard, artifacts):
    from selenium.webdriver.common.by import By

    login(browser, dashboard, "bob")
    browser.get(f"{dashboard}/models/model-acme-support-v1")
    assert find(browser, "#approval-state")[0].text == "pending"
    browser.find_element(By.ID, "note").send_keys("checked the evaluation")
    browser.find_element(By.CSS_SELECTOR, "#decide-form button[value=approve]").click()
    wait(lambda: find(browser, "#approval-state")[0].text == "approved", 15, what="the approval")
    assert "bob" in find(browser, ".decisions")[0].text
    check_page(browser, artifacts, "model")


def test_a_viewer_is_refused_editing(browser, dashboard, artifacts, journey):
    from selenium.webdriver.common.by import By

    login(browser, dashboard, "vera")
    browser.get(f"{dashboard}/runs")
    assert "Start a training run" not in browser.page_source
    browser.get(f"{dashboard}/runs/new")  # the form reads, the post is refused
    browser.find_element(By.CSS_SELECTOR, "#train-form button[type=submit]").click()
    message = wait(lambda: find(browser, ".error-message"), 15)[0].text
    assert "vera is a viewer" in message
    browser.save_screenshot(str(artifacts / "viewer-refused.png"))
    browser.get(f"{dashboard}/models/model-acme-support-v1")
    assert not find(browser, "#decide-form")


def test_a_hostile_document_renders_as_text(browser, dashboard, artifacts, journey):
    login(browser, dashboard, "vera")
    dataset = next(d for d in Workspace(journey).registry.find("dataset") if d.name == "hostile")
    for split in ("train", "val", "test"):
        browser.get(f"{dashboard}/data/{dataset.id}?split={split}")
        if find(browser, ".rendered"):
            break
    text = " ".join(e.text for e in find(browser, ".rendered"))
    assert "<script>window.pwned" in text and "onerror=" in text
    assert browser.execute_script("return window.pwned === undefined")
    check_page(browser, artifacts, "hostile-document")
