"""The console's JSON API under ``/console/api/`` (what the pages' scripts and other
programs call): uploads, validation reports, training jobs and their live progress (SSE).

Errors are the server's one JSON shape with a 4xx status; a form body (an upload) needs the
session's CSRF token (``X-CSRF-Token`` or a ``csrf`` field) or the key.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..stores import FINISHED
from .service import Console
from .training import TrainForm
from .workspace import ConsoleError

__all__ = ["api_routes"]


def api_routes(console: Console, security, require_signed_in) -> APIRouter:
    router = APIRouter(prefix="/console/api", tags=["console"], dependencies=[require_signed_in])

    @router.get("/session", summary="This browser's CSRF token (sets the session cookie)")
    async def session(request: Request):
        sid, new = security.session(request)
        response = JSONResponse({"csrf": security.csrf_token(sid)})
        if new:
            set_session_cookie(response, sid)
        return response

    @router.post("/uploads", summary="Upload a data file (multipart field 'file'); stored under data/")
    async def upload(request: Request):
        form = await request.form()
        security.check_csrf(request, form.get("csrf"))
        item = form.get("file")
        if item is None or not hasattr(item, "read"):
            raise ConsoleError("send the file in a multipart field named 'file'", 422, "no_file")
        relative = await asyncio.get_running_loop().run_in_executor(
            None, console.save_upload, item.filename or "upload", item.file, item.size)
        return {"file": relative, "page": f"/console/data/view?file={relative}"}

    @router.get("/data", summary="The validation report of a file under the root")
    async def data(file: str, task: str = "classification", text_column: str | None = None,
                   label_column: str | None = None, text_pair_column: str | None = None):
        report = await asyncio.get_running_loop().run_in_executor(
            None, lambda: console.report(file, task=task, text_column=text_column, label_column=label_column,
                                         text_pair_column=text_pair_column))
        return report.as_dict()

    @router.post("/jobs/train", summary="Queue a training job (JSON: the train form's fields)", status_code=201)
    async def train(request: Request):
        try:
            body = await request.json()
        except ValueError:
            raise ConsoleError("the body is not valid JSON", 400, "malformed_json") from None
        if not isinstance(body, dict) or "data" not in body:
            raise ConsoleError("send a JSON object with at least 'data' (a file under the root)", 422, "bad_form")
        known = set(TrainForm.__dataclass_fields__)
        unknown = sorted(set(body) - known)
        if unknown:
            raise ConsoleError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", 422,
                               "bad_form")
        form = TrainForm(**{k: (v if isinstance(v, bool) else str(v)) for k, v in body.items()})
        job = await asyncio.get_running_loop().run_in_executor(None, console.start_training, form)
        return console.job_view(job)

    @router.get("/jobs", summary="Jobs, newest first")
    async def jobs():
        return [console.job_view(j["id"]) for j in console.jobs.jobs(limit=100)]

    @router.get("/jobs/{job_id}", summary="One job with its progress and output")
    async def job(job_id: int):
        return console.job_view(job_id)

    @router.post("/jobs/{job_id}/stop", summary="Stop a queued or running job")
    async def stop(request: Request, job_id: int):
        if _is_form(request):
            security.check_csrf(request, None)
        console.stop(job_id)
        return console.job_view(job_id)

    @router.post("/jobs/{job_id}/resume", summary="Queue a stopped, interrupted or failed job again")
    async def resume(request: Request, job_id: int):
        if _is_form(request):
            security.check_csrf(request, None)
        console.resume(job_id)
        return console.job_view(job_id)

    @router.get("/jobs/{job_id}/events", summary="Server-sent events: the job's state as it changes")
    async def events(request: Request, job_id: int):
        console.job(job_id)

        async def stream():
            last = None
            while not await request.is_disconnected():
                view = console.job_view(job_id)
                shown = json.dumps(view, default=str)
                if shown != last:
                    last = shown
                    yield f"event: job\ndata: {shown}\n\n"
                if view["status"] in FINISHED:
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.startswith("multipart/") or kind.startswith("application/x-www-form-urlencoded")


def set_session_cookie(response, sid: str) -> None:
    from .security import SESSION_COOKIE

    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", path="/")
