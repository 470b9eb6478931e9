"""The web console end to end in headless Chromium: a real console server (uvicorn), real job
processes, a real browser. Upload a bad file and see why it is refused, upload a good one and
read its validation report, train a tiny model and watch its progress arrive, reload the page
mid-training and see it go on, open the report, try the model, add it to the registry,
promote it and predict with the served version. Each page visited passes the basic
accessibility checks (labels, contrast, keyboard focus); screenshots are saved (into
``$DOMAINFIT_SCREENSHOTS`` when set, as docs/console.md's pictures are made)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import write_intents_csv
from helpers import headless_chromium, running_app

pytestmark = pytest.mark.integration

A11Y = (Path(__file__).parent / "assets" / "a11y_check.js").read_text(encoding="utf-8")


def wait_for(condition, timeout: float = 90, what: str = "the page"):
    """``condition()``'s first true value; a page that changes under it (a reload, the job
    page reloading itself at the end) is looked at again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = condition()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def check_accessible(driver, tabs: int = 40) -> None:
    """No problems from the in-page checks, and Tab moves a visible focus through the page's
    controls in order (each focused element shows an outline or a ring)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    problems = driver.execute_script(A11Y.replace("(function () {", "return (function () {", 1))
    assert problems == [], f"{driver.current_url}: {problems}"
    focusable = driver.execute_script(
        "return [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, "
        "[tabindex=\"0\"]')].filter(e => e.getBoundingClientRect().width > 0 && !e.disabled).length")
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    seen = []
    for _ in range(min(tabs, focusable)):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        info = driver.execute_script(
            "const e = document.activeElement; const s = getComputedStyle(e);"
            "return [e.outerHTML.slice(0, 80), s.outlineStyle, parseFloat(s.outlineWidth), s.boxShadow,"
            "e === document.body]")
        html, style, width, shadow, is_body = info
        assert not is_body, f"{driver.current_url}: Tab left the page's controls after {len(seen)} of {focusable}"
        assert (style != "none" and width > 0) or shadow != "none", f"no visible focus on {html}"
        seen.append(html)
    assert len(set(seen)) == len(seen), f"{driver.current_url}: Tab came back to an element: {seen}"


def shot(driver, folder: Path, name: str) -> None:
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    path = folder / f"console-{name}.png"
    driver.save_screenshot(str(path))
    target = os.environ.get("DOMAINFIT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    assert path.stat().st_size > 5000


def test_console_from_upload_to_served_model(tiny_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from domainfit.console import ConsoleSettings, create_console_app

    bad = tmp_path / "complaints.csv"
    bad.write_bytes("text,label\nmy card is lost,card\n".encode() + "caf\xe9 card,card\n".encode("latin-1"))
    good = write_intents_csv(tmp_path / "intents.csv", per_class=100)
    app = create_console_app(ConsoleSettings(root=tmp_path / "root"))
    driver = headless_chromium("--window-size=1280,1000", browser_log=True)
    try:
        with running_app(app) as url:
            driver.get(url + "/")  # the root sends the browser to the console
            wait_for(lambda: "From your data" in driver.page_source, what="the overview")
            check_accessible(driver)
            shot(driver, tmp_path, "overview")

            # A file that is not UTF-8: refused with the line, and not kept.
            driver.get(url + "/console/data")
            check_accessible(driver)
            driver.find_element(By.ID, "file").send_keys(str(bad))
            driver.find_element(By.CSS_SELECTOR, "#upload-form button").click()
            status = wait_for(lambda: "UTF-8" in driver.find_element(By.ID, "upload-status").text and
                              driver.find_element(By.ID, "upload-status").text, what="the upload's error")
            assert "line 3" in status and "complaints.csv" in status
            assert not (tmp_path / "root" / "data" / "complaints.csv").exists()
            shot(driver, tmp_path, "upload-error")

            # A good file: its validation report, label chart and preview.
            driver.find_element(By.ID, "file").send_keys(str(good))
            driver.find_element(By.CSS_SELECTOR, "#upload-form button").click()
            wait_for(lambda: "/console/data/view" in driver.current_url, what="the data page")
            assert "300 rows read: 300 can train" in driver.page_source
            bars = driver.find_elements(By.CSS_SELECTOR, ".barlist li")
            assert len(bars) == 3 and all(b.text.endswith("100") for b in bars)
            check_accessible(driver)
            shot(driver, tmp_path, "data")

            # Train: the suggestion and the estimate, then a job whose progress streams in.
            driver.find_element(By.LINK_TEXT, "Train a model on this file").click()
            wait_for(lambda: "Suggested method" in driver.page_source, what="the train page")
            assert "estimated" in driver.page_source or "about" in driver.page_source
            check_accessible(driver)
            model = driver.find_element(By.ID, "model")
            model.clear()
            model.send_keys(str(tiny_model))
            Select(driver.find_element(By.ID, "method")).select_by_value("full")
            driver.find_element(By.ID, "epochs").send_keys("3")
            driver.find_element(By.ID, "batch_size").send_keys("1")
            driver.find_element(By.ID, "name").send_keys("intents")
            shot(driver, tmp_path, "train")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/train'] button[type=submit]").click()
            wait_for(lambda: "/console/jobs/" in driver.current_url, what="the job page")
            job_url = driver.current_url
            first = wait_for(lambda: _steps(driver), what="the first training steps")
            shot(driver, tmp_path, "job-running")

            driver.refresh()  # a reload mid-training loses nothing: the page picks the job up again
            assert "running" in driver.find_element(By.ID, "job-status").text
            later = wait_for(lambda: (_steps(driver) or 0) > first and _steps(driver), what="more steps after reload")
            assert later > first
            wait_for(lambda: "Finished" in driver.page_source, timeout=180, what="the end of training")
            assert driver.current_url == job_url
            assert "done" in driver.find_element(By.ID, "job-status").text
            points = driver.execute_script("return document.querySelectorAll('#curve polyline, #curve circle').length")
            assert points >= 2  # the loss line and validation points
            check_accessible(driver)
            shot(driver, tmp_path, "job-done")

            # The run: its report, and the model tried on a text, with the deciding words.
            driver.find_element(By.PARTIAL_LINK_TEXT, "open runs/intents").click()
            wait_for(lambda: "Evaluation report" in driver.page_source, what="the run page")
            assert driver.find_elements(By.CSS_SELECTOR, ".report table")
            text = driver.find_element(By.ID, "try-text")
            text.send_keys("where is my card")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/runs/try'] button").click()
            label = wait_for(lambda: driver.find_elements(By.ID, "try-label"), what="a prediction")[0].text
            assert label in ("card_arrival", "refund", "password")
            assert driver.find_elements(By.CSS_SELECTOR, ".words .w")
            check_accessible(driver)
            shot(driver, tmp_path, "run")

            # Deploy: add to the registry, promote, predict with the served version.
            driver.get(url + "/console/deploy")
            Select(driver.find_element(By.ID, "add-run")).select_by_value("intents")
            name = driver.find_element(By.ID, "add-name")
            name.clear()
            name.send_keys("intents")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/deploy/add'] button").click()
            wait_for(lambda: _stage(driver, 1) == "staging", what="the new version")
            driver.find_element(By.CSS_SELECTOR, "button[aria-label='Promote intents version 1']").click()
            wait_for(lambda: _stage(driver, 1) == "production", what="the promotion")

            def served():
                driver.get(url + "/console/deploy")
                return "Serving: " in driver.page_source

            wait_for(served, timeout=30, what="the server to pick the promotion up")
            driver.find_element(By.ID, "served-text").send_keys("i want a refund")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/predict'] button").click()
            served_label = wait_for(lambda: driver.find_elements(By.ID, "served-label"), what="a served prediction")
            assert served_label[0].text in ("card_arrival", "refund", "password")
            check_accessible(driver)
            shot(driver, tmp_path, "deploy")

            # Improve: pick texts the model is unsure of, label them with the keyboard, save the
            # labels as a training file, retrain from them.
            driver.get(url + "/console/review")
            check_accessible(driver)
            Select(driver.find_element(By.ID, "sel-pool")).select_by_value("data/intents.csv")
            budget = driver.find_element(By.ID, "sel-budget")
            budget.clear()
            budget.send_keys("3")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/review/select'] button").click()
            wait_for(lambda: "done" in driver.find_element(By.ID, "job-status").text, what="the picks")
            driver.get(url + "/console/review")
            driver.find_element(By.LINK_TEXT, "runs/intents").click()
            for left in (3, 2, 1):
                wait_for(lambda: f"{left} to review" in driver.page_source, what="the review item")
                if left == 3:
                    check_accessible(driver)
                    shot(driver, tmp_path, "review")
                text = driver.find_element(By.ID, "review-text").text
                assert text
                driver.find_element(By.TAG_NAME, "body").send_keys("1")  # the first label's shortcut
            wait_for(lambda: "Nothing left to review" in driver.page_source, what="the end of the queue")
            driver.get(url + "/console/review")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/review/export'] button").click()
            notice = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "p.notice"), what="the labels")[0].text
            assert notice == "3 labelled row(s) written to data/reviewed-runs-intents.csv", notice
            rows = (tmp_path / "root" / "data" / "reviewed-runs-intents.csv").read_text().splitlines()
            assert rows[0] == "text,label" and len(rows) == 4
            driver.get(url + "/console/review")
            Select(driver.find_element(By.ID, "re-add")).select_by_value("data/reviewed-runs-intents.csv")
            driver.find_element(By.ID, "re-epochs").send_keys("1")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/review/retrain'] button").click()
            wait_for(lambda: driver.find_element(By.ID, "job-status").text in ("done", "failed"), timeout=180,
                     what="the retrained model")
            assert "runs/intents-retrained" in driver.page_source

            # Compare the two runs; export the new one to ONNX int8 (with its parity); add it as
            # version 2, promote it, and roll back to version 1.
            driver.get(url + "/console/runs")
            check_accessible(driver)
            for box in driver.find_elements(By.CSS_SELECTOR, "input[name=run]"):
                box.click()
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/runs/compare'] button").click()
            wait_for(lambda: "Comparison of 2 runs" in driver.page_source, what="the comparison")
            assert "Final metrics" in driver.page_source and driver.find_elements(By.CSS_SELECTOR, "td strong")
            check_accessible(driver)
            shot(driver, tmp_path, "compare")
            driver.get(url + "/console/deploy")
            Select(driver.find_element(By.ID, "export-run")).select_by_value("intents-retrained")
            driver.find_element(By.ID, "quantize").click()  # fp32: int8 agrees too little on the tiny model
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/deploy/export'] button").click()
            wait_for(lambda: driver.find_element(By.ID, "job-status").text in ("done", "failed"), timeout=180,
                     what="the export")
            assert "Finished" in driver.page_source, driver.find_element(By.ID, "job-log").text
            driver.get(url + "/console/deploy")
            parity = driver.find_element(By.PARTIAL_LINK_TEXT, "intents-retrained-onnx").find_element(By.XPATH, "..")
            assert "agrees with the original on" in parity.text and "%" in parity.text
            Select(driver.find_element(By.ID, "add-run")).select_by_value("exports/intents-retrained-onnx")
            driver.find_element(By.CSS_SELECTOR, "form[action='/console/deploy/add'] button").click()
            wait_for(lambda: _stage(driver, 2) or driver.find_element(By.TAG_NAME, "h1").text != "Deploy",
                     what="the new version")
            heading = driver.find_element(By.TAG_NAME, "h1").text
            assert heading == "Deploy", driver.find_element(By.TAG_NAME, "main").text
            driver.find_element(By.CSS_SELECTOR, "button[aria-label='Promote intents version 2']").click()
            wait_for(lambda: _stage(driver, 2) == "production" and _stage(driver, 1) == "archived", what="version 2")
            driver.find_element(By.XPATH, "//button[normalize-space()='Roll back intents']").click()
            wait_for(lambda: _stage(driver, 1) == "production", what="the rollback")
            shot(driver, tmp_path, "deploy-rollback")

            for page in ("jobs", "apps", "login", "runs/view?run=no-such-run"):
                driver.get(f"{url}/console/{page}")
                check_accessible(driver)
            assert "no model named 'no-such-run'" in driver.find_element(By.CSS_SELECTOR, "p.error").text
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                      and "/console/api/uploads - Failed to load resource: the server responded with a status of 422"
                      not in e["message"]  # the refused upload above
                      and "no-such-run - Failed to load resource" not in e["message"]]  # the 404 page above
            assert errors == [], [e["message"] for e in errors]
    finally:
        driver.quit()


def _stage(driver, version: int) -> str:
    """The registry table's stage of version ``version`` of ``intents``."""
    for row in driver.find_elements("css selector", "table tbody tr"):
        cells = [c.text for c in row.find_elements("tag name", "td")]
        if cells[:2] == ["intents", str(version)]:
            return cells[2].split(" ")[0]
    return ""


def _steps(driver) -> int | None:
    """The step the job page shows (None before the first one)."""
    text = driver.find_element("id", "job-steps").text
    return int(text.split()[1]) if text.startswith("step ") else None
