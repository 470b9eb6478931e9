"""The monitoring dashboard (/monitor) in headless Chromium on a real server: the entity table
with its sparklines, an entity's chart with its alert markers, the alert feed, the drill-down
to highlighted documents (untrusted text stays text), and the CSV export. Saves a screenshot
in its temporary folder, and with DOMAINFIT_UPDATE_SCREENSHOTS=1 refreshes the one in
docs/images (so that a test run never changes the repository by itself)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from domainfit.apps.monitor import Monitor
from domainfit.apps.monitor.documents import check_document
from domainfit.apps.monitor.server import create_monitor_app
from domainfit.serving import ServeSettings
from helpers import headless_chromium, running_app
from monitor_helpers import T0, build_bundle, stream

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "monitor-dashboard.png"
SURGE_HOUR = 100  # 2026-01-05T04:00Z: Acme's negative surge
HOSTILE_HOUR = 130  # 2026-01-06T10:00Z, away from the surge
# A document the page must show as text: markup, a script link and a character outside the BMP
# (the server counts offsets in code points, JavaScript in UTF-16 units).
HOSTILE = {"id": "hostile", "time": T0 + HOSTILE_HOUR * 3600 + 1800, "url": "javascript:window.__clicked=1",
           "text": "Acme 📉 payment failed <img src=x onerror=\"window.__xss=1\"> card blocked still"}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, tiny_model):
    """A bundle and a store holding six days of replayed news with Acme's surge."""
    folder = tmp_path_factory.mktemp("dashboard")
    bundle = build_bundle(folder, tiny_model)
    db_url = f"sqlite:///{folder / 'monitor.db'}"
    raw = stream(days=6, surge_hour=SURGE_HOUR) + [HOSTILE]
    docs = [check_document(d, f"stream[{i}]")[0] for i, d in enumerate(sorted(raw, key=lambda d: d["time"]))]
    monitor = Monitor(bundle, db_url)
    alerts = []
    try:
        for i in range(0, len(docs), 256):
            alerts += monitor.ingest(docs[i:i + 256], replay=True)["alerts"]
    finally:
        monitor.close()
    firing = {(a["rule"], a["entity"], a["window_start"]) for a in alerts if a["state"] == "firing"}
    assert ("negative-surge", "acme", "2026-01-05T04:00:00+00:00") in firing
    return bundle, db_url


def _wait_ready(url: str) -> None:
    """The monitor loads in the server's startup; wait until its API answers."""
    deadline = time.time() + 30
    while httpx.get(f"{url}/v1/monitor/overview").status_code != 200:
        assert time.time() < deadline, "the monitor did not become ready"
        time.sleep(0.1)


def _open_entity(driver, wait, by, entity: str, name: str):
    driver.find_element(by.CSS_SELECTOR, f'#entities tr[data-entity="{entity}"] button').click()
    wait.until(lambda d: d.find_element(by.ID, "entity-heading").text == name
               and d.find_elements(by.CSS_SELECTOR, "#chart path.series-sentiment"))


