"""Feedback storage: what users said the right answer was, kept for retraining.

SQLite by default (``sqlite:///feedback.db``); any SQLAlchemy URL otherwise (e.g.
``postgresql+psycopg://user@host/db``). ``export_csv`` writes a labelled CSV (``text``,
``label`` = the corrected label, and the context columns) that ``domainfit train`` reads.
"""

from __future__ import annotations

import csv
import datetime as _dt
from pathlib import Path

import sqlalchemy as sa

from ..core.io import atomic_file

__all__ = ["FeedbackStore"]

_METADATA = sa.MetaData()
FEEDBACK = sa.Table(
    "feedback", _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), index=True),
    sa.Column("model", sa.String(128)),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("predicted", sa.Text, nullable=True),
    sa.Column("correct_label", sa.Text, nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class FeedbackStore:
    """A feedback table behind a SQLAlchemy engine (created if missing)."""

    def __init__(self, url: str = "sqlite:///feedback.db"):
        self.url = url
        kwargs = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, **kwargs)
        _METADATA.create_all(self.engine)

    def add(self, *, request_id: str | None, model: str | None, version: int | None, text: str,
            predicted: str | None, correct_label: str | None, comment: str | None) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(FEEDBACK.insert().values(
                request_id=request_id, model=model, version=version, text=text, predicted=predicted,
                correct_label=correct_label, comment=comment, created_at=_dt.datetime.now(_dt.timezone.utc)))
            return int(result.inserted_primary_key[0])

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(FEEDBACK)).scalar_one())

    def export_csv(self, path: str | Path, model: str | None = None, labelled_only: bool = True) -> int:
        """Write feedback as CSV (``text,label,predicted,model,version,comment,request_id,created_at``),
        oldest first; by default only rows with a corrected label. Returns the row count."""
        query = sa.select(FEEDBACK).order_by(FEEDBACK.c.id)
        if model is not None:
            query = query.where(FEEDBACK.c.model == model)
        if labelled_only:
            query = query.where(FEEDBACK.c.correct_label.is_not(None))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with atomic_file(path) as tmp, self.engine.connect() as conn, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label", "predicted", "model", "version", "comment", "request_id", "created_at"])
            for row in conn.execute(query):
                writer.writerow([row.text, row.correct_label or "", row.predicted or "", row.model or "",
                                 row.version if row.version is not None else "", row.comment or "",
                                 row.request_id or "", row.created_at.isoformat() if row.created_at else ""])
                count += 1
        return count
