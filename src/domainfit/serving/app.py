"""The model server's app: one artifact folder or a registry folder behind a FastAPI app.

Endpoints (OpenAPI at ``/openapi.json``; each area is a router in :mod:`.routers`):

* ``POST /v1/models/{name}/predict``: ``{"texts": [...]}`` (+ ``pairs`` for pair models,
  ``tokens`` instead of texts for pre-split NER input, ``query`` + ``k`` for retrieval,
  ``top_k``) → predictions with the model name, version and request id;
* ``GET /v1/models``, ``GET /healthz`` (alive), ``GET /readyz`` (models loaded),
  ``GET /metrics`` (Prometheus);
* ``POST /v1/feedback``; admin (API key always): ``GET /v1/feedback/export`` (CSV),
  ``GET /v1/admin/registry``, ``POST /v1/admin/registry/{name}/versions`` (add),
  ``POST /v1/admin/registry/{name}/promote``, ``POST /v1/admin/registry/{name}/rollback``,
  ``DELETE /v1/admin/registry/{name}/versions/{version}``.

Every error is JSON ``{"error": {"code", "message"}, "request_id"}`` with a 4xx status for
a bad request (the OpenAPI schema declares them, and the two ways to send a key). Logs carry
request ids, sizes and latency; never texts or keys. ``/docs`` is served from files that
come with the package (no CDN).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI

from ..core.version import __version__
from .context import ServerContext
from .errors import install_error_handlers
from .guard import Guard
from .host import ModelHost
from .metrics import create_metrics
from .routers import admin, feedback, health, predict
from .schemas import ERROR_RESPONSES
from .settings import ServeSettings

__all__ = ["create_app", "Extension"]

Extension = Callable[[ServerContext], APIRouter]
"""An app's part of a server: gets the server's context (auth dependencies, metrics, hooks)
and returns the router with its endpoints, which then share the server's auth, limits,
error format, request ids, logs and metrics."""


def create_app(source: str | Path | None, settings: ServeSettings | None = None, *,
               extensions: Sequence[Extension] = (), title: str = "domainfit"):
    """The ASGI app serving one artifact folder or a registry folder (or no model, when an
    extension brings its own endpoints), wrapped in the request guard.

    Example:
        >>> app = create_app("models/", ServeSettings(api_key="secret"))     # doctest: +SKIP
    """
    settings = settings or ServeSettings()
    metrics = create_metrics()
    ctx = ServerContext(settings, metrics, ModelHost(Path(source) if source is not None else None, settings, metrics))
    if settings.log_predictions:
        _prediction_log(ctx)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await ctx.host.start()
        for hook in ctx.on_start:
            await hook()
        app.state.ready = True
        yield
        app.state.ready = False
        for hook in ctx.on_stop:
            await hook()
        await ctx.host.stop()

    app = FastAPI(title=title, version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Predictions from domainfit models, feedback capture and the model registry.")
    app.state.ready = False
    app.state.host = ctx.host
    install_error_handlers(app)
    for part in (health.routes, predict.routes, feedback.routes, admin.routes, *extensions):
        app.include_router(part(ctx), responses=ERROR_RESPONSES)
    _offline_docs(app, title)
    return Guard(app, settings, metrics)


def _prediction_log(ctx: ServerContext) -> None:
    """The prediction log, written by its own thread from start-up to shut-down, with its
    counters on ``/metrics``."""
    from prometheus_client import Gauge

    from ..stores import PredictionLog

    s = ctx.settings
    ctx.prediction_log = log = PredictionLog(s.db_url, sample=s.log_sample, keep_texts=s.log_texts,
                                             retention_days=s.log_retention_days)
    Gauge("domainfit_prediction_log_written", "Predictions written to the prediction log",
          registry=ctx.metrics["registry"]).set_function(lambda: log.written)
    Gauge("domainfit_prediction_log_dropped", "Predictions not logged because the database fell behind",
          registry=ctx.metrics["registry"]).set_function(lambda: log.dropped)

    async def start():
        log.start()

    async def stop():
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, log.stop)

    ctx.on_start.append(start)
    ctx.on_stop.append(stop)


def _offline_docs(app: FastAPI, title: str) -> None:
    """``/docs``: Swagger UI from the files packaged with fastapi-offline, not from a CDN."""
    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs/static", StaticFiles(directory=static), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{title} API",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css",
                                   swagger_favicon_url="/docs/static/favicon.png")
