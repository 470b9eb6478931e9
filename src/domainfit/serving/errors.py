"""Errors and their handlers: every error is JSON ``{"error": {"code", "message"},
"request_id"}``, with a 4xx status for a bad request and 500 (logged) for a bug."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import DomainfitError, RequestError

__all__ = ["ApiError", "error_body", "error_bytes", "error_page", "error_response", "request_id",
           "install_error_handlers"]

log = logging.getLogger("domainfit.serve")


class ApiError(RequestError):
    """A client error raised by an endpoint: ``ApiError(404, "unknown_model", "...")``;
    ``headers`` go into the answer (e.g. ``Retry-After``)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message, code, status)
        self.headers = headers or {}


def error_body(code: str, message: str, request_id: str) -> dict:
    return {"error": {"code": code, "message": message}, "request_id": request_id}


def error_bytes(code: str, message: str, request_id: str) -> bytes:
    # ASCII with escapes: a message quoting a client's string that UTF-8 cannot encode
    # (a lone surrogate) is still a valid body.
    return json.dumps(error_body(code, message, request_id), ensure_ascii=True).encode()


def error_page(status: int, message: str, request_id: str) -> bytes:
    """The same error as a small HTML page, for a browser that posted a form."""
    import html

    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error {status}</title></head>'
            f'<body><main><h1>Error {status}</h1><p role="alert">{html.escape(message)}</p>'
            f'<p><a href="/">Home</a> · request {html.escape(request_id)}</p></main>'
            '</body></html>').encode("utf-8", "replace")


def error_response(status: int, code: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None) -> Response:
    """An error answer in the one JSON shape."""
    return Response(error_bytes(code, message, request_id), status_code=status, headers=headers,
                    media_type="application/json")


def request_id(request: Request) -> str:
    """The id the guard gave this request (also in the ``X-Request-ID`` response header)."""
    return request.scope.get("state", {}).get("request_id", "")


async def _request_error(request: Request, exc: RequestError):
    return error_response(exc.status, exc.code, exc.message, request_id(request), getattr(exc, "headers", None))


async def _invalid(request: Request, exc: RequestValidationError):
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the body is not valid JSON", request_id(request))
    shown = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
                      for e in errors[:5])
    return error_response(422, "invalid_request", shown, request_id(request))


async def _http(request: Request, exc: StarletteHTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    message = "the body could not be read (is it UTF-8 JSON?)" if exc.status_code == 400 else str(exc.detail)
    return error_response(exc.status_code, code, message, request_id(request), exc.headers)  # 405 keeps Allow


async def _domainfit(request: Request, exc: DomainfitError):
    return error_response(getattr(exc, "status", 409), getattr(exc, "code", "cannot_serve"), str(exc),
                          request_id(request))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the one JSON shape."""
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DomainfitError, _domainfit)
    app.add_exception_handler(Exception, _bug)


async def _bug(request: Request, exc: Exception):
    # A bug, not the client's fault. Starlette sends this answer and then raises the
    # exception again, to the guard, which logs it with the request id and counts it.
    return error_response(500, "internal", "internal error; see the server log", request_id(request))
