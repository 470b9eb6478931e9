"""The review queue: rows a person should label or check (active-learning picks, label-audit
flags, user feedback), and the labels they gave, exported as a training file for
``domainfit retrain --add``.

Each item keeps where it came from (``source``: ``select``, ``audit``, ``feedback``), the
model's suggestion, the label the data gave it (audit) and why it is in the queue. The same
text from the same source is queued once.
"""

from __future__ import annotations

import csv
import datetime as _dt
from pathlib import Path

import sqlalchemy as sa

from ..core.io import atomic_file

__all__ = ["ReviewStore", "REVIEW_SOURCES"]

REVIEW_SOURCES = ("select", "audit", "feedback")

_METADATA = sa.MetaData()
ITEMS = sa.Table(
    "review_items", _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(128), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("line", sa.Integer, nullable=True),
    sa.Column("suggested", sa.Text, nullable=True),
    sa.Column("given", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("queue", "source", "text", name="one_text_per_source"),
)


class ReviewStore:
    """Review items behind a SQLAlchemy engine (the table is created if missing). A
    ``queue`` names one set of items, e.g. the model they are for."""

    def __init__(self, url: str):
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, **kwargs)
        _METADATA.create_all(self.engine)

    def add(self, queue: str, source: str, items: list[dict]) -> int:
        """Queue ``items`` (dicts with ``text`` and optional ``line``, ``suggested``,
        ``given``, ``reason``); returns how many were new."""
        if source not in REVIEW_SOURCES:
            raise ValueError(f"source must be one of {REVIEW_SOURCES}, not {source!r}")
        added = 0
        with self.engine.begin() as conn:
            seen = {r.text for r in conn.execute(sa.select(ITEMS.c.text).where(
                (ITEMS.c.queue == queue) & (ITEMS.c.source == source)))}
            for item in items:
                text = str(item["text"])
                if text in seen:
                    continue
                seen.add(text)
                conn.execute(ITEMS.insert().values(queue=queue, source=source, text=text, line=item.get("line"),
                                                   suggested=item.get("suggested"), given=item.get("given"),
                                                   reason=item.get("reason"), status="open"))
                added += 1
        return added

    def queues(self) -> list[dict]:
        """Each queue with its counts of ``open``, ``labelled`` and ``skipped`` items."""
        query = sa.select(ITEMS.c.queue, ITEMS.c.status, sa.func.count()).group_by(ITEMS.c.queue, ITEMS.c.status)
        out: dict[str, dict] = {}
        with self.engine.connect() as conn:
            for queue, status, count in conn.execute(query):
                out.setdefault(queue, {"queue": queue, "open": 0, "labelled": 0, "skipped": 0})[status] = count
        return [out[q] for q in sorted(out)]

    def items(self, queue: str, status: str | None = None, limit: int = 500) -> list[dict]:
        query = sa.select(ITEMS).where(ITEMS.c.queue == queue).order_by(ITEMS.c.id).limit(limit)
        if status is not None:
            query = query.where(ITEMS.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def next_open(self, queue: str) -> dict | None:
        found = self.items(queue, "open", limit=1)
        return found[0] if found else None

    def label(self, item_id: int, label: str | None) -> bool:
        """Give ``item_id`` a label (``None`` skips it); False when there is no such item."""
        status = "skipped" if label is None else "labelled"
        with self.engine.begin() as conn:
            done = conn.execute(ITEMS.update().where(ITEMS.c.id == item_id).values(
                label=label, status=status, labelled_at=_dt.datetime.now(_dt.timezone.utc)))
        return done.rowcount == 1

    def export_csv(self, queue: str, path: str | Path) -> int:
        """Write the labelled items of ``queue`` as a ``text,label`` CSV (atomically);
        returns the number of rows."""
        rows = [(r["text"], r["label"]) for r in self.items(queue, "labelled", limit=10**9)]
        with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        return len(rows)
