"""Errors and their handlers: every error is JSON ``{"error": {"code", "message"},
"request_id"}``, with a 4xx status for a bad request and 500 (logged) for a bug."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import DomainfitError, RequestError

__all__ = ["ApiError", "error_body", "request_id", "install_error_handlers"]

log = logging.getLogger("domainfit.serve")


class ApiError(RequestError):
    """A client error raised by an endpoint: ``ApiError(404, "unknown_model", "...")``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message, code, status)


def error_body(code: str, message: str, request_id: str) -> dict:
    return {"error": {"code": code, "message": message}, "request_id": request_id}


def error_bytes(code: str, message: str, request_id: str) -> bytes:
    return json.dumps(error_body(code, message, request_id)).encode()


def request_id(request: Request) -> str:
    """The id the guard gave this request (also in the ``X-Request-ID`` response header)."""
    return request.scope.get("state", {}).get("request_id", "")


async def _request_error(request: Request, exc: RequestError):
    return JSONResponse(error_body(exc.code, exc.message, request_id(request)), status_code=exc.status)


async def _invalid(request: Request, exc: RequestValidationError):
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(error_body("malformed_json", "the body is not valid JSON", request_id(request)),
                            status_code=400)
    shown = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
                      for e in errors[:5])
    return JSONResponse(error_body("invalid_request", shown, request_id(request)), status_code=422)


async def _http(request: Request, exc: StarletteHTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    message = "the body could not be read (is it UTF-8 JSON?)" if exc.status_code == 400 else str(exc.detail)
    return JSONResponse(error_body(code, message, request_id(request)), status_code=exc.status_code)


async def _domainfit(request: Request, exc: DomainfitError):
    return JSONResponse(error_body("cannot_serve", str(exc), request_id(request)), status_code=409)


async def _bug(request: Request, exc: Exception):  # a bug, not the client's fault: logged with its id
    log.exception("request %s failed", request_id(request))
    return JSONResponse(error_body("internal", "internal error; see the server log", request_id(request)),
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the one JSON shape."""
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DomainfitError, _domainfit)
    app.add_exception_handler(Exception, _bug)
