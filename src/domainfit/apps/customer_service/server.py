"""The chat endpoints and web page, added to domainfit's HTTP server.

* ``POST /v1/chat``: ``{"message": "...", "session_id": "..." (optional), "context":
  {"card_type": "Visa"} (optional values of the bundle's client slots)}`` → the answer, its route, intent, scores,
  sources, hand-off, session id and turn number;
* ``POST /v1/chat/feedback``: ``{"session_id", "turn", "helpful": true|false, "comment"}``;
* ``GET /v1/chat/sessions/{session_id}``: the turns of a session;
* ``GET /v1/chat/handoffs`` (admin key): open hand-offs for agents;
* ``GET /chat``: a small web chat page (plain HTML + JS) that talks to ``/v1/chat``.

Chat messages from concurrent requests are answered in micro-batches like predictions;
auth (``--require-key``), limits, the error format, request ids, logs and metrics are the
server's own.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import Field

from ...core.errors import DomainfitError
from ...serving import ApiError, ServerContext, ServeSettings, create_app
from ...serving.batching import MicroBatcher
from ...serving.schemas import MAX_INT, Body
from .conversations import ConversationStore, valid_session_id

__all__ = ["chat_extension", "create_chat_app"]


MAX_SLOTS = 20
"""Slot values a session keeps at most."""


class ChatRequest(Body):
    message: str = Field(..., description="The customer's message.")
    session_id: str | None = Field(None, max_length=64, description="Omit (or unknown) to start a new session.")
    context: dict[str, str] | None = Field(None, max_length=MAX_SLOTS, description="Values of the slots the bundle "
                                           "lets a client set (its client_slots), e.g. {\"card_type\": \"Visa\"}.")
    explain: bool = Field(False, description="Add the words that decided the intent (explanation: a score per word).")


class ChatFeedback(Body):
    session_id: str = Field(..., min_length=1, max_length=64)
    turn: int = Field(..., ge=1, le=MAX_INT)
    helpful: bool
    comment: str | None = Field(None, max_length=2000)


def chat_page() -> str:
    return resources.files(__package__).joinpath("static/chat.html").read_text(encoding="utf-8")


def chat_extension(bundle: str | Path, db_url: str = "sqlite:///conversations.db", generation: bool | None = None):
    """An extension for :func:`domainfit.serving.create_app` serving a bundle's chat: its
    router, with the assistant loaded when the server starts."""

    def routes(ctx: ServerContext) -> APIRouter:
        router = APIRouter(tags=["chat"])
        state: dict = {}
        settings = ctx.settings

        async def start():
            from .assistant import Assistant

            loop = asyncio.get_running_loop()
            store = await loop.run_in_executor(None, ConversationStore, db_url)
            assistant = await loop.run_in_executor(None, lambda: Assistant(bundle, store=store,
                                                                           generation=generation))
            histogram = ctx.metrics["batch"]
            batcher = MicroBatcher(assistant.answer_many, settings.max_batch, settings.max_wait_ms,
                                   on_batch=lambda n, s: histogram.labels("chat").observe(n),
                                   max_queue=settings.max_queue)
            batcher.start()
            state.update(assistant=assistant, store=store, batcher=batcher)

        async def stop():
            if "batcher" in state:
                await state["batcher"].close()
                state["store"].close()

        ctx.on_start.append(start)
        ctx.on_stop.append(stop)
        ctx.ready_checks.append(lambda: "assistant" in state)

        def loaded(part: str):
            """``state[part]`` once start() has run; a 503 before."""
            if part not in state:
                raise ApiError(503, "not_ready", "the assistant is still loading")
            return state[part]

        @router.post("/v1/chat", summary="Answer a customer message", dependencies=[Depends(ctx.predict_auth)])
        async def chat(body: ChatRequest, request: Request):
            assistant = loaded("assistant")
            message = body.message
            if not message.strip():
                raise ApiError(422, "empty_message", "the message is empty")
            if len(message) > settings.max_chars:
                raise ApiError(413, "text_too_long", f"the message has {len(message)} characters; the limit is "
                               f"{settings.max_chars}")
            for key, value in (body.context or {}).items():
                if len(key) > 64 or len(value) > 200:
                    raise ApiError(422, "invalid_context", "context keys are at most 64 and values at most 200 "
                                   "characters")
                if key not in assistant.client_slots:
                    allowed = ", ".join(sorted(assistant.client_slots)) or "none"
                    raise ApiError(422, "invalid_context", f"the slot {key[:64]!r} cannot be set by a client "
                                   f"(slots a client may set: {allowed})")
            store = state["store"]
            loop = asyncio.get_running_loop()
            session = await loop.run_in_executor(None, store.session, body.session_id)
            if body.context:
                session.slots.update(body.context)
                if len(session.slots) > MAX_SLOTS:  # a session keeps the newest values
                    session.slots = dict(list(session.slots.items())[-MAX_SLOTS:])
            item = {"message": message, "session": session, "context": body.context}
            result = (await ctx.answer(state["batcher"], [item], request))[0]
            request_id = ctx.request_id(request)
            result = await loop.run_in_executor(None, assistant.finish, session, message.strip(), result, request_id)
            if body.explain and result.get("candidate_intent"):
                intent = result["candidate_intent"]
                record = await loop.run_in_executor(None, lambda: assistant.intent.explain(message, target=intent))
                result = {**result, "explanation": {"intent": intent, **record[0]["explanation"]}}
            ctx.metrics["texts"].labels("chat").inc()
            return {**result, "request_id": request_id}

        @router.post("/v1/chat/feedback", summary="Was this answer helpful?", dependencies=[Depends(ctx.predict_auth)])
        async def chat_feedback(body: ChatFeedback, request: Request):
            store = loaded("store")
            try:
                row = await asyncio.get_running_loop().run_in_executor(
                    None, store.add_feedback, body.session_id, body.turn, body.helpful, body.comment)
            except DomainfitError as exc:
                raise ApiError(404, "unknown_turn", str(exc)) from None
            return {"id": row, "request_id": ctx.request_id(request)}

        @router.get("/v1/chat/sessions/{session_id}", summary="The turns of a session",
                 dependencies=[Depends(ctx.predict_auth)])
        async def chat_session(session_id: str):
            if not valid_session_id(session_id):
                raise ApiError(422, "invalid_session", "a session id is at most 64 letters, digits, - or _")
            store = loaded("store")
            turns = await asyncio.get_running_loop().run_in_executor(None, store.history, session_id)
            if not turns:
                raise ApiError(404, "unknown_session", "there is no session with this id")
            return {"session_id": session_id, "turns": turns}

        @router.get("/v1/chat/handoffs", summary="Open hand-offs to agents (admin)",
                 dependencies=[Depends(ctx.admin_auth)])
        async def chat_handoffs(status: str | None = "open", limit: int = 100):
            store = loaded("store")
            limit = max(1, min(limit, 1000))
            rows = await asyncio.get_running_loop().run_in_executor(None, store.handoffs, status, limit)
            return {"handoffs": rows}

        @router.get("/chat", summary="Web chat page", response_class=HTMLResponse)
        async def chat_html():
            return HTMLResponse(chat_page(), headers={
                "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                           "style-src 'self' 'unsafe-inline'; connect-src 'self'; "
                                           "frame-ancestors 'none'",
                "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"})

        return router

    return routes


def create_chat_app(bundle: str | Path, settings: ServeSettings | None = None, *,
                    db_url: str = "sqlite:///conversations.db", generation: bool | None = None):
    """The server for a customer-service bundle: chat, the page, and the intent model under
    ``/v1/models/intent/predict`` like any served model."""
    from .bundle import read_bundle

    meta = read_bundle(bundle)
    return create_app(Path(bundle) / meta["intent"]["path"], settings, title="domainfit customer service",
                      extensions=[chat_extension(bundle, db_url, generation)])
