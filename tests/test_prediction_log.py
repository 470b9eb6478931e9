"""The prediction log on a real SQLite file: sampling, hashing, the bounded buffer, retention,
reading back by model and time."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from domainfit.core.errors import DomainfitError
from domainfit.stores import FeedbackStore, PredictionLog, parse_since
from domainfit.stores.predictions import PREDICTIONS


def test_rows_are_hashed_and_texts_kept_only_when_asked(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    FeedbackStore(url).add(request_id="r0", model="m", version=1, text="x", predicted="a", correct_label="b",
                           comment=None)  # the same database holds both tables
    plain = PredictionLog(url)
    assert plain.record("r1", "intents", 3, [("where is my card", "card", 0.91), ("hello", "greeting", 0.5)]) == 2
    assert plain.flush() == 2
    rows = list(plain.rows())
    assert [r.label for r in rows] == ["card", "greeting"] and rows[0].score == pytest.approx(0.91)
    assert rows[0].input_sha256 == hashlib.sha256(b"where is my card").hexdigest()
    assert rows[0].text is None and rows[0].model == "intents" and rows[0].version == 3
    assert rows[0].request_id == "r1" and rows[0].created_at.tzinfo is not None
    with_texts = PredictionLog(url, keep_texts=True)
    with_texts.record("r2", "other", 1, [("card lost", "card", 0.7)])
    with_texts.flush()
    assert [r.text for r in with_texts.rows(model="other")] == ["card lost"]
    assert plain.count() == 3 and plain.count("intents") == 2
    assert FeedbackStore(url).count() == 1


def test_sampling_keeps_about_the_share_asked(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'db.sqlite'}", sample=0.1, seed=0)
    kept = sum(log.record(None, "m", 1, [(f"text {i}", "a", 0.5)]) for i in range(2000))
    assert 150 <= kept <= 250
    assert log.flush() == kept


def test_a_full_buffer_drops_and_counts_instead_of_growing(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'db.sqlite'}", max_pending=5)
    assert log.record("r", "m", 1, [(str(i), "a", 0.5) for i in range(8)]) == 5
    assert log.dropped == 3 and log.flush() == 5 and log.count() == 5


def test_the_writer_thread_flushes_and_stop_writes_the_rest(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'db.sqlite'}", flush_seconds=0.05, flush_rows=10)
    log.start()
    log.record("r", "m", 1, [(str(i), "a", 0.5) for i in range(25)])
    log.stop()
    assert log.count() == 25 and log.written == 25


def test_retention_deletes_only_old_rows(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'db.sqlite'}", retention_days=7)
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)
    with log.engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [{"created_at": old, "model": "m", "input_sha256": "0" * 64}])
    log.record("r", "m", 1, [("new", "a", 0.5)])
    log.flush()
    assert log.purge() == 1
    assert [r.label for r in log.rows()] == ["a"]
    since = list(log.rows(since=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
    assert len(since) == 1 and list(log.rows(since=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))) == []


def test_parse_since_and_bad_settings():
    assert parse_since(None) is None
    assert parse_since("2026-11-30") == dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    assert parse_since("2026-11-30T09:00+01:00") == dt.datetime(2026, 11, 30, 8, tzinfo=dt.timezone.utc)
    ago = dt.datetime.now(dt.timezone.utc) - parse_since("7d")
    assert dt.timedelta(days=7) - dt.timedelta(seconds=5) < ago < dt.timedelta(days=7, seconds=5)
    with pytest.raises(DomainfitError, match="not a date"):
        parse_since("last tuesday")
    with pytest.raises(DomainfitError, match="at most 1"):
        PredictionLog("sqlite://", sample=1.5)
    with pytest.raises(DomainfitError, match="more than 0"):
        PredictionLog("sqlite://", retention_days=0)


def test_serve_settings_refuse_log_options_without_the_log():
    from domainfit.serving import ServeSettings

    with pytest.raises(DomainfitError, match="--log-predictions"):
        ServeSettings(log_texts=True)
    with pytest.raises(DomainfitError, match="at most 1"):
        ServeSettings(log_predictions=True, log_sample=0)
    assert ServeSettings(log_predictions=True, log_sample=0.1).log_sample == 0.1
