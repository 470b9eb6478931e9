"""Where the monitor keeps what it has seen: scored documents, their entity mentions, alerts
and their deliveries. SQLite by default (``sqlite:///monitor.db``), any SQLAlchemy URL
otherwise (e.g. ``postgresql+psycopg://user@host/monitor``).

Documents are stored idempotently by ``id``: a batch is written in one transaction, a
document whose id is already stored is left as it was (and not counted again), and a batch
is acknowledged only once its transaction has committed — so a crash mid-batch loses
nothing that was acknowledged, and sending the batch again after a crash stores each
document once.

Times are stored twice: as a timezone-aware ``time`` for people, and as integer POSIX
seconds ``epoch`` that the window aggregates group on (``epoch - epoch % window``, the same
in SQLite and PostgreSQL).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from ...core.errors import DomainfitError

__all__ = ["MonitorStore", "StoredDocument", "DatabaseBusy", "utc"]

_META = sa.MetaData()
DOCUMENTS = sa.Table(
    "monitor_documents", _META,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=True, index=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("p_positive", sa.Float, nullable=False),
    sa.Column("p_negative", sa.Float, nullable=False),
    sa.Column("sentiment", sa.Float, nullable=False),
    sa.Column("topic", sa.String(200), nullable=True, index=True),
    sa.Column("cluster", sa.String(200), nullable=False, index=True),
    sa.Column("similarity", sa.Float, nullable=False),
    sa.Column("reprint", sa.Boolean, nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
)
MENTIONS = sa.Table(
    "monitor_mentions", _META,
    sa.Column("doc_id", sa.String(200), primary_key=True),
    sa.Column("entity", sa.String(200), primary_key=True),
    sa.Column("epoch", sa.BigInteger, nullable=False, index=True),  # window counts read a time range
    sa.Column("subject", sa.Boolean, nullable=False),
    sa.Column("relevance", sa.Float, nullable=False),
    sa.Column("spans", sa.Text, nullable=False),
    sa.Index("ix_monitor_mentions_entity_epoch", "entity", "epoch"),
)
ALERTS = sa.Table(
    "monitor_alerts", _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(600), nullable=False, unique=True),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("entity", sa.String(200), nullable=False, index=True),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("window", sa.String(16), nullable=False),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("baseline", sa.Float, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
DELIVERIES = sa.Table(
    "monitor_deliveries", _META,
    sa.Column("alert_id", sa.Integer, primary_key=True),
    sa.Column("sink", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
RULE_STATE = sa.Table(
    "monitor_rule_state", _META,
    sa.Column("rule", sa.String(200), primary_key=True),
    sa.Column("entity", sa.String(200), primary_key=True),
    sa.Column("firing", sa.Boolean, nullable=False),
    sa.Column("last_fired", sa.BigInteger, nullable=True),
    sa.Column("checked_until", sa.BigInteger, nullable=True),
)
FILES = sa.Table(
    "monitor_files", _META,
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime", sa.Float, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
)


class DatabaseBusy(DomainfitError):
    """The database stayed locked by another writer for longer than the store waits."""


def utc(epoch: int | float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


@dataclass
class StoredDocument:
    """One scored document as the store keeps it (``mentions``: dicts of
    :class:`~.entities.Mention`)."""

    id: str
    epoch: int
    text: str
    label: str
    p_positive: float
    p_negative: float
    cluster: str
    similarity: float = 0.0
    source: str | None = None
    url: str | None = None
    topic: str | None = None
    mentions: list[dict] = field(default_factory=list)

    @property
    def reprint(self) -> bool:
        return self.cluster != self.id

    def row(self, now: _dt.datetime) -> dict:
        return {"id": self.id, "time": utc(self.epoch), "epoch": self.epoch, "text": self.text,
                "source": self.source, "url": self.url, "label": self.label, "p_positive": self.p_positive,
                "p_negative": self.p_negative, "sentiment": self.p_positive - self.p_negative, "topic": self.topic,
                "cluster": self.cluster, "similarity": self.similarity, "reprint": self.reprint, "ingested_at": now}


class MonitorStore:
    """The monitor's tables behind one SQLAlchemy engine (created if missing).

    Args:
        url: a SQLAlchemy URL; ``sqlite:///monitor.db`` is a file beside the working folder.
        busy_timeout: seconds a write waits for another writer's lock before
            :class:`DatabaseBusy` is raised (SQLite).
    """

    def __init__(self, url: str = "sqlite:///monitor.db", *, busy_timeout: float = 30.0):
        self.url = url
        sqlite = url.startswith("sqlite")
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": busy_timeout}} if sqlite else {}
        try:
            self.engine = sa.create_engine(url, **kwargs)
            if sqlite:
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            with self._guard():
                _META.create_all(self.engine)
        except sa.exc.ArgumentError as exc:
            raise DomainfitError(f"--db {url!r} is not a database URL ({exc}); e.g. sqlite:///monitor.db.") from None

    def close(self) -> None:
        self.engine.dispose()

    def _guard(self):
        return _Guard(self.url)

    # documents -------------------------------------------------------------------------
    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """The ids among ``ids`` that are already stored."""
        ids = list(dict.fromkeys(ids))
        found: set[str] = set()
        with self._guard(), self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                found.update(conn.execute(sa.select(DOCUMENTS.c.id).where(DOCUMENTS.c.id.in_(part))).scalars())
        return found

    def add_documents(self, docs: list[StoredDocument]) -> int:
        """Store a batch in one transaction; documents whose id is stored already are left out.
        Returns how many were new. When this returns, the batch is on disk."""
        if not docs:
            return 0
        now = _now()
        with self._guard(), self.engine.begin() as conn:
            ids = [d.id for d in docs]
            present = set(conn.execute(sa.select(DOCUMENTS.c.id).where(DOCUMENTS.c.id.in_(ids))).scalars())
            fresh = {d.id: d for d in docs if d.id not in present}  # a repeated id within a batch: the last one
            if not fresh:
                return 0
            conn.execute(DOCUMENTS.insert(), [d.row(now) for d in fresh.values()])
            mentions = [{"doc_id": d.id, "entity": m["entity"], "epoch": d.epoch, "subject": bool(m["subject"]),
                         "relevance": float(m["relevance"]), "spans": json.dumps(m.get("spans", []))}
                        for d in fresh.values() for m in d.mentions]
            if mentions:
                conn.execute(MENTIONS.insert(), mentions)
        return len(fresh)

    def story_scores(self, ids: list[str]) -> dict[str, dict]:
        """``label``, ``p_positive``, ``p_negative`` and ``topic`` of the stored documents among
        ``ids`` (the stories that reprints take their sentiment from)."""
        out: dict[str, dict] = {}
        d = DOCUMENTS
        with self._guard(), self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = sa.select(d.c.id, d.c.label, d.c.p_positive, d.c.p_negative, d.c.topic).where(
                    d.c.id.in_(ids[i:i + 500]))
                for r in conn.execute(q):
                    out[r.id] = {"label": r.label, "p_positive": r.p_positive, "p_negative": r.p_negative,
                                 "topic": r.topic}
        return out

    def recent_documents(self, since_epoch: int) -> Iterator[tuple[str, str, int, str]]:
        """``(id, text, epoch, cluster)`` of the documents from ``since_epoch`` on, oldest first
        (the de-duplicator's memory after a restart)."""
        q = (sa.select(DOCUMENTS.c.id, DOCUMENTS.c.text, DOCUMENTS.c.epoch, DOCUMENTS.c.cluster)
             .where(DOCUMENTS.c.epoch >= since_epoch).order_by(DOCUMENTS.c.epoch))
        with self._guard(), self.engine.connect() as conn:
            for row in conn.execute(q):
                yield tuple(row)

    def newest_epoch(self) -> int | None:
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(DOCUMENTS.c.epoch))).scalar()

    def oldest_epoch(self) -> int | None:
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(DOCUMENTS.c.epoch))).scalar()

    def count(self) -> int:
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(DOCUMENTS)).scalar() or 0

    def documents(self, *, entity: str | None = None, since: int | None = None, until: int | None = None,
                  limit: int = 100, order: str = "time", unique: bool = False) -> list[dict]:
        """Stored documents (newest first; ``order="negative"``: most negative first), with the
        mention of ``entity`` when one is given (subject mentions only)."""
        d, m = DOCUMENTS, MENTIONS
        cols = [d.c.id, d.c.time, d.c.epoch, d.c.text, d.c.source, d.c.url, d.c.label, d.c.p_positive,
                d.c.p_negative, d.c.sentiment, d.c.topic, d.c.cluster, d.c.reprint]
        q = sa.select(*cols)
        if entity is not None:
            q = q.join(m, m.c.doc_id == d.c.id).add_columns(m.c.spans).where(m.c.entity == entity,
                                                                              m.c.subject.is_(True))
        if since is not None:
            q = q.where(d.c.epoch >= since)
        if until is not None:
            q = q.where(d.c.epoch < until)
        if unique:
            q = q.where(d.c.reprint.is_(False))
        q = q.order_by(d.c.p_negative.desc() if order == "negative" else d.c.epoch.desc()).limit(limit)
        with self._guard(), self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        for r in rows:
            r["time"] = utc(r["epoch"]).isoformat()
            if "spans" in r:
                r["spans"] = json.loads(r["spans"])
        return rows

    def mentions_of(self, doc_ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        with self._guard(), self.engine.connect() as conn:
            for i in range(0, len(doc_ids), 500):
                q = sa.select(MENTIONS).where(MENTIONS.c.doc_id.in_(doc_ids[i:i + 500]))
                for r in conn.execute(q):
                    out.setdefault(r.doc_id, []).append({"entity": r.entity, "subject": r.subject,
                                                         "relevance": r.relevance, "spans": json.loads(r.spans)})
        return out

    def window_counts(self, window: int, *, since: int, until: int, by: str = "entity",
                      subject_only: bool = True) -> list[dict]:
        """Per key and window: ``volume`` (documents), ``unique_volume`` (stories: documents
        that are no reprint), and over the unique stories ``sentiment_sum`` and
        ``negative`` (how many were labelled negative). ``by``: ``entity`` (subject
        mentions), ``topic``, ``source`` or ``all``."""
        d, m = DOCUMENTS, MENTIONS
        bucket = (d.c.epoch - d.c.epoch % window).label("bucket")
        unique = sa.case((d.c.reprint.is_(False), 1), else_=0)
        cols = [bucket, sa.func.count().label("volume"), sa.func.sum(unique).label("unique_volume"),
                sa.func.sum(sa.case((d.c.reprint.is_(False), d.c.sentiment), else_=0.0)).label("sentiment_sum"),
                sa.func.sum(sa.case((sa.and_(d.c.reprint.is_(False), d.c.label == "negative"), 1),
                                    else_=0)).label("negative")]
        if by == "entity":
            key = m.c.entity
            q = sa.select(key.label("key"), *cols).select_from(m.join(d, d.c.id == m.c.doc_id))
            q = q.where(m.c.epoch >= since, m.c.epoch < until)
            if subject_only:
                q = q.where(m.c.subject.is_(True))
        elif by in ("topic", "source"):
            key = d.c[by]
            q = sa.select(key.label("key"), *cols).where(d.c.epoch >= since, d.c.epoch < until, key.is_not(None))
        elif by == "all":
            key = sa.literal("*")
            q = sa.select(key.label("key"), *cols).where(d.c.epoch >= since, d.c.epoch < until)
        else:
            raise DomainfitError(f"aggregates by {by!r}: choose entity, topic, source or all.")
        q = q.group_by(key, bucket) if by != "all" else q.group_by(bucket)
        with self._guard(), self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # alerts ------------------------------------------------------------------------------
    def rule_state(self, rule: str) -> dict[str, dict]:
        with self._guard(), self.engine.connect() as conn:
            rows = conn.execute(sa.select(RULE_STATE).where(RULE_STATE.c.rule == rule))
            return {r.entity: dict(r._mapping) for r in rows}

    def save_rule_state(self, rule: str, states: dict[str, dict]) -> None:
        if not states:
            return
        with self._guard(), self.engine.begin() as conn:
            conn.execute(RULE_STATE.delete().where(RULE_STATE.c.rule == rule,
                                                   RULE_STATE.c.entity.in_(list(states))))
            conn.execute(RULE_STATE.insert(), [{"rule": rule, "entity": e, "firing": bool(s["firing"]),
                                                "last_fired": s.get("last_fired"),
                                                "checked_until": s.get("checked_until")}
                                               for e, s in states.items()])

    def add_alert(self, alert: dict, sinks: list[str]) -> int | None:
        """Store an alert (and a pending delivery per sink) unless one with the same rule,
        entity, window and state exists; returns its id, or None for a repeat."""
        key = f"{alert['rule']}|{alert['entity']}|{alert['window_start_epoch']}|{alert['state']}"
        row = {"key": key, "rule": alert["rule"], "entity": alert["entity"], "metric": alert["metric"],
               "window": alert["window"], "window_start": alert["window_start_epoch"], "epoch": alert["epoch"],
               "state": alert["state"], "value": alert.get("value"), "baseline": alert.get("baseline"),
               "score": alert.get("score"), "body": json.dumps(alert, ensure_ascii=False, default=str),
               "created_at": _now()}
        with self._guard(), self.engine.begin() as conn:
            if conn.execute(sa.select(ALERTS.c.id).where(ALERTS.c.key == key)).first() is not None:
                return None
            alert_id = conn.execute(ALERTS.insert().values(**row)).inserted_primary_key[0]
            if sinks:
                conn.execute(DELIVERIES.insert(), [{"alert_id": alert_id, "sink": s, "status": "pending",
                                                    "attempts": 0, "last_error": None, "updated_at": _now()}
                                                   for s in sinks])
        return alert_id

    def alerts(self, *, since: int | None = None, entity: str | None = None, limit: int = 1000,
               newest_first: bool = False) -> list[dict]:
        """Stored alerts, oldest first (``newest_first``: the newest ``limit`` ones, newest
        first), each the alert as built, plus its ``id`` and delivery states."""
        order = (ALERTS.c.epoch.desc(), ALERTS.c.id.desc()) if newest_first else (ALERTS.c.epoch, ALERTS.c.id)
        q = sa.select(ALERTS.c.id, ALERTS.c.body).order_by(*order)
        if since is not None:
            q = q.where(ALERTS.c.epoch >= since)
        if entity is not None:
            q = q.where(ALERTS.c.entity == entity)
        with self._guard(), self.engine.connect() as conn:
            rows = list(conn.execute(q.limit(limit)))
            ids = [r.id for r in rows]
            deliveries: dict[int, dict] = {}
            for i in range(0, len(ids), 500):
                for d in conn.execute(sa.select(DELIVERIES).where(DELIVERIES.c.alert_id.in_(ids[i:i + 500]))):
                    deliveries.setdefault(d.alert_id, {})[d.sink] = d.status
        return [{**json.loads(r.body), "id": r.id, "deliveries": deliveries.get(r.id, {})} for r in rows]

    def pending_deliveries(self, limit: int = 100) -> list[tuple[int, str, int, dict]]:
        """``(alert id, sink, attempts, alert)`` of deliveries not made yet, oldest first."""
        q = (sa.select(DELIVERIES.c.alert_id, DELIVERIES.c.sink, DELIVERIES.c.attempts, ALERTS.c.body)
             .join(ALERTS, ALERTS.c.id == DELIVERIES.c.alert_id).where(DELIVERIES.c.status == "pending")
             .order_by(DELIVERIES.c.alert_id).limit(limit))
        with self._guard(), self.engine.connect() as conn:
            return [(r.alert_id, r.sink, r.attempts, {**json.loads(r.body), "id": r.alert_id})
                    for r in conn.execute(q)]

    def mark_delivery(self, alert_id: int, sink: str, status: str, error: str | None = None) -> None:
        """Record a delivery attempt: ``sent``, ``failed`` (given up) or still ``pending``."""
        with self._guard(), self.engine.begin() as conn:
            conn.execute(DELIVERIES.update().where(DELIVERIES.c.alert_id == alert_id, DELIVERIES.c.sink == sink)
                         .values(status=status, attempts=DELIVERIES.c.attempts + 1, last_error=error,
                                 updated_at=_now()))

    # watched files ----------------------------------------------------------------------
    def file_done(self, path: str, size: int, mtime: float) -> bool:
        with self._guard(), self.engine.connect() as conn:
            row = conn.execute(sa.select(FILES).where(FILES.c.path == path)).first()
        return row is not None and row.size == size and row.mtime == mtime

    def mark_file(self, path: str, size: int, mtime: float, rows: int) -> None:
        with self._guard(), self.engine.begin() as conn:
            conn.execute(FILES.delete().where(FILES.c.path == path))
            conn.execute(FILES.insert().values(path=path, size=size, mtime=mtime, rows=rows, done_at=_now()))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the dashboard read while ingest writes; NORMAL sync is durable across a crash
    # of the process (a committed batch survives), which is what "acknowledged" promises.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class _Guard:
    """Turns a locked database into :class:`DatabaseBusy` (a clear message, nothing half-written:
    the transaction that hit the lock is rolled back)."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, sa.exc.OperationalError) and "locked" in str(exc).lower():
            raise DatabaseBusy(f"the database {self.url} is locked by another writer and stayed locked; nothing of "
                               "this batch was stored. Try again, or give each writer its own database.") from None
        if isinstance(exc, sa.exc.OperationalError):
            raise DomainfitError(f"the database {self.url} cannot be used: {exc.orig}") from None
        return False
