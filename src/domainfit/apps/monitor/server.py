"""The monitoring endpoints and dashboard, added to domainfit's HTTP server.

* ``POST /v1/documents`` (the API key): ``{"documents": [{"id", "time", "text", "source"?, "url"?}, ...]}``
  → ``stored``, ``repeated``, ``skipped`` (each with its reason) and the new ``alerts``; at most
  ``max_texts`` documents a request. Stored before the answer is sent (idempotent by id).
* ``GET /v1/monitor/overview?window=1h&span=7d``: every entity with totals and sparklines;
* ``GET /v1/monitor/entities/{id}?window=1h&span=7d``: one entity's series and alerts;
* ``GET /v1/monitor/documents?entity=ID&since=EPOCH&until=EPOCH&limit=50&explain=false``: the
  documents (with the words that made them negative when ``explain``);
* ``GET /v1/monitor/alerts?since=7d&entity=ID&order=oldest|newest``; ``GET /v1/monitor/export.csv?window=1h&entity=ID``;
* ``GET /monitor``: the dashboard (plain HTML, CSS and its own script drawing SVG charts; no CDN).

The model that scores the stream is also served like any model, under its folder's name
(``/v1/models/sentiment-int8/predict``, or ``sentiment`` without the int8 copy). A
background task judges the alerts every ``check_seconds`` (windows close with the clock even
when no document arrives) and retries pending deliveries.
"""

from __future__ import annotations

import asyncio
import io
import threading
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field

from ...core.errors import DomainfitError
from ...serving import ApiError, ServerContext, ServeSettings, create_app
from ...serving.schemas import Body

__all__ = ["monitor_extension", "create_monitor_app"]

_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
                 "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}
_STATIC = {"monitor.js": "text/javascript", "monitor.css": "text/css"}


class DocumentIn(Body):
    id: str | int | None = Field(None, description="Unique id (a re-sent id is stored once).")
    time: str | int | float | None = Field(None, description="ISO 8601 or POSIX seconds.")
    text: str | None = None
    source: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2000)


class DocumentsIn(Body):
    documents: list[DocumentIn] = Field(..., description="The documents of this batch.")


def _span(value: str) -> int:
    from .aggregates import parse_duration

    try:
        return parse_duration(value, "span")
    except DomainfitError as exc:
        raise ApiError(422, "invalid_span", str(exc)) from None


