"""``/healthz`` (alive), ``/readyz`` (models loaded) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..context import ServerContext

__all__ = ["routes"]


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz():
        return {"status": "ok"}

    @router.get("/readyz", summary="Models are loaded and serving")
    async def readyz(request: Request):
        host = ctx.host
        loaded = bool(host.models) if host.source is not None else bool(ctx.ready_checks)
        if not request.app.state.ready or not loaded or not all(check() for check in ctx.ready_checks):
            return JSONResponse({"status": "not ready", "models": sorted(host.models)}, status_code=503)
        return {"status": "ready", "models": sorted(host.models)}

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics_endpoint():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(ctx.metrics["registry"]), media_type=CONTENT_TYPE_LATEST)

    return router
