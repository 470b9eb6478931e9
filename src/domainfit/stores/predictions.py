"""The prediction log: what a server answered, kept for drift checks and for choosing what
to label next.

One row per predicted item: request id, time, model name and version, the sha256 of the
input, the top label and its score, and the input text itself only when asked
(``keep_texts``; texts may be personal data). It lives in the same database as the feedback
(SQLite by default, any SQLAlchemy URL otherwise).

Serving never waits for the database: :meth:`PredictionLog.record` samples, hashes and
appends to a bounded in-memory buffer; a background thread writes the buffer in one
transaction every ``flush_seconds`` (or sooner once ``flush_rows`` are waiting), and deletes
rows older than ``retention_days``. When the database falls so far behind that the buffer
is full, new rows are dropped and counted (:attr:`PredictionLog.dropped`), never queued
without bound.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ..core.errors import DomainfitError

__all__ = ["PredictionLog", "LoggedPrediction", "parse_since"]

log = logging.getLogger("domainfit.predictions")

_METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "predictions", _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model", sa.String(128), index=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class LoggedPrediction:
    """One row of the log, as read back."""

    request_id: str | None
    created_at: _dt.datetime
    model: str | None
    version: int | None
    input_sha256: str
    label: str | None
    score: float | None
    text: str | None


def parse_since(value: str | None) -> _dt.datetime | None:
    """``2026-11-30``, ``2026-11-30T08:00`` (UTC unless it names an offset) or a span back from
    now (``7d``, ``12h``, ``30m``) → an aware datetime; ``None`` stays ``None``.

    Raises:
        DomainfitError: a value that is neither.
    """
    if value is None:
        return None
    text = value.strip()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(**{units[text[-1]]: float(text[:-1])})
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise DomainfitError(f"--since {value!r} is not a date: give 2026-11-30, 2026-11-30T08:00 or a span "
                             "back from now such as 7d or 12h.") from None
    # Stored in UTC (SQLite keeps no offset), so compare in UTC.
    return parsed.astimezone(_dt.timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


def _engine(url: str):
    kwargs = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}
    return sa.create_engine(url, **kwargs)


class PredictionLog:
    """A prediction table behind a SQLAlchemy engine (created if missing).

    Args:
        url: SQLAlchemy URL (the feedback store's).
        sample: share of predicted items kept (0 < sample ≤ 1), drawn per item.
        keep_texts: store the input text beside its hash.
        retention_days: delete rows older than this (checked when the writer starts and
            hourly); ``None`` keeps everything.
        flush_rows, flush_seconds: the writer's batch (rows) and longest wait (seconds).
        max_pending: rows the buffer may hold; beyond, new rows are dropped and counted.

    Example:
        >>> log = PredictionLog("sqlite:///feedback.db", sample=0.1)     # doctest: +SKIP
        >>> log.start(); log.record("r1", "intents", 3, [("hi", "greeting", 0.93)]); log.stop()
    """

    def __init__(self, url: str = "sqlite:///feedback.db", *, sample: float = 1.0, keep_texts: bool = False,
                 retention_days: float | None = None, flush_rows: int = 1000, flush_seconds: float = 1.0,
                 max_pending: int = 100_000, seed: int | None = None):
        if not 0 < sample <= 1:
            raise DomainfitError(f"--log-sample must be more than 0 and at most 1 (a share of predictions), "
                                 f"not {sample}.")
        if retention_days is not None and not retention_days > 0:
            raise DomainfitError(f"--log-retention-days must be more than 0, not {retention_days}.")
        self.url, self.sample, self.keep_texts, self.retention_days = url, sample, keep_texts, retention_days
        self.flush_rows, self.flush_seconds, self.max_pending = flush_rows, flush_seconds, max_pending
        self.engine = _engine(url)
        _METADATA.create_all(self.engine)
        self.dropped = 0
        self.written = 0
        self._rng = random.Random(seed)
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_purge = 0.0

    # ------------------------------------------------------------------ writing
    def record(self, request_id: str | None, model: str | None, version: int | None,
               items: Iterable[tuple[str, str | None, float | None]]) -> int:
        """Queue ``(text, label, score)`` of each predicted item (sampled); returns how many
        were kept. Never touches the database."""
        now = _dt.datetime.now(_dt.timezone.utc)
        rows = []
        for text, label, score in items:
            if self.sample < 1 and self._rng.random() >= self.sample:
                continue
            rows.append({"request_id": request_id, "created_at": now, "model": model, "version": version,
                         "input_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                         "label": None if label is None else str(label),
                         "score": None if score is None else float(score),
                         "text": text if self.keep_texts else None})
        if not rows:
            return 0
        with self._lock:
            room = self.max_pending - len(self._pending)
            if room < len(rows):
                self.dropped += len(rows) - max(room, 0)
                rows = rows[:max(room, 0)]
            self._pending.extend(rows)
            full = len(self._pending) >= self.flush_rows
        if full:
            self._wake.set()
        return len(rows)

    def flush(self) -> int:
        """Write what is waiting, in one transaction; returns the rows written. On a database
        error the rows go back to the buffer (as far as it has room) and the error is logged."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            with self.engine.begin() as conn:
                conn.execute(PREDICTIONS.insert(), rows)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("prediction log: %d rows not written yet (%s)", len(rows), exc.__class__.__name__)
            with self._lock:
                keep = max(self.max_pending - len(self._pending), 0)
                self.dropped += max(len(rows) - keep, 0)
                self._pending[:0] = rows[:keep]
            return 0
        self.written += len(rows)
        return len(rows)

    def purge(self, older_than_days: float | None = None) -> int:
        """Delete rows older than ``older_than_days`` (default: the retention); returns how many."""
        days = self.retention_days if older_than_days is None else older_than_days
        if days is None:
            return 0
        cutoff = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=days)
        with self.engine.begin() as conn:
            return int(conn.execute(PREDICTIONS.delete().where(PREDICTIONS.c.created_at < cutoff)).rowcount or 0)

    def start(self) -> None:
        """Start the writer thread (purging old rows first, with a retention)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="domainfit-prediction-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is left and stop the writer."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            if self.retention_days is not None and time.monotonic() - self._last_purge > 3600:
                self._last_purge = time.monotonic()
                try:
                    removed = self.purge()
                    if removed:
                        log.info("prediction log: deleted %d rows older than %g days", removed, self.retention_days)
                except sa.exc.SQLAlchemyError as exc:
                    log.warning("prediction log: retention not applied (%s)", exc.__class__.__name__)
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    # ------------------------------------------------------------------ reading
    def count(self, model: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(PREDICTIONS)
        if model is not None:
            query = query.where(PREDICTIONS.c.model == model)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def rows(self, model: str | None = None, since: _dt.datetime | None = None,
             until: _dt.datetime | None = None) -> Iterator[LoggedPrediction]:
        """Logged predictions, oldest first, read in chunks."""
        query = sa.select(PREDICTIONS).order_by(PREDICTIONS.c.id)
        if model is not None:
            query = query.where(PREDICTIONS.c.model == model)
        if since is not None:
            query = query.where(PREDICTIONS.c.created_at >= since)
        if until is not None:
            query = query.where(PREDICTIONS.c.created_at < until)
        with self.engine.connect() as conn:
            for row in conn.execution_options(stream_results=True, yield_per=1000).execute(query):
                created = row.created_at
                if created is not None and created.tzinfo is None:  # SQLite keeps no offset: stored as UTC
                    created = created.replace(tzinfo=_dt.timezone.utc)
                yield LoggedPrediction(row.request_id, created, row.model, row.version, row.input_sha256,
                                       row.label, row.score, row.text)
