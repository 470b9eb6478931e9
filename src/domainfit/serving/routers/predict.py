"""``GET /v1/models`` and ``POST /v1/models/{name}/predict``: what a request must hold, and
how a batch of them is answered, is the model's task's to say."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

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
        explain = _explainer(loaded.predictor, items, body) if body.explain else None
        answers = await ctx.answer(loaded.batcher, items, request)
        ctx.metrics["texts"].labels(loaded.name).inc(len(items))
        ctx.log_predictions(loaded, request, items, answers)
        if explain is not None:  # beside the micro-batches: a few forward passes per text
            for answer, record in zip(answers, await run_in_threadpool(explain)):
                answer["explanation"] = record["explanation"]
                if "entities" in record:
                    answer["entities"] = record["entities"]
        return {"model": loaded.name, "version": loaded.version, "request_id": ctx.request_id(request),
                **task.response(answers)}

    return router


def _explainer(predictor, items: list[dict], body: PredictRequest):
    """The explanation work for a request's items, checked before anything runs (a label
    that is not the model's, a method it cannot do: 422)."""
    from ...core.errors import DomainfitError, RequestError
    from ...inference.explain import check_request

    try:
        check_request(predictor, body.target, body.method)
    except DomainfitError as err:
        raise RequestError(str(err), "cannot_explain") from err
    texts = [i["text"] if "text" in i else " ".join(i["tokens"]) for i in items]
    pairs = [i["pair"] for i in items] if items and "pair" in items[0] else None

    def run():
        return predictor.explain(texts, target=body.target, method=body.method, pairs=pairs)
    return run
