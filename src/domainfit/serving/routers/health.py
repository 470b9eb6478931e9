"""``/healthz`` (alive), ``/readyz`` (models loaded) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..context import ServerContext

__all__ = ["routes"]


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.head("/healthz", include_in_schema=False)
    @router.get("/healthz", summary="The process is alive (HEAD too)")
    async def healthz():
        return {"status": "ok"}

    @router.head("/readyz", include_in_schema=False)
    @router.get("/readyz", summary="Models are loaded and serving (HEAD too)")
    async def readyz(request: Request):
        """Ready (200) when the server has started and serves its models. A registry model
        that cannot be served is listed under ``failed`` with the reason (the others are
        still served, and the server is ready when at least one is)."""
        host = ctx.host
        loaded = bool(host.models) if host.source is not None else bool(ctx.ready_checks)
        body = {"status": "ready", "models": sorted(host.models)}
        if host.failures:
            body["failed"] = dict(sorted(host.failures.items()))
        if not request.app.state.ready or not loaded or not all(check() for check in ctx.ready_checks):
            return JSONResponse({**body, "status": "not ready"}, status_code=503)
        return body

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics_endpoint():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(ctx.metrics["registry"]), media_type=CONTENT_TYPE_LATEST)

    return router
