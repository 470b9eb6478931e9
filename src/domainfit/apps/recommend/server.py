"""The recommendation endpoints, added to domainfit's HTTP server (same guard, limits,
authentication and ``/metrics`` as the model server).

* ``GET /v1/recommendations?user=ID&k=10&include=a,b&exclude=c&keep_seen=false``: a known
  user's recommendations, best first, each with the liked item that explains it;
* ``POST /v1/recommendations`` ``{"history": [ids], "text": "...", "k": 10, ...}``: an
  anonymous session from a few items and/or a text of interests;
* ``GET /v1/items/{item}/similar?k=10``: items like one item;
* ``POST /v1/items`` (the API key) ``{"items": [{"item", "text", "time"?, "title"?}]}``: new
  items, embedded and recommendable at once, and written to the bundle.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from ...core.errors import DomainfitError
from ...serving import ApiError, ServerContext, ServeSettings, create_app
from ...serving.schemas import Body

__all__ = ["recommend_extension", "create_recommend_app"]


class SessionIn(Body):
    history: list[str] = Field(default_factory=list, description="Items the visitor liked, oldest first.",
                               max_length=1000)
    text: str | None = Field(None, description="A short text of interests.", max_length=2000)
    k: int = 10
    include: list[str] | None = Field(None, description="Only these items.", max_length=100_000)
    exclude: list[str] | None = Field(None, description="Never these items.", max_length=100_000)
    exclude_seen: bool = Field(True, description="Leave out the history's items.")
    time: str | int | float | None = Field(None, description="The moment to recommend for (default: the latest "
                                                             "in the training data).")


class ItemIn(Body):
    item: str | int = Field(..., description="A new item's id.")
    text: str = Field("", max_length=20_000)
    time: str | int | float | None = None
    title: str | None = Field(None, max_length=500)


class ItemsIn(Body):
    items: list[ItemIn]


def _list(value: str | None) -> list[str] | None:
    return [v for v in (value or "").split(",") if v] or None


def recommend_extension(bundle: str | Path, *, max_items: int = 1000):
    """An extension for :func:`domainfit.serving.create_app` serving a recommendation bundle."""

    def routes(ctx: ServerContext) -> APIRouter:
        router = APIRouter(tags=["recommend"])
        state: dict = {}
        lock = threading.Lock()  # one request at a time uses the recommender (adding items changes it)

        async def start():
            from .bundle import load_recommender, read_bundle

            loop = asyncio.get_running_loop()
            state["meta"] = read_bundle(bundle)
            state["rec"] = await loop.run_in_executor(None, load_recommender, bundle)

        ctx.on_start.append(start)
        ctx.ready_checks.append(lambda: "rec" in state)

        async def run(work):
            if "rec" not in state:
                raise ApiError(503, "not_ready", "the recommender is still loading")
            from .model import UnknownError

            def locked():
                with lock:
                    return work(state["rec"])
            try:
                return await asyncio.get_running_loop().run_in_executor(None, locked)
            except UnknownError as exc:
                raise ApiError(404, "unknown", str(exc)) from None
            except DomainfitError as exc:
                raise ApiError(422, "invalid_request", str(exc)) from None

        def counted(n: int) -> None:
            ctx.metrics["texts"].labels("recommendations").inc(n)

        @router.get("/v1/recommendations", summary="A known user's recommendations",
                    dependencies=[Depends(ctx.predict_auth)])
        async def get_recommendations(request: Request, user: str, k: int = 10, include: str | None = None,
                                      exclude: str | None = None, keep_seen: bool = False):
            def work(rec):
                return rec.recommend(rec.user_histories([user]), k, include=_list(include),
                                     exclude=_list(exclude), exclude_seen=not keep_seen)[0]

            items = await run(work)
            counted(1)
            return {"user": user, "items": items, "request_id": ctx.request_id(request)}

        @router.post("/v1/recommendations", summary="Recommendations for an anonymous session",
                     dependencies=[Depends(ctx.predict_auth)])
        async def post_recommendations(body: SessionIn, request: Request):
            from .data import parse_time

            if not body.history and not (body.text or "").strip():
                raise ApiError(422, "empty_session", "give a history of items, a text of interests, or both")
            try:
                moment = parse_time(body.time) if body.time is not None else None
            except ValueError as exc:
                raise ApiError(422, "invalid_time", str(exc)) from None

            def work(rec):
                hist = rec.session(body.history, body.text, now=moment)
                return rec.recommend(hist, body.k, include=body.include, exclude=body.exclude,
                                     exclude_seen=body.exclude_seen)[0]

            items = await run(work)
            counted(1)
            return {"items": items, "request_id": ctx.request_id(request)}

        @router.get("/v1/items/{item}/similar", summary="Items like an item", dependencies=[Depends(ctx.predict_auth)])
        async def get_similar(item: str, k: int = 10):
            items = await run(lambda rec: rec.similar(item, k))
            counted(1)
            return {"item": item, "items": items}

        @router.post("/v1/items", summary="Add items to the catalogue", dependencies=[Depends(ctx.admin_auth)])
        async def post_items(body: ItemsIn):
            import numpy as np

            from .bundle import save_added
            from .data import Items, parse_time, title_of

            if not body.items:
                raise ApiError(422, "no_items", "the batch has no items")
            if len(body.items) > max_items:
                raise ApiError(413, "too_many_items", f"{len(body.items)} items; the limit is {max_items} a request")
            ids, times, seen = [], [], set()
            for n, it in enumerate(body.items):
                item = str(it.item).strip()
                if not item:
                    raise ApiError(422, "invalid_item", f"items[{n}]: the id is empty")
                if item in seen:
                    raise ApiError(422, "invalid_item", f"items[{n}]: '{item[:60]}' is twice in the batch")
                seen.add(item)
                try:
                    times.append(parse_time(it.time))
                except ValueError as exc:
                    raise ApiError(422, "invalid_time", f"items[{n}]: {exc}") from None
                ids.append(item)
            texts = [it.text.strip() for it in body.items]
            new = Items(ids, texts, np.array(times, dtype=np.float64),
                        [(it.title or "").strip() or title_of(t) or i for it, t, i in zip(body.items, texts, ids)])

            def work(rec):
                clash = [i for i in ids if i in rec.items.index]
                if clash:
                    raise DomainfitError(f"item '{clash[0][:60]}' is already in the catalogue")
                return save_added(Path(bundle), state["meta"], rec, new)

            added = await run(work)
            return {"added": added, "items": state["rec"].n_items}

        return router

    return routes


def create_recommend_app(bundle: str | Path, settings: ServeSettings | None = None, *, max_items: int = 1000):
    """The server for a recommendation bundle (no text model is served beside it)."""
    from .bundle import read_bundle

    read_bundle(bundle)  # a bad bundle fails here, before the server starts
    return create_app(None, settings or ServeSettings(), title="domainfit recommend",
                      extensions=[recommend_extension(bundle, max_items=max_items)])
