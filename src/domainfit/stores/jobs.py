"""The job table: long work (training, export, evaluation...) asked for from a web page and
run later by one worker, recorded so that nothing is lost when a page, a tab or the process
that started it goes away.

A job is a command line (``argv`` of ``domainfit``) with a state:

``queued`` → ``running`` → ``done`` | ``failed`` | ``stopped`` | ``interrupted``

``interrupted`` is a job whose process was gone when it was looked for (the machine
restarted, the process was killed); such a job, and a stopped one, can be queued again
(:meth:`JobStore.requeue`), which resumes it where the command supports resuming.
SQLite by default; any SQLAlchemy URL otherwise.
"""

from __future__ import annotations

import datetime as _dt
import json

import sqlalchemy as sa

__all__ = ["JobStore", "JOB_STATES", "FINISHED"]

JOB_STATES = ("queued", "running", "done", "failed", "stopped", "interrupted")
FINISHED = ("done", "failed", "stopped", "interrupted")

_METADATA = sa.MetaData()
JOBS = sa.Table(
    "jobs", _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("argv", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _row(row) -> dict:
    job = dict(row._mapping)
    job["argv"] = json.loads(job["argv"])
    for key in ("created_at", "started_at", "finished_at"):
        if job[key] is not None and job[key].tzinfo is None:  # SQLite keeps no offset; stored in UTC
            job[key] = job[key].replace(tzinfo=_dt.timezone.utc)
    return job


class JobStore:
    """Jobs behind a SQLAlchemy engine (the table is created if missing).

    Example:
        >>> store = JobStore("sqlite:///console.db")                              # doctest: +SKIP
        >>> job = store.add("train", "intents (full)", ["train", "--data", "d.csv", "--output", "runs/a"], "runs/a")
        >>> store.claim_next()["id"] == job                                        # doctest: +SKIP
        True
    """

    def __init__(self, url: str):
        self.url = url
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, **kwargs)
        _METADATA.create_all(self.engine)

    def add(self, kind: str, title: str, argv: list[str], output: str | None = None) -> int:
        """Queue a job; returns its id."""
        with self.engine.begin() as conn:
            result = conn.execute(JOBS.insert().values(kind=kind, title=title, argv=json.dumps(argv), output=output,
                                                       status="queued", attempts=0, created_at=_now()))
            return int(result.inserted_primary_key[0])

    def get(self, job_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(JOBS).where(JOBS.c.id == job_id)).first()
        return _row(row) if row is not None else None

    def jobs(self, status: str | tuple[str, ...] | None = None, limit: int = 200) -> list[dict]:
        """The newest jobs first (only those in ``status`` when given)."""
        query = sa.select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(JOBS.c.status.in_((status,) if isinstance(status, str) else status))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def queue_position(self, job_id: int) -> int | None:
        """1 for the next queued job to run, or None when ``job_id`` is not queued."""
        with self.engine.connect() as conn:
            ids = [r.id for r in conn.execute(sa.select(JOBS.c.id).where(JOBS.c.status == "queued")
                                              .order_by(JOBS.c.id))]
        return ids.index(job_id) + 1 if job_id in ids else None

    def claim_next(self) -> dict | None:
        """Mark the oldest queued job ``running`` and return it, unless a job is running
        already (one at a time) or none is queued. Two workers cannot claim the same job."""
        with self.engine.begin() as conn:
            if conn.execute(sa.select(JOBS.c.id).where(JOBS.c.status == "running")).first() is not None:
                return None
            row = conn.execute(sa.select(JOBS.c.id).where(JOBS.c.status == "queued").order_by(JOBS.c.id)).first()
            if row is None:
                return None
            claimed = conn.execute(JOBS.update().where((JOBS.c.id == row.id) & (JOBS.c.status == "queued"))
                                   .values(status="running", pid=None, exit_code=None, error=None,
                                           started_at=_now(), finished_at=None, attempts=JOBS.c.attempts + 1))
            if claimed.rowcount != 1:
                return None
        return self.get(row.id)

    def set_pid(self, job_id: int, pid: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(JOBS.update().where(JOBS.c.id == job_id).values(pid=pid))

    def finish(self, job_id: int, status: str, *, exit_code: int | None = None, error: str | None = None) -> bool:
        """Record how a running (or queued) job ended; False when it had ended already."""
        if status not in FINISHED:
            raise ValueError(f"not a finished state: {status!r}")
        with self.engine.begin() as conn:
            done = conn.execute(JOBS.update().where((JOBS.c.id == job_id) & JOBS.c.status.in_(("queued", "running")))
                                .values(status=status, exit_code=exit_code, error=error, finished_at=_now()))
        return done.rowcount == 1

    def requeue(self, job_id: int) -> bool:
        """Queue a stopped, interrupted or failed job again (same command); False otherwise."""
        with self.engine.begin() as conn:
            done = conn.execute(JOBS.update().where((JOBS.c.id == job_id)
                                                    & JOBS.c.status.in_(("stopped", "interrupted", "failed")))
                                .values(status="queued", pid=None, exit_code=None, error=None, finished_at=None))
        return done.rowcount == 1
