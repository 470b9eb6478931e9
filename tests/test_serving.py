"""The HTTP server, for real: uvicorn on a free loopback port, SQLite feedback, a registry
folder, promotions under concurrent requests, every bad request, the auth rules, a fuzz test."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import domainfit
from domainfit.core.errors import DomainfitError
from domainfit.serving import ServeSettings, create_app
from domainfit.stores import FeedbackStore, Registry
from helpers import run_cli, running_app

KEY = "s3cret-key-for-tests"


pytestmark = pytest.mark.integration  # every test here runs a real server

@pytest.fixture(scope="module")
def models(served_models):
    return served_models


def running(source, **options):
    return running_app(create_app(source, ServeSettings(**options)))


def _error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"} and body["error"]["message"]
    return body["error"]


def test_predict_health_models_metrics(models, tmp_path):
    with running(models[0], db_url=f"sqlite:///{tmp_path / 'fb.db'}") as url:
        name = models[0].name
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/readyz").json()["models"] == [name]
        listed = httpx.get(f"{url}/v1/models").json()["models"]
        assert listed[0]["name"] == name and listed[0]["labels"] == ["card", "password", "refund"]
        r = httpx.post(f"{url}/v1/models/{name}/predict", json={"texts": ["where is my card", "reset password"],
                                                                 "top_k": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == name and body["version"] == 1 and body["request_id"] == r.headers["x-request-id"]
        assert [p["label"] for p in body["predictions"]] == ["card", "password"]
        assert len(body["predictions"][0]["top_k"]) == 2
        expected = domainfit.load(models[0]).predict(["where is my card"])[0]
        assert body["predictions"][0]["score"] == pytest.approx(expected["score"], abs=1e-5)
        as_form = httpx.post(f"{url}/v1/models/{name}/predict", content=b'{"texts": ["where is my card"]}',
                             headers={"content-type": "application/x-www-form-urlencoded"})  # what curl -d sends
        assert _error(as_form, 415)["code"] == "unsupported_media_type"  # so no web form can post to the API
        spec = httpx.get(f"{url}/openapi.json").json()
        assert "/v1/models/{name}/predict" in spec["paths"] and "/v1/feedback" in spec["paths"]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'domainfit_requests_total{endpoint="/v1/models/{name}/predict",status="200"} 1.0' in metrics
        assert 'domainfit_errors_total{endpoint="unmatched",status="415"} 1.0' in metrics  # refused unread
        assert "domainfit_batch_size_bucket" in metrics and "domainfit_request_latency_seconds_bucket" in metrics


def test_concurrent_requests_are_micro_batched(models, tmp_path):
    with running(models[0], max_wait_ms=100, max_batch=64) as url:
        name = models[0].name

        def call(i):
            return httpx.post(f"{url}/v1/models/{name}/predict", json={"texts": [f"where is my card {i}"]}, timeout=60)

        threads, results = [], [None] * 24
        for i in range(24):
            threads.append(threading.Thread(target=lambda i=i: results.__setitem__(i, call(i))))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.status_code == 200 for r in results)
        metrics = httpx.get(f"{url}/metrics").text
        calls = float(next(ln.split()[-1] for ln in metrics.splitlines()
                           if ln.startswith(f'domainfit_batch_size_count{{model="{name}"}}')))
        assert calls < 24  # several requests shared a model call


BAD = [
    (b'{"texts": ["a"', "application/json", 400, "malformed_json"),
    (b'{"texts": "not a list"}', "application/json", 422, "invalid_request"),
    (b'{"texts": [1, 2]}', "application/json", 422, "invalid_request"),
    (b'{"texts": []}', "application/json", 422, "invalid_request"),
    (b'{"texts": ["ok", "   "]}', "application/json", 422, "invalid_request"),
    (b'{"texts": ["ok"], "surprise": 1}', "application/json", 422, "invalid_request"),
    (b'{"texts": ["ok"], "pairs": ["x"]}', "application/json", 422, "invalid_request"),
    (b'{"texts": ["ok"], "top_k": 0}', "application/json", 422, "invalid_request"),
    (b'{"texts": ["caf\xe9"]}', "application/json", 400, None),
    (b"[1, 2, 3]", "application/json", 422, "invalid_request"),
    (b"", "application/json", 422, None),
    (json.dumps({"texts": ["x"] * 9}).encode(), "application/json", 413, "too_many_texts"),
    (json.dumps({"texts": ["x" * 101]}).encode(), "application/json", 413, "text_too_long"),
    (json.dumps({"texts": ["word " * 300]}).encode(), "application/json", 413, "body_too_large"),
]


def test_every_bad_request_gets_a_clear_4xx(models):
    with running(models[0], max_texts=8, max_chars=100, max_body_bytes=1000) as url:
        name = models[0].name
        for body, ctype, status, code in BAD:
            r = httpx.post(f"{url}/v1/models/{name}/predict", content=body, headers={"content-type": ctype})
            error = _error(r, status)
            if code:
                assert error["code"] == code, (body[:40], error)
        assert _error(httpx.post(f"{url}/v1/models/nope/predict", json={"texts": ["a"]}), 404)["code"] == \
            "unknown_model"
        assert _error(httpx.post(f"{url}/v1/models/..%2F..%2Fetc/predict", json={"texts": ["a"]}), 404)
        assert _error(httpx.get(f"{url}/v1/models/{name}/predict"), 405)
        assert _error(httpx.get(f"{url}/no/such/path"), 404)
        chunked = httpx.post(f"{url}/v1/models/{name}/predict", content=iter([b'{"texts": ["', b"a" * 2000, b'"]}']),
                             headers={"content-type": "application/json"})
        assert _error(chunked, 413)["code"] == "body_too_large"  # no Content-Length: counted while reading
        assert httpx.get(f"{url}/healthz").status_code == 200  # and the server is still fine


TEXT = st.text(max_size=30) | st.text(st.characters(categories=["Cs", "Lo", "Zs"]), max_size=8)  # lone surrogates
NUMBER = st.integers() | st.integers(min_value=-10 ** 30, max_value=10 ** 30) | st.floats(allow_nan=False)
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/xml", ""]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(st.none() | st.booleans() | NUMBER | TEXT,
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                             st.sampled_from(["texts", "pairs", "tokens", "query", "k", "top_k", "x"]) | TEXT,
                             inner, max_size=4), max_leaves=12),
       ctype=st.sampled_from(CONTENT_TYPES), path=st.sampled_from(["/v1/models/m1/predict", "/v1/feedback"]))
def test_fuzzed_bodies_never_get_a_5xx(fuzz_server, body, ctype, path):
    r = httpx.post(f"{fuzz_server}{path}", content=json.dumps(body).encode(), headers={"content-type": ctype})
    assert r.status_code < 500, r.text
    assert r.status_code == 200 or "error" in r.json()
    if not ctype.startswith("application/json"):
        assert r.status_code == 415


@pytest.fixture(scope="module")
def fuzz_server(models, tmp_path_factory):
    with running(models[0], db_url=f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fb.db'}") as url:
        yield url


def test_auth_rules(models, tmp_path):
    with running(models[0], db_url=f"sqlite:///{tmp_path / 'fb.db'}") as url:
        # no key configured: admin endpoints are off, predictions open
        assert _error(httpx.get(f"{url}/v1/feedback/export"), 403)["code"] == "admin_disabled"
    with running(models[0], api_key=KEY, require_key=True, db_url=f"sqlite:///{tmp_path / 'fb.db'}") as url:
        name = models[0].name
        body = {"texts": ["where is my card"]}
        assert _error(httpx.post(f"{url}/v1/models/{name}/predict", json=body), 401)["code"] == "missing_key"
        assert _error(httpx.post(f"{url}/v1/models/{name}/predict", json=body,
                                 headers={"x-api-key": "wrong"}), 403)["code"] == "wrong_key"
        assert httpx.post(f"{url}/v1/models/{name}/predict", json=body,
                          headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.post(f"{url}/v1/models/{name}/predict", json=body, headers={"x-api-key": KEY}).status_code == 200
        assert _error(httpx.get(f"{url}/v1/feedback/export"), 401)
        assert httpx.get(f"{url}/v1/feedback/export", headers={"x-api-key": KEY}).status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open
    with pytest.raises(DomainfitError, match="needs an API key"):
        ServeSettings(require_key=True, api_key=None)


def test_feedback_is_stored_and_exported(models, tmp_path):
    db = tmp_path / "feedback.db"
    with running(models[0], api_key=KEY, db_url=f"sqlite:///{db}") as url:
        r = httpx.post(f"{url}/v1/models/{models[0].name}/predict", json={"texts": ["money back please"]})
        request_id = r.json()["request_id"]
        stored = httpx.post(f"{url}/v1/feedback", json={"request_id": request_id, "text": "money back please",
                                                        "predicted": r.json()["predictions"][0]["label"],
                                                        "correct_label": "refund", "comment": "fine"})
        assert stored.status_code == 200 and stored.json()["id"] == 1
        httpx.post(f"{url}/v1/feedback", json={"text": "no label given"})
        assert _error(httpx.post(f"{url}/v1/feedback", json={"text": ""}), 422)
        csv_text = httpx.get(f"{url}/v1/feedback/export", headers={"authorization": f"Bearer {KEY}"}).text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("text,label,predicted") and len(lines) == 2
    assert lines[1].startswith("money back please,refund,")
    assert FeedbackStore(f"sqlite:///{db}").count() == 2
    out = tmp_path / "fix.csv"
    done = run_cli("feedback", "export", "--db", f"sqlite:///{db}", "--output", str(out), "--all")
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().strip().splitlines()) == 3
    from domainfit.data import read_rows  # the exported file is ordinary text,label data

    rows = [row for _, row in read_rows(str(out))]
    assert [(r["text"], r["label"]) for r in rows] == [("money back please", "refund"), ("no label given", "")]


def test_predictions_are_logged_beside_feedback(models, tmp_path):
    import hashlib

    from domainfit.stores import PredictionLog

    db = f"sqlite:///{tmp_path / 'feedback.db'}"
    with running(models[0], db_url=db, log_predictions=True) as url:
        name = models[0].name
        r = httpx.post(f"{url}/v1/models/{name}/predict", json={"texts": ["where is my card", "reset password"]})
        assert r.status_code == 200, r.text
        httpx.post(f"{url}/v1/feedback", json={"text": "where is my card", "correct_label": "card"})
        deadline = time.monotonic() + 10
        while "domainfit_prediction_log_written 2.0" not in httpx.get(f"{url}/metrics").text:
            assert time.monotonic() < deadline, "the writer thread did not write within 10 s"
            time.sleep(0.1)
    rows = list(PredictionLog(db).rows())
    assert [(row.label, row.model, row.version, row.request_id) for row in rows] == [
        (p["label"], name, 1, r.json()["request_id"]) for p in r.json()["predictions"]]
    assert rows[0].score == pytest.approx(r.json()["predictions"][0]["score"])
    assert rows[0].input_sha256 == hashlib.sha256(b"where is my card").hexdigest() and rows[0].text is None
    assert FeedbackStore(db).count() == 1
    with running(models[0], db_url=db, log_predictions=True, log_texts=True, log_sample=1.0) as url:
        httpx.post(f"{url}/v1/models/{models[0].name}/predict", json={"texts": ["money back please"]})
    assert [row.text for row in PredictionLog(db).rows()][-1] == "money back please"  # written at shut-down
    with running(models[0], db_url=f"sqlite:///{tmp_path / 'off.db'}") as url:  # off by default
        httpx.post(f"{url}/v1/models/{models[0].name}/predict", json={"texts": ["money back please"]})
    assert PredictionLog(f"sqlite:///{tmp_path / 'off.db'}").count() == 0


def test_registry_operations_and_names(models, tmp_path):
    reg = Registry(tmp_path / "reg")
    assert reg.add("intents", models[0], stage="production") == 1
    assert reg.add("intents", models[1]) == 2
    assert [(r["version"], r["stage"]) for r in reg.listing()] == [(1, "production"), (2, "staging")]
    reg.promote("intents", 2)
    assert reg.production("intents")[0] == 2
    assert reg.rollback("intents")["version"] == 1
    with pytest.raises(DomainfitError, match="in production"):
        reg.remove("intents", 1)
    reg.remove("intents", 2)
    assert [r["version"] for r in reg.listing()] == [1]
    for bad in ("../escape", "..", ".hidden", "a/b", "", "x" * 65):
        with pytest.raises(DomainfitError, match="invalid model name"):
            reg.add(bad, models[0])
    assert not (tmp_path / "escape").exists()
    solo = Registry(tmp_path / "reg2")
    solo.add("solo", models[0], stage="production")
    with pytest.raises(DomainfitError, match="no earlier production"):
        solo.rollback("solo")


def test_promotion_under_load_drops_no_request(models, tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.add("intents", models[0], stage="production")
    reg.add("intents", models[1])
    with running(tmp_path / "reg", api_key=KEY, poll_seconds=0.2) as url:
        seen, failures, stop = [], [], threading.Event()

        def client():
            with httpx.Client(timeout=60) as c:
                while not stop.is_set():
                    r = c.post(f"{url}/v1/models/intents/predict", json={"texts": ["where is my card"]})
                    (seen if r.status_code == 200 else failures).append(r.json().get("version") or r.text)

        workers = [threading.Thread(target=client) for _ in range(6)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        promoted = httpx.post(f"{url}/v1/admin/registry/intents/promote", json={"version": 2},
                              headers={"x-api-key": KEY})
        assert promoted.status_code == 200, promoted.text
        time.sleep(1.0)
        # a promotion written by another process (the CLI) is picked up by polling
        done = run_cli("registry", "promote", str(tmp_path / "reg"), "intents", "1")
        assert done.returncode == 0, done.stderr
        time.sleep(1.5)
        stop.set()
        for w in workers:
            w.join()
        assert not failures
        assert seen[0] == 1 and 2 in seen and seen[-1] == 1
        listed = httpx.get(f"{url}/v1/admin/registry", headers={"x-api-key": KEY}).json()["versions"]
        assert {(v["version"], v["stage"]) for v in listed} == {(1, "production"), (2, "archived")}
        assert _error(httpx.post(f"{url}/v1/admin/registry/intents/promote", json={"version": 9},
                                 headers={"x-api-key": KEY}), 409)
        assert _error(httpx.post(f"{url}/v1/admin/registry/bad..name/rollback", headers={"x-api-key": KEY}), 422)


def test_logs_hold_no_texts_or_keys(models, tmp_path, caplog):
    secret_text = "my-very-private-text-4711"
    with caplog.at_level(logging.INFO, logger="domainfit.serve"):
        with running(models[0], api_key=KEY, require_key=True) as url:
            httpx.post(f"{url}/v1/models/{models[0].name}/predict", json={"texts": [secret_text]},
                       headers={"x-api-key": KEY})
            httpx.post(f"{url}/v1/models/{models[0].name}/predict", json={"texts": [secret_text]},
                       headers={"x-api-key": KEY + "x"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "request " in logged and "status=200" in logged and "status=403" in logged
    assert secret_text not in logged and KEY not in logged


def test_serve_cli_answers(models, tmp_path):
    import subprocess
    import sys

    from helpers import ROOT

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(__import__("os").environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "domainfit.cli", "serve", str(models[0]), "--port", str(port),
                             "--db", f"sqlite:///{tmp_path / 'fb.db'}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            time.sleep(0.3)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/models/{models[0].name}/predict", json={"texts": ["refund"]})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "refund"
    finally:
        proc.terminate()
        proc.wait(30)
