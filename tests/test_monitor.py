"""The monitoring app: reading documents, the store, aggregates, alert rules and their
delivery, the pipeline on a tiny bundle, the command line and the HTTP API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from domainfit.apps.monitor.aggregates import aggregate, parse_window
from domainfit.apps.monitor.alerts import AlertEngine, Rules, load_rules
from domainfit.apps.monitor.detectors import binomial_tail, poisson_tail
from domainfit.apps.monitor.documents import check_document, parse_time, read_documents
from domainfit.apps.monitor.store import MonitorStore, StoredDocument
from domainfit.core.errors import ConfigError
from monitor_helpers import T0, build_bundle, stream, write_jsonl

H = 3600


def _doc(i: int, hour: float, entity: str = "acme", label: str = "neutral", cluster: str | None = None,
         subject: bool = True) -> StoredDocument:
    p_neg = 0.9 if label == "negative" else 0.05
    p_pos = 0.9 if label == "positive" else 0.05
    return StoredDocument(id=f"d{i}", epoch=int(T0 + hour * H), text=f"text {i}", label=label, p_positive=p_pos,
                          p_negative=p_neg, cluster=cluster or f"d{i}",
                          mentions=[{"entity": entity, "subject": subject, "relevance": 1.0 if subject else 0.3,
                                     "spans": [[0, 4]]}])


@pytest.fixture
def store(tmp_path):
    s = MonitorStore(f"sqlite:///{tmp_path / 'm.db'}")
    yield s
    s.close()


# reading documents ---------------------------------------------------------------------------------------------
def test_times_are_read_as_utc_iso_or_posix_seconds():
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01 00:00:00") == T0  # no zone: UTC
    assert parse_time(T0) == T0 and parse_time(str(T0)) == T0
    assert parse_time("yesterday") is None and parse_time("") is None and parse_time(float("nan")) is None


def test_bad_rows_are_skipped_with_their_line_and_reason(tmp_path):
    path = tmp_path / "docs.csv"
    long = "x" * 100_000
    path.write_bytes(("id,time,text,source\n"
                      "a,2026-01-01T00:00:00Z,Acme shares fall,wire\n"
                      ",2026-01-01T00:00:00Z,no id here,wire\n"
                      "b,not a time,bad time,wire\n"
                      "c,2026-01-01T00:00:00Z,,wire\n"
                      f"d,2026-01-01T00:00:00Z,{long},wire\n"
                      "e,2026-01-01T00:00:00Z,\"a quoted text\nover two lines\",wire\n").encode()
                     + "f,2026-01-01T00:00:00Z,caf\u00e9 latin-1,wire\n".encode("latin-1")
                     + b"g,2026-01-01T00:00:00Z,last one,\n")
    batches = list(read_documents(path, batch_size=2))
    docs = [d for b, _ in batches for d in b]
    skipped = [s for _, b in batches for s in b]
    assert [d["id"] for d in docs] == ["a", "e", "g"]
    assert docs[1]["text"] == "a quoted text\nover two lines" and docs[0]["source"] == "wire"
    assert docs[2]["source"] is None and docs[0]["epoch"] == T0
    reasons = {s.where: s.reason for s in skipped}
    assert reasons["docs.csv:3"] == "no id"
    assert reasons["docs.csv:4"].startswith("bad time (not a time)")
    assert reasons["docs.csv:5"] == "empty text"
    assert "100,000 characters" in reasons["docs.csv:6"]
    assert reasons["docs.csv:9"] == "the line is not UTF-8"


def test_a_document_file_without_a_text_column_is_refused(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text("id,time,body\n1,2026-01-01,x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no text column"):
        list(read_documents(path))


def test_jsonl_lines_that_are_not_objects_are_skipped(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": 1, "time": 1767225600, "text": "ok"}\n[1, 2]\n{broken\n\n', encoding="utf-8")
    (batch, skipped), = list(read_documents(path))
    assert [d["id"] for d in batch] == ["1"]
    assert [(s.where, s.reason) for s in skipped] == [("docs.jsonl:2", "not a JSON object"),
                                                        ("docs.jsonl:3", "not JSON (Expecting property name "
                                                                         "enclosed in double quotes)")]


# store and aggregates --------------------------------------------------------------------------------------------
def test_documents_are_stored_once_by_id(store):
    assert store.add_documents([_doc(1, 0), _doc(2, 0)]) == 2
    assert store.add_documents([_doc(2, 0), _doc(3, 0)]) == 1  # d2 was stored: not counted again
    assert store.count() == 3
    assert store.known_ids(["d1", "d9"]) == {"d1"}


def test_aggregates_count_stories_and_weigh_sentiment_once_per_story(store):
    docs = [_doc(1, 0.1, label="negative"), _doc(2, 0.2, label="negative", cluster="d1"),  # a reprint
            _doc(3, 0.3, label="negative", cluster="d1"), _doc(4, 0.5, label="positive"),
            _doc(5, 1.5, label="neutral"), _doc(6, 0.4, entity="globex", label="negative"),
            _doc(7, 0.6, label="negative", subject=False)]  # a passing mention: not acme's story
    store.add_documents(docs)
    frame = aggregate(store, "1h", since=T0, until=T0 + 3 * H, keys=["acme"], baseline=2)
    first, second, third = (frame.iloc[i] for i in range(3))
    assert (first.volume, first.unique_volume, first.reprints, first.negative_volume) == (4, 2, 2, 1)
    assert first.negative_share == pytest.approx(0.5)
    assert first.mean_sentiment == pytest.approx(0.0)  # stories d1 (-0.85) and d4 (+0.85); reprints not again
    assert second.unique_volume == 1 and second.negative_share == 0.0
    assert third.volume == 0 and np.isnan(third.mean_sentiment)  # an empty window is there, with no mood
    assert first.buzz == pytest.approx((2 + 1) / (0 + 1))  # the two windows before had no story
    assert second.buzz == pytest.approx((1 + 1) / ((0 + 2) / 2 + 1))  # baseline: mean of the two before
    by_all = aggregate(store, "1d", since=T0, until=T0 + 86400, by="all")
    assert by_all.iloc[0].volume == 7


def test_windows_must_divide_a_day():
    assert parse_window("15m") == 900 and parse_window("1d") == 86400 and parse_window("2d") == 172800
    for bad in ("7m", "5h", "30s", "soon"):
        with pytest.raises(ConfigError):
            parse_window(bad)


def test_binomial_tail_weighs_a_window_by_its_stories():
    # a baseline of 10% negative over 100 stories; then 1 of 1 negative (quiet) and 8 of 10 (busy)
    k = np.array([1.0] * 10 + [1.0, 8.0])
    n = np.array([10.0] * 10 + [1.0, 10.0])
    z = binomial_tail(k, n, window=10, min_count=50)
    assert np.isnan(z[:5]).all()  # fewer than 50 stories before
    assert z[10] == pytest.approx(1.24, abs=0.01)  # P(X >= 1) with p0 = 11/102: no surprise
    assert z[11] > 4.5  # P(X >= 8 of 10) with p0 = 11/93: about 1e-6
    assert z[11] == pytest.approx(binomial_tail(k[:12], n[:12], window=10, min_count=50)[11])  # causal


def test_a_scan_over_a_few_windows_catches_a_surge_no_single_window_shows():
    # one story an hour; then three hours of 6 stories each
    x = np.array([1.0, 2.0, 0.0, 1.0, 1.0, 1.0] * 8 + [6.0, 6.0, 6.0])
    single = poisson_tail(x, window=48, min_periods=24)
    scan = poisson_tail(x, window=48, min_periods=24, span=3)
    assert single[-3:].max() < 3.5 < 4.5 < scan[-1]
    assert scan[-3] < single[-3]  # the scan pays for looking three times in its first window
    k, n = np.array([1.0] * 48 + [3.0, 3.0, 3.0]), np.array([8.0] * 48 + [4.0, 4.0, 4.0])
    assert binomial_tail(k, n, window=48, span=1)[-1] < 4 < binomial_tail(k, n, window=48, span=3)[-1]


def test_poisson_tail_weighs_a_count_by_its_usual_rate_and_burstiness():
    steady = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0] * 4 + [2.0, 8.0])  # a third of a story an hour, then 2, 8
    bursty = np.array([0.0, 0.0, 0.0, 0.0, 2.0, 0.0] * 4 + [2.0, 8.0])  # the same mean, in bursts of two
    z, zb = poisson_tail(steady, window=24, min_periods=12), poisson_tail(bursty, window=24, min_periods=12)
    assert np.isnan(z[:12]).all()
    assert z[-2] < 3 < 4.5 < z[-1]
    assert zb[-1] < z[-1]  # a company named in bursts needs a bigger burst to alert
    assert poisson_tail(steady * 10, window=24, min_periods=12)[-1] < z[-1]  # tenfold counts, tenfold spread
    with_gap = steady.copy()
    with_gap[:6] = np.nan  # windows without data (before the stream began) are no baseline
    assert np.isnan(poisson_tail(with_gap, window=24, min_periods=20)[-1])


# alert rules -------------------------------------------------------------------------------------------------------
def _surge_store(store, *, surge_hour: int = 60, hours: int = 80, surge: int = 8) -> None:
    """Two stories an hour about acme (one negative in ten), then ``surge`` negative ones an hour."""
    docs, i = [], 0
    for h in range(hours):
        for j in range(2):
            docs.append(_doc(i, h + 0.1 + j * 0.3, label="negative" if i % 10 == 0 else "neutral"))
            i += 1
        if surge_hour <= h < surge_hour + 2:
            for _ in range(surge):
                docs.append(_doc(i, h + 0.5, label="negative"))
                i += 1
    store.add_documents(docs)


def _rules(**rule) -> Rules:
    base = {"name": "neg", "metric": "negative_share", "detector": "binomial", "threshold": 4.0, "recover": 1.0,
            "min_volume": 3, "baseline": 48, "min_history": 24, "cooldown": "6h"}
    return Rules(rules=[{**base, **rule}], sinks=[{"type": "log"}])


def test_a_negative_surge_fires_once_then_recovers(store, caplog):
    _surge_store(store)
    engine = AlertEngine(store, _rules(), names={"acme": "Acme Corp"})
    with caplog.at_level("INFO"):
        fired = engine.check(T0 + 80 * H, start=T0)
    assert [(a["state"], a["window_start_epoch"]) for a in fired] == [("firing", T0 + 60 * H),
                                                                      ("recovered", T0 + 62 * H)]
    alert = fired[0]
    assert alert["entity_name"] == "Acme Corp" and alert["value"] == pytest.approx(0.9)
    assert alert["baseline"] == pytest.approx(0.1, abs=0.01)  # one negative story in ten before
    assert len(alert["documents"]) == 5 and all(d["label"] == "negative" for d in alert["documents"])
    assert engine.check(T0 + 80 * H) == []  # judged windows are not judged again
    assert engine.check(T0 + 80 * H, start=T0) == []
    assert [a["deliveries"] for a in store.alerts()] == [{"0:log": "sent"}] * 2
    assert "Acme Corp" in caplog.text


def test_min_volume_and_cooldown_hold_an_alert_back(store, tmp_path):
    _surge_store(store, surge=2)  # 4 negative of 4 stories: a surge, but below min_volume 5
    assert AlertEngine(store, _rules(min_volume=5)).check(T0 + 80 * H, start=T0) == []
    firing = {}
    for cooldown in ("6h", "0s"):
        twice = MonitorStore(f"sqlite:///{tmp_path / f'{cooldown}.db'}")
        _surge_store(twice, surge_hour=30)
        twice.add_documents([_doc(10_000 + j, 34.5, label="negative") for j in range(20)])  # again 4 h later
        fired = AlertEngine(twice, _rules(recover=3.9, cooldown=cooldown)).check(T0 + 80 * H, start=T0)
        firing[cooldown] = [a["window_start_epoch"] for a in fired if a["state"] == "firing"]
        twice.close()
    assert firing == {"6h": [T0 + 30 * H], "0s": [T0 + 30 * H, T0 + 34 * H]}


def test_a_threshold_rule_can_watch_a_fall(store):
    _surge_store(store)
    rules = Rules(rules=[{"name": "mood", "metric": "mean_sentiment", "detector": "threshold", "direction": "down",
                          "threshold": -0.5, "recover": -0.1, "min_volume": 3}])
    fired = AlertEngine(store, rules).check(T0 + 80 * H, start=T0)
    assert [a["state"] for a in fired] == ["firing", "recovered"]
    assert fired[0]["window_start_epoch"] == T0 + 60 * H and fired[0]["score"] == pytest.approx(fired[0]["value"])
    assert fired[0]["value"] < -0.5 and T0 + 62 * H <= fired[1]["window_start_epoch"] <= T0 + 64 * H


def test_rules_files_are_checked(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: a, metric: mood, threshold: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="rules.0.metric"):
        load_rules(path)
    path.write_text("rules:\n  - {name: a, metric: volume, detector: binomial, threshold: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="binomial detector judges a share"):
        load_rules(path)
    path.write_text("rules:\n  - {name: a, metric: volume, threshold: 3}\n  - {name: a, metric: buzz, threshold: 3}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="unique: a"):
        load_rules(path)
    assert [r.name for r in load_rules(None).rules] == ["negative-surge", "volume-surge"]


class _Hook(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        code = self.answers.pop(0) if self.answers else 200
        if code == 200:
            self.received.append(body)
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_alert_to_a_failing_webhook_stays_pending_until_it_is_sent(store):
    _Hook.answers, _Hook.received = [500] * 4, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _surge_store(store)
        rules = _rules().model_dump()
        rules["sinks"] = [{"type": "webhook", "url": f"http://127.0.0.1:{server.server_port}/hook", "timeout": 2}]
        engine = AlertEngine(store, Rules(**rules))
        engine.check(T0 + 80 * H, start=T0)  # two alerts, two tries each: all answered 500
        states = [a["deliveries"] for a in store.alerts()]
        assert len(states) == 2 and all(list(s.values()) == ["pending"] for s in states)
        assert _Hook.received == []
        assert engine.deliver() == {"sent": 2, "pending": 0, "failed": 0}
        assert [b["state"] for b in _Hook.received] == ["firing", "recovered"]
        assert engine.deliver() == {"sent": 0, "pending": 0, "failed": 0}
    finally:
        server.shutdown()


# the pipeline on a tiny bundle -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_model) -> Path:
    return build_bundle(tmp_path_factory.mktemp("monitor"), tiny_model)


def _ingest(monitor, docs, **kw):
    checked = [check_document(d, str(i))[0] for i, d in enumerate(docs)]
    out = {"stored": 0, "repeated": 0, "alerts": []}
    for i in range(0, len(checked), 200):
        r = monitor.ingest(checked[i:i + 200], **kw)
        out["stored"] += r["stored"]
        out["repeated"] += r["repeated"]
        out["alerts"] += r["alerts"]
    return out


def test_a_replayed_stream_alerts_on_its_surge_and_reprints_add_none(bundle, tmp_path):
    from domainfit.apps.monitor import Monitor

    results = {}
    for share in (0.0, 0.3):
        monitor = Monitor(bundle, f"sqlite:///{tmp_path / f'r{share}.db'}", explain=False)
        docs = stream(surge_hour=100, reprint_share=share)
        result = _ingest(monitor, docs, replay=True)
        assert result["stored"] == len(docs)
        fired = [(a["rule"], a["entity"], a["window_start_epoch"]) for a in result["alerts"] if a["state"] == "firing"]
        results[share] = fired
        if share:
            stats = monitor.store.documents(limit=10_000)
            reprints = [d for d in stats if d["id"].startswith("reprint-")]
            assert sum(d["reprint"] for d in reprints) >= 0.9 * len(reprints)
            assert not any(d["reprint"] for d in stats if not d["id"].startswith("reprint-"))
        monitor.close()
    assert ("negative-surge", "acme", T0 + 100 * H) in results[0.0]
    assert results[0.3] == results[0.0]


def test_sending_a_batch_again_stores_nothing_new(bundle, tmp_path):
    from domainfit.apps.monitor import Monitor

    monitor = Monitor(bundle, f"sqlite:///{tmp_path / 'm.db'}", explain=False)
    docs = stream(days=1)
    first = _ingest(monitor, docs, replay=True)
    again = _ingest(monitor, docs, replay=True)
    assert (first["stored"], again["stored"], again["repeated"]) == (len(docs), 0, len(docs))
    acme = monitor.store.documents(entity="acme", limit=1000)
    assert acme and all(d["text"].startswith("Acme") for d in acme)
    monitor.close()


def test_a_restarted_monitor_still_knows_the_stories_of_its_window(bundle, tmp_path):
    from domainfit.apps.monitor import Monitor

    url = f"sqlite:///{tmp_path / 'm.db'}"
    docs = stream(days=1)
    first = Monitor(bundle, url, explain=False)
    _ingest(first, docs[:50], replay=True)
    first.close()
    second = Monitor(bundle, url, explain=False)
    reprint = {**docs[10], "id": "again", "time": docs[49]["time"], "text": "Wire: " + docs[10]["text"]}
    _ingest(second, [reprint], replay=True)
    assert second.store.documents(limit=1)[0]["cluster"] == docs[10]["id"]
    second.close()


def test_bundle_inputs_are_checked_before_training(tmp_path, tiny_model):
    from domainfit.apps.monitor import load_recipe, train_bundle
    from domainfit.core.errors import DataError

    data = tmp_path / "s.csv"
    data.write_text("text,label\ngood news,up\nbad news,down\n", encoding="utf-8")
    entities = tmp_path / "e.csv"
    entities.write_text("id,name,aliases,ticker\na,Acme,,\na,Other,,\n", encoding="utf-8")
    recipe = load_recipe(sentiment={"data": str(data), "model": str(tiny_model)}, entities=str(entities))
    with pytest.raises(ConfigError, match="no rows labelled positive"):
        train_bundle(recipe, tmp_path / "b")
    recipe.sentiment.labels = {"positive": "up", "negative": "down"}
    with pytest.raises(DataError, match="line 3"):
        train_bundle(recipe, tmp_path / "b")
    assert not (tmp_path / "b").exists() and not (tmp_path / ".b.partial").exists()


def test_evaluate_reports_accuracy_and_macro_f1(bundle):
    from domainfit.apps.monitor import evaluate_bundle
    from monitor_helpers import sentiment_rows

    metrics = evaluate_bundle(bundle, sentiment_rows(seed=1)[:60])
    assert metrics["rows"] == 60 and metrics["accuracy"] > 0.8 and 0 < metrics["macro_f1"] <= 1
    assert set(metrics["per_class"]) == {"positive", "negative", "neutral"}
    with pytest.raises(ConfigError, match="positive, negative or neutral"):
        evaluate_bundle(bundle, [{"text": "x", "label": "bullish"}, {"text": "y", "label": "neutral"}])


# the command line ---------------------------------------------------------------------------------------------
def test_ingest_and_alerts_on_the_command_line(bundle, tmp_path):
    from helpers import run_cli

    docs = stream(surge_hour=100)
    docs.append({"id": "", "time": T0, "text": "no id"})
    source = write_jsonl(tmp_path / "news.jsonl", docs)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    done = run_cli("app", "monitor", "ingest", str(bundle), "--source", str(source), "--db", db, "--replay", "--json",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout)
    assert (totals["stored"], totals["skipped"]) == (len(docs) - 1, 1) and totals["alerts"] >= 2
    assert "no id" in (tmp_path / "skipped_rows.csv").read_text(encoding="utf-8")
    listed = run_cli("app", "monitor", "alerts", str(bundle), "--db", db, "--since", "2026-01-05", "--json")
    assert listed.returncode == 0, listed.stderr
    alerts = [json.loads(line) for line in listed.stdout.splitlines()]
    firing = [a for a in alerts if a["state"] == "firing" and a["rule"] == "negative-surge"]
    assert firing and firing[0]["entity"] == "acme" and firing[0]["time"] == "2026-01-05T05:00:00+00:00"
    assert {"entity", "time", "metric", "value", "rule", "documents"} <= set(firing[0])
    assert "explanation" in firing[0]["documents"][0]
    table = run_cli("app", "monitor", "aggregates", str(bundle), "--db", db, "--window", "1d", "--entity", "acme")
    assert table.stdout.splitlines()[0].startswith("key,window_start,volume,unique_volume")
    bad = run_cli("app", "monitor", "ingest", str(bundle), "--source", str(tmp_path / "missing.csv"), "--db", db)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


# the HTTP API ------------------------------------------------------------------------------------------------------
def test_documents_posted_to_the_server_are_stored_once(bundle, tmp_path):
    from fastapi.testclient import TestClient

    from domainfit.apps.monitor.server import create_monitor_app
    from domainfit.serving import ServeSettings

    app = create_monitor_app(bundle, ServeSettings(api_key="k"), db_url=f"sqlite:///{tmp_path / 'm.db'}",
                             max_documents=50)
    docs = stream(days=1)[:40]
    key = {"Authorization": "Bearer k"}
    with TestClient(app) as client:
        assert client.post("/v1/documents", json={"documents": docs}).status_code == 401
        body = client.post("/v1/documents", json={"documents": docs + [{"id": "x", "time": "then", "text": "t"}]},
                           headers=key).json()
        assert body["stored"] == 40 and body["skipped"][0]["reason"].startswith("bad time")
        again = client.post("/v1/documents", json={"documents": docs[:10]}, headers=key).json()
        assert (again["stored"], again["repeated"]) == (0, 10)
        too_many = client.post("/v1/documents", json={"documents": docs + docs[:11]}, headers=key)
        assert too_many.status_code == 413
        overview = client.get("/v1/monitor/overview", params={"window": "1h", "span": "1d"}).json()
        assert {e["entity"] for e in overview["entities"]} <= {"acme", "globex", "initech", "umbrella"}
        assert sum(e["volume"] for e in overview["entities"]) >= 40
        series = client.get("/v1/monitor/entities/acme", params={"span": "1d"}).json()
        assert series["name"] == "Acme Corp" and len(series["points"]) == 24
        assert client.get("/v1/monitor/entities/nobody").status_code == 404
        docs_out = client.get("/v1/monitor/documents", params={"entity": "acme", "explain": True, "limit": 3}).json()
        assert len(docs_out["documents"]) == 3 and docs_out["documents"][0]["explanation"]["words"]
        csv_text = client.get("/v1/monitor/export.csv", params={"entity": "acme"}).text
        assert csv_text.splitlines()[0].startswith("key,window_start,volume")
        assert client.get("/v1/monitor/overview", params={"span": "soon"}).status_code == 422


def test_a_locked_database_stores_nothing_of_the_batch_and_says_so(tmp_path):
    import sqlite3

    from domainfit.apps.monitor.store import DatabaseBusy

    path = tmp_path / "m.db"
    store = MonitorStore(f"sqlite:///{path}", busy_timeout=0.2)
    other = sqlite3.connect(path)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        with pytest.raises(DatabaseBusy, match="locked by another writer"):
            store.add_documents([_doc(1, 0), _doc(2, 0)])
    finally:
        other.rollback()
        other.close()
    assert store.count() == 0
    assert store.add_documents([_doc(1, 0), _doc(2, 0)]) == 2  # once the lock is gone, the batch goes in
    store.close()


@pytest.mark.integration
def test_a_watched_folder_and_standard_input_are_ingested_once(bundle, tmp_path):
    import subprocess
    import sys

    from helpers import ROOT, run_cli

    docs = stream(days=1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", docs[:30])
    (inbox / "b.csv").write_text("id,time,text\n" + "".join(f"{d['id']},{d['time']},\"{d['text']}\"\n"
                                                            for d in docs[30:50]), encoding="utf-8")
    (inbox / "notes.txt").write_text("not a document file", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'm.db'}"
    first = run_cli("app", "monitor", "ingest", str(bundle), "--source", str(inbox), "--once", "--db", db, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stored"] == 50
    again = run_cli("app", "monitor", "ingest", str(bundle), "--source", str(inbox), "--once", "--db", db, "--json")
    assert json.loads(again.stdout)["received"] == 0  # both files are remembered as read
    piped = subprocess.run([sys.executable, "-m", "domainfit.cli", "app", "monitor", "ingest", str(bundle), "--source",
                            "-", "--db", db, "--json"], input="".join(json.dumps(d) + "\n" for d in docs[40:60]),
                           capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src"),
                                                                "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["stored"] == 10 and json.loads(piped.stdout)["repeated"] == 10


@pytest.mark.integration
def test_a_killed_ingest_loses_nothing_it_acknowledged_and_resending_stores_each_once(bundle, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from domainfit.apps.monitor.store import MonitorStore
    from helpers import ROOT

    docs = stream(days=12, per_hour=6)
    source = write_jsonl(tmp_path / "news.jsonl", docs)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    args = [sys.executable, "-m", "domainfit.cli", "app", "monitor", "ingest", str(bundle), "--source", str(source),
            "--db", db, "--replay", "--batch-size", "50", "--no-explain"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    probe = MonitorStore(db)
    deadline = time.time() + 120
    while time.time() < deadline and probe.count() < 200:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: some batches acknowledged, one maybe half-done
    proc.wait()
    stored = probe.count()
    assert 200 <= stored < len(docs)
    assert stored % 50 == 0  # whole batches only: a batch is one transaction
    done = subprocess.run(args + ["--json"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout)
    assert (totals["stored"], totals["repeated"]) == (len(docs) - stored, stored)
    assert probe.count() == len(docs)
    probe.close()


def test_a_topic_model_labels_each_document_and_aggregates_cut_by_topic(tmp_path, tiny_model):
    from domainfit.apps.monitor import Monitor, load_recipe, train_bundle
    from helpers import fast_settings
    from monitor_helpers import ENTITIES, sentiment_rows

    data = write_jsonl(tmp_path / "s.jsonl", sentiment_rows())
    topics = write_jsonl(tmp_path / "t.jsonl", [{"text": r["text"], "label": "cards" if "card" in r["text"]
                                                  else "other"} for r in sentiment_rows(seed=3)])
    (tmp_path / "e.csv").write_text(ENTITIES, encoding="utf-8")
    recipe = load_recipe(sentiment={"data": str(data), "model": str(tiny_model), "settings": fast_settings()},
                         topics={"data": str(topics), "model": str(tiny_model), "settings": fast_settings()},
                         entities=str(tmp_path / "e.csv"), export={"int8": False})
    bundle = train_bundle(recipe, tmp_path / "bundle")
    monitor = Monitor(bundle, f"sqlite:///{tmp_path / 'm.db'}", explain=False)
    _ingest(monitor, stream(days=1, reprint_share=0.3), replay=True)
    by_topic = aggregate(monitor.store, "1d", since=T0, until=T0 + 86400, by="topic")
    assert set(by_topic["key"]) == {"cards", "other"}
    assert by_topic["volume"].sum() == monitor.store.count()
    stored = {d["id"]: d for d in monitor.store.documents(limit=1000)}
    stories = [d for d in stored.values() if not d["reprint"]]
    predicted = monitor.topics.predict([d["text"] for d in stories], top_k=1)
    assert [d["topic"] for d in stories] == [p["label"] for p in predicted]
    reprints = [d for d in stored.values() if d["reprint"]]
    assert reprints and all(d["topic"] == stored[d["cluster"]]["topic"] for d in reprints)
    assert all(d["label"] == stored[d["cluster"]]["label"] for d in reprints)  # a reprint keeps its story's mood
    monitor.close()
