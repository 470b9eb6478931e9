"""``GET /v1/models`` and ``POST /v1/models/{name}/predict``: what a request must hold, and
how a batch of them is answered, is the model's task's to say."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from ..context import ServerContext
from ..schemas import NAME_MAX, NAME_PATTERN, PredictRequest

__all__ = ["routes"]


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["predict"], dependencies=[Depends(ctx.predict_auth)])

    @router.get("/v1/models", summary="The served models")
    async def list_models():
        return {"models": [{"name": m.name, "version": m.version, "task": m.predictor.task.name,
                            "labels": m.predictor.labels, "backend": m.predictor.backend}
                           for m in ctx.host.models.values()]}

    @router.post("/v1/models/{name}/predict", summary="Predict")
    async def predict(body: PredictRequest, request: Request,
                      name: str = Path(..., pattern=NAME_PATTERN, max_length=NAME_MAX,
                                       description="A served model's name.")):
        """Answers in micro-batches with other requests. 503 with ``Retry-After`` when the
        model's queue is full; 504 when no answer came within the server's
        ``request_timeout`` (or the ``X-Request-Timeout`` header's seconds, if fewer)."""
        loaded = ctx.host.get(name)
        task = loaded.predictor.task
        items = task.request_items(body.model_dump(), ctx.settings.limits)
        answers = await ctx.answer(loaded.batcher, items, request)
        ctx.metrics["texts"].labels(loaded.name).inc(len(items))
        ctx.log_predictions(loaded, request, items, answers)
        return {"model": loaded.name, "version": loaded.version, "request_id": ctx.request_id(request),
                **task.response(answers)}

    return router
