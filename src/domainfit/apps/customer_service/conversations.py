"""Conversation log: sessions, turns, hand-offs to agents and "was this helpful?" feedback.

SQLite by default (``sqlite:///conversations.db``); any SQLAlchemy URL otherwise (e.g.
``postgresql+psycopg://user@host/db``). Tables are created when missing. A session keeps
its last intent, its last customer message and its slot values, for follow-ups.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ...core.errors import DomainfitError

__all__ = ["ConversationStore", "Session"]

_METADATA = sa.MetaData()
SESSIONS = sa.Table(
    "cs_sessions", _METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("turns", sa.Integer, nullable=False, default=0),
    sa.Column("last_intent", sa.String(256), nullable=True),
    sa.Column("last_message", sa.Text, nullable=True),
    sa.Column("slots", sa.Text, nullable=False, default="{}"),
)
TURNS = sa.Table(
    "cs_turns", _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("cs_sessions.id"), index=True, nullable=False),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("route", sa.String(16), nullable=False),
    sa.Column("intent", sa.String(256), nullable=True),
    sa.Column("details", sa.Text, nullable=False),  # scores and sources, JSON
)
HANDOFFS = sa.Table(
    "cs_handoffs", _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(64), index=True, nullable=False),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="open"),
)
FEEDBACK = sa.Table(
    "cs_feedback", _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(64), index=True, nullable=False),
    sa.Column("turn", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("helpful", sa.Boolean, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
)


class Session:
    """What the assistant remembers of a conversation."""

    def __init__(self, id: str, turns: int = 0, last_intent: str | None = None, last_message: str | None = None,
                 slots: dict | None = None, new: bool = True):
        self.id, self.turns, self.last_intent, self.last_message = id, turns, last_intent, last_message
        self.slots = slots or {}
        self.new = new


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def valid_session_id(value: str | None) -> bool:
    return bool(value) and len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum()


class ConversationStore:
    """Sessions, turns, hand-offs and feedback behind a SQLAlchemy engine."""

    def __init__(self, url: str = "sqlite:///conversations.db"):
        self.url = url
        kwargs = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(url, **kwargs)
            _METADATA.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise DomainfitError(f"cannot open the conversation database {url.split('@')[-1]!r}: "
                                 f"{exc.__class__.__name__}") from None
        self._lock = threading.Lock()  # SQLite: one writer at a time

    def session(self, session_id: str | None) -> Session:
        """The session with this id, or a new one (an unknown or invalid id starts a new one)."""
        if valid_session_id(session_id):
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(SESSIONS).where(SESSIONS.c.id == session_id)).mappings().first()
            if row is not None:
                return Session(row["id"], row["turns"], row["last_intent"], row["last_message"],
                               json.loads(row["slots"] or "{}"), new=False)
        return Session(uuid.uuid4().hex)

    def log_turn(self, session: Session, *, message: str, result: dict, request_id: str | None = None) -> int:
        """Store one turn (and its hand-off); update the session. Returns the turn number."""
        now = _now()
        with self._lock, self.engine.begin() as conn:
            if session.new:
                conn.execute(SESSIONS.insert().values(id=session.id, created_at=now, updated_at=now, turns=0,
                                                      slots="{}"))
                session.new = False
            turn = conn.execute(sa.select(SESSIONS.c.turns).where(SESSIONS.c.id == session.id)).scalar_one() + 1
            intent = result.get("intent")
            updates = {"updated_at": now, "turns": turn, "last_message": message,
                       "slots": json.dumps(session.slots)}
            if result["route"] == "intent":
                updates["last_intent"] = intent
            conn.execute(SESSIONS.update().where(SESSIONS.c.id == session.id).values(**updates))
            details = {k: result.get(k) for k in ("scores", "sources", "follow_up", "missing_slots")}
            conn.execute(TURNS.insert().values(session_id=session.id, turn=turn, created_at=now,
                                               request_id=request_id, message=message, answer=result["answer"],
                                               route=result["route"], intent=intent,
                                               details=json.dumps(details, default=float)))
            if result.get("handoff"):
                conn.execute(HANDOFFS.insert().values(session_id=session.id, turn=turn, created_at=now,
                                                      message=message, reason=result["handoff"]["reason"],
                                                      status="open"))
        session.turns = turn
        if result["route"] == "intent":
            session.last_intent = intent
        session.last_message = message
        return turn

    def add_feedback(self, session_id: str, turn: int, helpful: bool, comment: str | None = None) -> int:
        with self._lock, self.engine.begin() as conn:
            known = conn.execute(sa.select(TURNS.c.id).where(TURNS.c.session_id == session_id,
                                                             TURNS.c.turn == turn)).first()
            if known is None:
                raise DomainfitError(f"there is no turn {turn} in session {session_id[:64]!r}")
            return conn.execute(FEEDBACK.insert().values(session_id=session_id, turn=turn, created_at=_now(),
                                                         helpful=helpful, comment=comment)).inserted_primary_key[0]

    def history(self, session_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(TURNS).where(TURNS.c.session_id == session_id)
                                .order_by(TURNS.c.turn)).mappings().all()
        return [{**{k: r[k] for k in ("turn", "message", "answer", "route", "intent", "request_id")},
                 "created_at": r["created_at"].isoformat(), **json.loads(r["details"])} for r in rows]

    def handoffs(self, status: str | None = "open", limit: int = 100) -> list[dict]:
        query = sa.select(HANDOFFS).order_by(HANDOFFS.c.id.desc()).limit(limit)
        if status:
            query = query.where(HANDOFFS.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{k: (v.isoformat() if isinstance(v, _dt.datetime) else v) for k, v in r.items()} for r in rows]

    def feedback(self) -> list[dict[str, Any]]:
        """Every feedback row with the turn it is about (message, answer, route, intent)."""
        query = sa.select(FEEDBACK.c.session_id, FEEDBACK.c.turn, FEEDBACK.c.helpful, FEEDBACK.c.comment,
                          FEEDBACK.c.created_at, TURNS.c.message, TURNS.c.answer, TURNS.c.route, TURNS.c.intent) \
            .join(TURNS, sa.and_(TURNS.c.session_id == FEEDBACK.c.session_id, TURNS.c.turn == FEEDBACK.c.turn)) \
            .order_by(FEEDBACK.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{k: (v.isoformat() if isinstance(v, _dt.datetime) else v) for k, v in r.items()} for r in rows]

    def close(self) -> None:
        self.engine.dispose()

