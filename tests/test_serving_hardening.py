"""What an audit of the server broke, each kept fixed against a real server (uvicorn on
loopback, real SQLite, real files, raw sockets where a client misbehaves)."""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import logging
import os
import socket
import time

import httpx
import pytest
from fastapi import APIRouter

from domainfit.serving import ServeSettings, create_app
from domainfit.stores import Registry
from helpers import run_cli, running_app

KEY = "s3cret-key-for-tests"
ADMIN = {"x-api-key": KEY}
SURROGATE = b'{"texts": ["card \\ud800 lost"]}'

pytestmark = pytest.mark.integration  # every test here runs a real server


@pytest.fixture(scope="module")
def models(served_models):
    return served_models


def running(source, extensions=(), **options):
    return running_app(create_app(source, ServeSettings(**options), extensions=extensions))


def _error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"} and body["error"]["message"]
    return body["error"]


def _metric(url: str, prefix: str) -> float:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return sum(float(ln.split()[-1]) for ln in lines if ln.startswith(prefix))


# ----------------------------------------------------------------- 1: one bad string, one failure

def test_a_lone_surrogate_fails_its_own_request_only(models, tmp_path):
    with running(models[0], db_url=f"sqlite:///{tmp_path / 'fb.db'}", max_wait_ms=50) as url:
        name = models[0].name
        predict = f"{url}/v1/models/{name}/predict"
        json_type = {"content-type": "application/json"}
        assert "UTF-8" in _error(httpx.post(predict, content=SURROGATE, headers=json_type), 422)["message"]

        def good(_):
            return httpx.post(predict, json={"texts": ["where is my card"]}, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(31) as pool:
            bad = pool.submit(httpx.post, predict, content=SURROGATE, headers=json_type, timeout=30)
            codes = list(pool.map(good, range(30)))
        assert codes == [200] * 30 and bad.result().status_code == 422
        for body in (b'{"text": "x \\udfff"}', b'{"text": "ok", "comment": "\\ud800"}',
                     b'{"text": "ok", "correct_label": "\\udbff"}'):
            assert _error(httpx.post(f"{url}/v1/feedback", content=body, headers=json_type), 422)


# ----------------------------------------------------------------- 2 and 8: the registry

def _truncate(path):
    weights = path / "model.safetensors"
    if not weights.exists():
        weights = next(path.glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])


