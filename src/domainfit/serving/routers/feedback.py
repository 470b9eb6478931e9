"""``POST /v1/feedback`` (store a correction) and ``GET /v1/feedback/export`` (admin: CSV,
streamed from the database, so a large export neither builds its body in memory nor stalls
the other endpoints)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ..context import ServerContext
from ..errors import ApiError
from ..schemas import FeedbackRequest

__all__ = ["routes"]


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["feedback"])

    @router.post("/v1/feedback", summary="Store feedback on a prediction", dependencies=[Depends(ctx.predict_auth)])
    async def feedback(body: FeedbackRequest, request: Request):
        if len(body.text) > ctx.settings.max_chars:
            raise ApiError(413, "text_too_long", f"text has more than {ctx.settings.max_chars} characters")
        if body.model is not None and ctx.host.models:  # a server with models checks what it is told about them
            loaded = ctx.host.models.get(body.model)
            if loaded is None:
                raise ApiError(404, "unknown_model", f"no served model named {body.model!r} (served: "
                               f"{', '.join(sorted(ctx.host.models))})")
            labels = loaded.predictor.labels
            if body.correct_label is not None and labels and body.correct_label not in labels:
                raise ApiError(422, "unknown_label", f"{body.model} has no label {body.correct_label!r}; its labels "
                               f"are {', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}")
        db = ctx.feedback_store()
        row = await asyncio.get_running_loop().run_in_executor(None, lambda: db.add(
            request_id=body.request_id, model=body.model, version=body.version, text=body.text,
            predicted=body.predicted, correct_label=body.correct_label, comment=body.comment))
        return {"id": row, "request_id": ctx.request_id(request)}

    @router.get("/v1/feedback/export", summary="Feedback as labelled CSV (admin)",
                dependencies=[Depends(ctx.admin_auth)], response_class=StreamingResponse,
                responses={200: {"content": {"text/csv": {}}}})
    async def feedback_export(model: str | None = Query(None, max_length=64), labelled_only: bool = True,
                              raw: bool = Query(False, description="Cells as stored; by default a cell that a "
                                                "spreadsheet would run as a formula (=, +, -, @) is quoted.")):
        db = ctx.feedback_store()
        # A sync generator: Starlette pulls it in a worker thread, one chunk of rows at a time.
        return StreamingResponse(db.iter_csv(model=model, labelled_only=labelled_only, spreadsheet_safe=not raw),
                                 media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="feedback.csv"'})

    return router
