"""``POST /v1/feedback`` (store a correction) and ``GET /v1/feedback/export`` (admin: CSV)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..context import ServerContext
from ..errors import ApiError
from ..schemas import FeedbackRequest

__all__ = ["routes"]


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["feedback"])

    @router.post("/v1/feedback", summary="Store feedback on a prediction", dependencies=[Depends(ctx.predict_auth)])
    async def feedback(body: FeedbackRequest, request: Request):
        if len(body.text) > ctx.settings.max_chars:
            raise ApiError(422, "text_too_long", f"text has more than {ctx.settings.max_chars} characters")
        db = ctx.feedback_store()
        row = await asyncio.get_running_loop().run_in_executor(None, lambda: db.add(
            request_id=body.request_id, model=body.model, version=body.version, text=body.text,
            predicted=body.predicted, correct_label=body.correct_label, comment=body.comment))
        return {"id": row, "request_id": ctx.request_id(request)}

    @router.get("/v1/feedback/export", summary="Feedback as labelled CSV (admin)",
                dependencies=[Depends(ctx.admin_auth)])
    async def feedback_export(model: str | None = None, labelled_only: bool = True):
        db = ctx.feedback_store()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "feedback.csv"
            db.export_csv(path, model=model, labelled_only=labelled_only)
            return Response(path.read_bytes(), media_type="text/csv")

    return router