@pytest.mark.integration
def test_dashboard_in_headless_chromium(monitored, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    bundle, db_url = monitored
    driver = headless_chromium("--window-size=1400,2200", browser_log=True)
    app = create_monitor_app(bundle, ServeSettings(), db_url=db_url, check_seconds=3600)
    try:
        with running_app(app) as url:
            _wait_ready(url)
            wait = WebDriverWait(driver, 30)
            driver.get(f"{url}/monitor")

            # the entity table: as the API sorts it (alerts first), a sparkline per series
            rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#entities tbody tr[data-entity]"))
            assert [r.get_attribute("data-entity") for r in rows][0] == "acme"
            assert {r.get_attribute("data-entity") for r in rows} == {"acme", "globex", "initech", "umbrella"}
            acme = rows[0]
            assert "Acme Corp" in acme.text
            sparks = acme.find_elements(By.CSS_SELECTOR, "svg.spark path")
            assert len(sparks) == 2 and all(s.get_attribute("d").count("L") > 10 for s in sparks)

            # an entity without alerts, then Acme: a chart with both series and the alert marked
            _open_entity(driver, wait, By, "globex", "Globex plc")
            assert not driver.find_elements(By.CSS_SELECTOR, "#chart .alert-marker")
            _open_entity(driver, wait, By, "acme", "Acme Corp")
            for series in ("series-sentiment", "series-volume"):
                path = driver.find_element(By.CSS_SELECTOR, f"#chart path.{series}").get_attribute("d")
                assert path.count("L") > 50, series
            markers = driver.find_elements(By.CSS_SELECTOR, "#chart .alert-marker")
            assert markers
            titles = [m.find_element(By.TAG_NAME, "title").get_attribute("textContent") for m in markers]
            assert any("2026-01-05 04:00–05:00" in t and "negative-surge firing" in t for t in titles), titles
            assert "selected" in acme.get_attribute("class")

            # the alert feed: newest first, with the negative surge
            feed = driver.find_elements(By.CSS_SELECTOR, "#alerts tbody tr[data-rule]")
            epochs = [int(r.get_attribute("data-epoch")) for r in feed]
            assert epochs == sorted(epochs, reverse=True)
            surge = driver.find_element(By.CSS_SELECTOR, '#alerts tr[data-rule="negative-surge"][data-state="firing"]')
            assert "Acme Corp" in surge.text and "negative_share" in surge.text and "firing" in surge.text

            # drill-down: the surge's documents with the words that made them negative marked
            surge.find_element(By.TAG_NAME, "button").click()
            docs = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#documents li.doc"))
            assert "negative-surge" in driver.find_element(By.ID, "documents-context").text
            assert driver.find_elements(By.CSS_SELECTOR, "#documents mark")
            api = httpx.get(f"{url}/v1/monitor/documents", params={
                "entity": "acme", "since": T0 + SURGE_HOUR * 3600, "until": T0 + (SURGE_HOUR + 1) * 3600,
                "limit": 20, "explain": "true", "order": "negative"}, timeout=60).json()["documents"]
            assert [d.get_attribute("data-id") for d in docs] == [d["id"] for d in api]
            for shown, doc in zip(docs, api):
                assert shown.find_element(By.CSS_SELECTOR, ".text").get_attribute("textContent") == doc["text"]
                marked = [m.get_attribute("textContent") for m in shown.find_elements(By.TAG_NAME, "mark")]
                words = {w["word"] for w in doc["explanation"]["words"] if w["score"] > 0}
                assert set(marked) <= words, (marked, words)
            driver.save_screenshot(str(tmp_path / "monitor-dashboard.png"))
            if os.environ.get("DOMAINFIT_UPDATE_SCREENSHOTS") == "1":
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tmp_path / "monitor-dashboard.png", SCREENSHOT)

            # keyboard: the chart takes focus, the arrow keys move through the windows and Enter
            # opens one window's documents
            points = httpx.get(f"{url}/v1/monitor/entities/acme", params={"window": "1h", "span": "7d"}).json()["points"]
            index = [p["epoch"] for p in points].index(T0 + HOSTILE_HOUR * 3600)
            chart = driver.find_element(By.ID, "chart")
            chart.send_keys(Keys.HOME + Keys.ARROW_RIGHT * index)
            wait.until(lambda d: d.find_element(By.ID, "readout").text.startswith("2026-01-06 10:00–11:00"))
            chart.send_keys(Keys.ENTER)
            # the hostile document is text: no element from it, no script run, no javascript: link
            hostile = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#documents li[data-id="hostile"]'))[0]
            assert "2026-01-06 10:00–11:00" in driver.find_element(By.ID, "documents-context").text
            window_docs = httpx.get(f"{url}/v1/monitor/documents", params={
                "entity": "acme", "since": T0 + HOSTILE_HOUR * 3600, "until": T0 + (HOSTILE_HOUR + 1) * 3600,
                "explain": "true"}, timeout=60).json()["documents"]
            words = {w["word"] for d in window_docs if d["id"] == "hostile" for w in d["explanation"]["words"]}
            assert {m.get_attribute("textContent") for m in hostile.find_elements(By.TAG_NAME, "mark")} <= words
            assert "<img src=x" in hostile.text and "📉" in hostile.text
            assert not driver.find_elements(By.CSS_SELECTOR, "#documents img, #documents script, a[href^=javascript]")
            assert driver.execute_script("return window.__xss === undefined && window.__clicked === undefined")

            # the CSV links answer with CSV
            for link in ("csv-entity", "csv-all"):
                href = driver.find_element(By.ID, link).get_attribute("href")
                answer = httpx.get(href)
                assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
                assert answer.text.splitlines()[0].startswith("key,window_start,volume,unique_volume")
            assert "entity=acme" in driver.find_element(By.ID, "csv-entity").get_attribute("href")

            # other windows and spans: 15-minute windows over 30 days redraw table, chart and links
            Select(driver.find_element(By.ID, "span")).select_by_value("30d")
            Select(driver.find_element(By.ID, "window")).select_by_value("15m")
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#chart path.series-volume")
                       .get_attribute("d").count("L") > 2000)
            assert driver.find_elements(By.CSS_SELECTOR, "#chart .alert-marker")
            assert "window=15m" in driver.find_element(By.ID, "csv-all").get_attribute("href")
            assert "windows of 15m" in driver.find_element(By.ID, "status").text

            try:
                logs = driver.get_log("browser")
            except Exception:  # a driver without the log endpoint
                logs = []
            assert not [e for e in logs if e["level"] == "SEVERE"], logs
    finally:
        driver.quit()
