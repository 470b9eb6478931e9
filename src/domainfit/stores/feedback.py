"""Feedback storage: what users said the right answer was, kept for retraining.

SQLite by default (``sqlite:///feedback.db``); any SQLAlchemy URL otherwise (e.g.
``postgresql+psycopg://user@host/db``). ``export_csv`` writes a labelled CSV (``text``,
``label`` = the corrected label, and the context columns) that ``domainfit train`` reads.

A cell that starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is written with a leading ``'`` by default, so that opening an export in a
spreadsheet never runs what a client typed; ``spreadsheet_safe=False`` writes cells as
stored (for feeding the file back into training).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from ..core.io import atomic_file

__all__ = ["FeedbackStore", "spreadsheet_cell"]

COLUMNS = ["text", "label", "predicted", "model", "version", "comment", "request_id", "created_at"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: str) -> str:
    """``value`` as a spreadsheet shows it without running it: ``'`` before a formula start."""
    return "'" + value if value.startswith(_FORMULA_START) else value

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

    def last_id(self, model: str | None = None) -> int:
        """The newest row's id (0 when there is none): a watermark for "what is new"."""
        query = sa.select(sa.func.max(FEEDBACK.c.id))
        if model is not None:
            query = query.where(FEEDBACK.c.model == model)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one() or 0)

    def _query(self, model: str | None, labelled_only: bool, after_id: int = 0, up_to_id: int | None = None):
        query = sa.select(FEEDBACK).order_by(FEEDBACK.c.id).where(FEEDBACK.c.id > after_id)
        if up_to_id is not None:
            query = query.where(FEEDBACK.c.id <= up_to_id)
        if model is not None:
            query = query.where(FEEDBACK.c.model == model)
        if labelled_only:
            query = query.where(FEEDBACK.c.correct_label.is_not(None))
        return query

    def rows(self, model: str | None = None, labelled_only: bool = True, after_id: int = 0,
             up_to_id: int | None = None) -> Iterator[list[str]]:
        """The export's rows (without the header), oldest first, read from the database in
        chunks; only ids in ``(after_id, up_to_id]``."""
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(
                self._query(model, labelled_only, after_id, up_to_id))
            for row in result:
                yield [row.text, row.correct_label or "", row.predicted or "", row.model or "",
                       str(row.version) if row.version is not None else "", row.comment or "",
                       row.request_id or "", row.created_at.isoformat() if row.created_at else ""]

    def iter_csv(self, model: str | None = None, labelled_only: bool = True, spreadsheet_safe: bool = True,
                 chunk_rows: int = 1000) -> Iterator[str]:
        """The export as CSV text in chunks of ``chunk_rows`` rows (the header first)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        n = 0
        for row in self.rows(model, labelled_only):
            writer.writerow([spreadsheet_cell(c) for c in row] if spreadsheet_safe else row)
            n += 1
            if n % chunk_rows == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    def export_csv(self, path: str | Path, model: str | None = None, labelled_only: bool = True,
                   spreadsheet_safe: bool = True, after_id: int = 0, up_to_id: int | None = None) -> int:
        """Write feedback as CSV (``text,label,predicted,model,version,comment,request_id,created_at``),
        oldest first; by default only rows with a corrected label, and formula-like cells
        quoted (see the module docstring). Returns the row count."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for row in self.rows(model, labelled_only, after_id, up_to_id):
                writer.writerow([spreadsheet_cell(c) for c in row] if spreadsheet_safe else row)
                count += 1
        return count