def test_a_broken_version_is_never_promoted(models, tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.add("intents", models[0], stage="production")
    reg.add("intents", models[1])
    _truncate(reg.version_path("intents", 2))
    state = reg.state_file("intents").read_bytes()
    with running(tmp_path / "reg", api_key=KEY, poll_seconds=0.2) as url:
        refused = _error(httpx.post(f"{url}/v1/admin/registry/intents/promote", json={"version": 2},
                                    headers=ADMIN, timeout=60), 409)
        assert "safetensors" in refused["message"] or "load" in refused["message"]
        assert reg.state_file("intents").read_bytes() == state  # nothing changed
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        r = httpx.post(f"{url}/v1/models/intents/predict", json={"texts": ["where is my card"]})
        assert r.status_code == 200 and r.json()["version"] == 1
    done = run_cli("registry", "promote", str(tmp_path / "reg"), "intents", "2")
    assert done.returncode != 0 and "Traceback" not in done.stderr + done.stdout
    assert reg.state_file("intents").read_bytes() == state


def test_a_model_that_fails_to_load_does_not_take_the_others_down(models, tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.add("good", models[0], stage="production")
    reg.add("bad", models[1], stage="production")
    _truncate(reg.version_path("bad", 1))
    (tmp_path / "reg" / ".gone.removed").mkdir()  # an interrupted `registry remove`
    (tmp_path / "reg" / "empty").mkdir()
    (tmp_path / "reg" / "empty" / "registry.json").write_text("")  # a corrupt state file
    with running(tmp_path / "reg", api_key=KEY, poll_seconds=0.2) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["models"] == ["good"] and "bad" in body["failed"] and "empty" in body["failed"]
        assert httpx.post(f"{url}/v1/models/good/predict", json={"texts": ["refund"]}).status_code == 200
        # the poller still picks up promotions made elsewhere
        reg.add("late", models[0])
        assert run_cli("registry", "promote", str(tmp_path / "reg"), "late", "1").returncode == 0
        deadline = time.time() + 30
        while "late" not in httpx.get(f"{url}/readyz").json()["models"] and time.time() < deadline:
            time.sleep(0.2)
        assert httpx.post(f"{url}/v1/models/late/predict", json={"texts": ["refund"]}).status_code == 200
        # admin calls on unknown names create nothing
        for call in (lambda: httpx.post(f"{url}/v1/admin/registry/nobody/promote", json={"version": 1},
                                        headers=ADMIN),
                     lambda: httpx.post(f"{url}/v1/admin/registry/nobody/rollback", headers=ADMIN),
                     lambda: httpx.delete(f"{url}/v1/admin/registry/nobody/versions/1", headers=ADMIN)):
            assert _error(call(), 404)["code"] == "unknown_model"
        assert not (tmp_path / "reg" / "nobody").exists()


# ----------------------------------------------------------------- 3: backpressure

def test_abandoned_work_is_dropped_and_a_full_queue_answers_503(models):
    name = models[0].name
    with running(models[0], max_batch=8, max_queue=16, max_texts=256, max_wait_ms=1) as url:
        predict = f"{url}/v1/models/{name}/predict"
        big = {"texts": [f"where is my card number {n}" for n in range(256)]}

        def impatient(_):
            try:
                httpx.post(predict, json=big, timeout=0.05)
            except httpx.TimeoutException:
                pass

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            list(pool.map(impatient, range(20)))
        time.sleep(1.0)
        fresh = httpx.post(predict, json={"texts": ["where is my card"]}, timeout=30)
        assert fresh.status_code in (200, 503), fresh.text
        run = _metric(url, f'domainfit_batch_size_sum{{model="{name}"}}')
        assert run < 20 * 256  # the model did not work for clients that were gone

        codes, retry_after = [], []

        def eager(_):
            r = httpx.post(predict, json={"texts": ["where is my card"] * 16}, timeout=30)
            codes.append(r.status_code)
            if r.status_code == 503:
                retry_after.append(r.headers.get("retry-after"))
                assert r.json()["error"]["code"] == "overloaded"

        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            list(pool.map(eager, range(48)))
        assert set(codes) <= {200, 503} and 503 in codes and 200 in codes
        assert all(v and v.isdigit() for v in retry_after)
        late = httpx.post(predict, json=big, headers={"x-request-timeout": "0.001"})
        assert _error(late, 504)["code"] == "deadline_exceeded"


# ----------------------------------------------------------------- 5: a 500 is a proper answer

def _buggy(ctx):
    router = APIRouter()

    @router.get("/v1/bug")
    async def bug():
        raise RuntimeError("a bug in an endpoint")

    return router


def test_a_500_is_counted_logged_and_keeps_the_connection(models, caplog):
    with caplog.at_level(logging.INFO, logger="domainfit.serve"):
        with running(models[0], extensions=[_buggy]) as url, httpx.Client() as client:
            first = client.get(f"{url}/v1/bug")
            assert _error(first, 500)["code"] == "internal"
            again = client.get(f"{url}/healthz")  # the same keep-alive connection
            assert again.status_code == 200
            assert _metric(url, 'domainfit_errors_total{endpoint="/v1/bug",status="500"}') == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "status=500" in logged and first.json()["request_id"] in logged


# ----------------------------------------------------------------- 6: slow and keyless clients

def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_slow_clients_are_timed_out_and_keys_checked_before_bodies(models):
    name = models[0].name
    with running(models[0], api_key=KEY, require_key=True, header_timeout=0.5, body_timeout=0.5,
                 max_connections=4) as url:
        slow_head = _raw(url)
        slow_head.sendall(b"POST /v1/models/m1/predict HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        answer = _read_all(slow_head)
        assert answer.startswith(b"HTTP/1.1 408")  # and the connection was closed

        slow_body = _raw(url)
        slow_body.sendall(f"POST /v1/models/{name}/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
                          "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"texts\"".encode())
        answer = _read_all(slow_body)
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer

        keyless = _raw(url)  # announces 1 MiB and sends none of it: refused on the headers alone
        keyless.sendall(f"POST /v1/models/{name}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {1 << 20}\r\n\r\n".encode())
        answer = _read_all(keyless)
        assert answer.startswith(b"HTTP/1.1 401") and b"missing_key" in answer

        idle = [_raw(url) for _ in range(4)]  # the connection limit
        try:
            over = httpx.get(f"{url}/healthz")
            assert over.status_code == 503
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{url}/healthz").status_code == 200


# ----------------------------------------------------------------- 9: nothing blocks the event loop

def test_admin_work_and_exports_do_not_block_the_loop(models, tmp_path):
    import fcntl

    from domainfit.stores import FeedbackStore

    reg = Registry(tmp_path / "reg")
    reg.add("intents", models[0], stage="production")
    reg.add("intents", models[1])
    db = tmp_path / "fb.db"
    store = FeedbackStore(f"sqlite:///{db}")
    with store.engine.begin() as conn:
        from domainfit.stores.feedback import FEEDBACK

        now = datetime.datetime.now(datetime.timezone.utc)
        conn.execute(FEEDBACK.insert(), [{"text": f"text {n}", "correct_label": "refund", "created_at": now}
                                         for n in range(20_000)])
    with running(tmp_path / "reg", api_key=KEY, db_url=f"sqlite:///{db}") as url:
        lock = open(tmp_path / "reg" / "intents" / ".lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process holds the registry
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/admin/registry/intents/promote", json={"version": 2},
                                  headers=ADMIN, timeout=60)
            time.sleep(0.5)
            assert not pending.done()
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # answered meanwhile
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
            assert pending.result().status_code == 200
        with httpx.stream("GET", f"{url}/v1/feedback/export", headers=ADMIN) as r:
            assert r.status_code == 200 and "content-length" not in r.headers  # streamed
            text = "".join(r.iter_text())
        assert len(text.splitlines()) == 20_001


# ----------------------------------------------------------------- 10 and 11: what a body may be

def test_cross_site_and_non_json_writes_are_refused(models, tmp_path):
    name = models[0].name
    with running(models[0], db_url=f"sqlite:///{tmp_path / 'fb.db'}",
                 allowed_origins=("https://shop.example",)) as url:
        predict = f"{url}/v1/models/{name}/predict"
        body = json.dumps({"text": "poison", "correct_label": "refund"})
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
            r = httpx.post(f"{url}/v1/feedback", content=body, headers={"content-type": ctype})
            assert _error(r, 415)["code"] == "unsupported_media_type"
        evil = {"origin": "http://evil.example"}
        assert _error(httpx.post(f"{url}/v1/feedback", content=body,
                                 headers={"content-type": "application/json", **evil}), 403)["code"] == "cross_site"
        assert _error(httpx.post(predict, json={"texts": ["a"]}, headers={"sec-fetch-site": "cross-site"}), 403)
        assert httpx.post(predict, json={"texts": ["a"]}, headers={"origin": url}).status_code == 200
        assert httpx.post(predict, json={"texts": ["a"]}, headers={"origin": "https://shop.example"}).status_code == 200
        assert httpx.post(predict, json={"texts": ["a"]}, headers={"sec-fetch-site": "same-origin"}).status_code == 200
        assert httpx.get(f"{url}/healthz", headers=evil).status_code == 200  # reading stays open


def test_feedback_bounds_and_a_spreadsheet_safe_export(models, tmp_path):
    db = tmp_path / "fb.db"
    with running(models[0], api_key=KEY, db_url=f"sqlite:///{db}") as url:
        for body in ({"text": "ok", "version": 10 ** 30}, {"text": "ok", "version": -1},
                     {"text": "   "}, {"text": "ok", "correct_label": "x" * 201}, {"text": "ok", "model": "m" * 65}):
            assert _error(httpx.post(f"{url}/v1/feedback", json=body), 422)
        for text in ("=HYPERLINK(\"http://evil.example\")", "+1+1", "-2+3", "@SUM(A1)", "plain"):
            assert httpx.post(f"{url}/v1/feedback", json={"text": text, "correct_label": text}).status_code == 200
        safe = httpx.get(f"{url}/v1/feedback/export", headers=ADMIN).text.splitlines()[1:]
        raw = httpx.get(f"{url}/v1/feedback/export", params={"raw": "true"}, headers=ADMIN).text.splitlines()[1:]
    firsts = [line.split(",")[0] for line in safe]
    assert all(cell.lstrip('"').startswith("'") for cell in firsts[:4]) and firsts[4] == "plain"
    assert raw[1].startswith("+1+1,+1+1,")


# ----------------------------------------------------------------- 14: the API's own description

def test_openapi_docs_and_probe_details(models, tmp_path, monkeypatch):
    name = models[0].name
    monkeypatch.setenv("DOMAINFIT_API_KEY", KEY)
    with running(models[0], db_url=f"sqlite:///{tmp_path / 'fb.db'}") as url:  # the key from the environment
        spec = httpx.get(f"{url}/openapi.json").json()
        schemes = spec["components"]["securitySchemes"]
        assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
        predict = spec["paths"]["/v1/models/{name}/predict"]["post"]
        assert {"401", "403", "404", "409", "413", "422", "503"} <= set(predict["responses"])
        param = next(p for p in predict["parameters"] if p["name"] == "name")
        assert param["schema"]["pattern"].startswith("^[A-Za-z0-9]")
        assert httpx.head(f"{url}/healthz").status_code == 200
        wrong = httpx.put(f"{url}/v1/models/{name}/predict", json={})
        assert _error(wrong, 405) and "POST" in wrong.headers["allow"]
        docs = httpx.get(f"{url}/docs").text
        assert "/docs/static/swagger-ui-bundle.js" in docs and "cdn." not in docs and "https://" not in docs
        assert httpx.get(f"{url}/docs/static/swagger-ui-bundle.js").status_code == 200
        assert httpx.get(f"{url}/v1/admin/registry", headers=ADMIN).status_code == 409  # admin on: key from env
    bad_db = run_cli("serve", str(models[0]), "--db", "sqlite:////no/such/folder/fb.db", "--port", "1")
    assert bad_db.returncode == 2 and "does not exist" in bad_db.stderr + bad_db.stdout
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models[0], broken)
    _truncate(broken)
    done = run_cli("serve", str(broken), "--port", "1", "--db", f"sqlite:///{tmp_path / 'fb.db'}")
    assert done.returncode == 2 and "safetensors" in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------- 15: fuzzing, and schemathesis

def test_schemathesis_finds_no_5xx_and_no_schema_violation(models, tmp_path):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.config import SchemathesisConfig

    with running(models[0], api_key=KEY, require_key=True, db_url=f"sqlite:///{tmp_path / 'fb.db'}") as url:
        # 413 is how the server's own limits (--max-chars, --max-texts) answer a request that
        # the schema allows: the schema declares it as an answer, so it counts as accepted.
        config = SchemathesisConfig.from_str('[checks.positive_data_acceptance]\nexpected-statuses = '
                                             '["2xx", "3xx", "401", "403", "404", "409", "413", "429"]\n')
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
        failures = []
        for operation in schema.get_all_operations():
            op = operation.ok()

            @settings(max_examples=int(os.environ.get("DOMAINFIT_SCHEMATHESIS_EXAMPLES", 25)), deadline=None,
                      phases=[Phase.generate], derandomize="DOMAINFIT_SCHEMATHESIS_EXAMPLES" not in os.environ,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def check(case):
                for generated in ("X-API-Key", "x-api-key", "Authorization", "authorization"):
                    (case.headers or {}).pop(generated, None)  # the valid key is sent below, as a client would
                response = case.call(base_url=url, headers=ADMIN)
                if response.status_code >= 500:
                    failures.append((op.label, response.status_code, response.text[:200]))
                try:
                    case.validate_response(response, headers=ADMIN)
                except Exception as exc:  # a schema violation
                    failures.append((op.label, response.status_code, str(exc)[:300]))

            check()
        assert not failures, failures[:5]