def monitor_extension(bundle: str | Path, db_url: str, *, rules: str | Path | None = None,
                      check_seconds: float = 60.0):
    """An extension for :func:`domainfit.serving.create_app` serving a monitoring bundle."""

    def routes(ctx: ServerContext) -> APIRouter:
        router = APIRouter(tags=["monitor"])
        state: dict = {}
        settings = ctx.settings
        lock = threading.Lock()  # one writer: batches are stored one after the other

        async def start():
            from .monitor import Monitor

            loop = asyncio.get_running_loop()
            state["monitor"] = await loop.run_in_executor(None, lambda: Monitor(bundle, db_url, rules=rules))
            state["task"] = asyncio.create_task(_tick())

        async def _tick():
            import time

            while True:
                await asyncio.sleep(check_seconds)
                try:
                    await asyncio.get_running_loop().run_in_executor(None, _locked,
                                                                     lambda m: m.check(int(time.time())))
                except Exception as exc:  # a failing check must not stop the next one
                    import logging

                    logging.getLogger("domainfit.monitor").warning("alert check failed: %s", exc)

        def _locked(work):
            with lock:
                return work(state["monitor"])

        async def stop():
            if "task" in state:
                state["task"].cancel()
            if "monitor" in state:
                state["monitor"].close()

        ctx.on_start.append(start)
        ctx.on_stop.append(stop)
        ctx.ready_checks.append(lambda: "monitor" in state)

        def monitor():
            if "monitor" not in state:
                raise ApiError(503, "not_ready", "the monitor is still loading")
            return state["monitor"]

        async def run(work):
            monitor()
            try:
                return await asyncio.get_running_loop().run_in_executor(None, _locked, work)
            except DomainfitError as exc:
                raise ApiError(422, "invalid_request", str(exc)) from None

        @router.post("/v1/documents", summary="Ingest a batch of documents", dependencies=[Depends(ctx.admin_auth)])
        async def post_documents(body: DocumentsIn, request: Request):
            from .documents import check_document

            if len(body.documents) > settings.max_texts:
                raise ApiError(413, "too_many_documents", f"{len(body.documents)} documents; the limit is "
                               f"{settings.max_texts} a request")
            docs, skipped = [], []
            for i, d in enumerate(body.documents):
                doc, skip = check_document(d.model_dump(), f"documents[{i}]", max_chars=settings.max_chars)
                (docs.append(doc) if doc is not None else skipped.append(skip.to_dict()))
            result = await run(lambda m: m.ingest(docs)) if docs else {"stored": 0, "repeated": 0, "alerts": []}
            ctx.metrics["texts"].labels("documents").inc(len(docs))
            return {"stored": result["stored"], "repeated": result["repeated"], "skipped": skipped,
                    "alerts": result["alerts"], "request_id": ctx.request_id(request)}

        @router.get("/v1/monitor/overview", summary="Entities with totals and sparklines",
                    dependencies=[Depends(ctx.predict_auth)])
        async def get_overview(window: str = "1h", span: str = "7d"):
            from .views import overview

            m, seconds = monitor(), _span(span)
            names = {e.id: e.name for e in m.linker.entities.values()}
            return await run(lambda m: overview(m.store, names, window=window, span=seconds))

        @router.get("/v1/monitor/entities/{entity}", summary="One entity's series and alerts",
                    dependencies=[Depends(ctx.predict_auth)])
        async def get_entity(entity: str, window: str = "1h", span: str = "7d"):
            from .views import entity_series

            m, seconds = monitor(), _span(span)
            if entity not in m.linker.entities:
                raise ApiError(404, "unknown_entity", "the bundle has no entity with this id")
            out = await run(lambda m: entity_series(m.store, entity, window=window, span=seconds))
            return {**out, "name": m.linker.entities[entity].name}

        @router.get("/v1/monitor/documents", summary="Documents, optionally with explanations",
                    dependencies=[Depends(ctx.predict_auth)])
        async def get_documents(entity: str | None = None, since: int | None = None, until: int | None = None,
                                limit: int = 50, explain: bool = False, order: str = "time"):
            limit = max(1, min(limit, 200 if not explain else 20))
            if order not in ("time", "negative"):
                raise ApiError(422, "invalid_order", "order is time or negative")

            def work(m):
                docs = m.store.documents(entity=entity, since=since, until=until, limit=limit, order=order)
                if explain and docs:
                    for d, e in zip(docs, m._explain([d["text"] for d in docs])):
                        d["explanation"] = e
                return docs

            return {"documents": await run(work)}

        @router.get("/v1/monitor/alerts", summary="Stored alerts", dependencies=[Depends(ctx.predict_auth)])
        async def get_alerts(since: str | None = None, entity: str | None = None, limit: int = 200,
                             order: str = "oldest"):
            from ...stores.predictions import parse_since

            try:
                moment = parse_since(since)
            except DomainfitError as exc:
                raise ApiError(422, "invalid_since", str(exc)) from None
            limit = max(1, min(limit, 5000))
            if order not in ("oldest", "newest"):
                raise ApiError(422, "invalid_order", "order is oldest or newest")
            return {"alerts": await run(lambda m: m.store.alerts(
                since=int(moment.timestamp()) if moment else None, entity=entity, limit=limit,
                newest_first=order == "newest"))}

        @router.get("/v1/monitor/export.csv", summary="The aggregates as CSV", dependencies=[Depends(ctx.predict_auth)])
        async def export_csv(window: str = "1h", entity: str | None = None, by: str = "entity"):
            from ...stores.feedback import spreadsheet_cell
            from .views import aggregates_table

            frame = await run(lambda m: aggregates_table(m.store, window=window, by=by, key=entity))
            if "key" in frame:
                frame["key"] = [spreadsheet_cell(str(k)) for k in frame["key"]]
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            name = f"aggregates-{entity or by}-{window}.csv".replace("/", "_")
            return Response(buffer.getvalue(), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

        @router.get("/monitor", summary="Monitoring dashboard", response_class=HTMLResponse)
        async def dashboard():
            page = resources.files(__package__).joinpath("static/monitor.html").read_text(encoding="utf-8")
            return HTMLResponse(page, headers=_PAGE_HEADERS)

        @router.get("/monitor/static/{name}", summary="Dashboard scripts", include_in_schema=False)
        async def static(name: str):
            if name not in _STATIC:
                raise ApiError(404, "not_found", "no such file")
            body = resources.files(__package__).joinpath(f"static/{name}").read_bytes()
            return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "max-age=3600",
                                                                     "X-Content-Type-Options": "nosniff"})

        return router

    return routes


def create_monitor_app(bundle: str | Path, settings: ServeSettings | None = None, *,
                       db_url: str = "sqlite:///monitor.db", rules: str | Path | None = None,
                       max_documents: int | None = None, check_seconds: float = 60.0):
    """The server for a monitoring bundle: documents, the monitoring API, the dashboard, and
    the stream's sentiment model under ``/v1/models/{its folder}/predict``."""
    from dataclasses import replace

    from .bundle import read_bundle

    meta = read_bundle(bundle)
    settings = settings or ServeSettings()
    if max_documents is not None:
        settings = replace(settings, max_texts=max_documents,
                           max_body_bytes=max(settings.max_body_bytes, max_documents * 4 * 1024))
    return create_app(Path(bundle) / meta["scorer"]["path"], settings, title="domainfit monitor",
                      extensions=[monitor_extension(bundle, db_url, rules=rules, check_seconds=check_seconds)])
