"""The ASGI guard in front of every app: request ids, what is refused before a body is read,
the body size limit and read timeout, latency and status metrics, one log line per request
(never texts or keys), and a proper 500 for a bug.

Refused before any body is read (each with the one JSON error shape):

* a body that is not ``application/json`` (415): the JSON API reads nothing else, and a
  web page can only send JSON to another site after a CORS check this server never passes
  (under ``form_paths``, the console's pages, HTML forms are read too: they are protected by
  the cross-site check below and by their pages' CSRF tokens);
* a cross-site browser request that writes (``POST``, ``PUT``, ``PATCH``, ``DELETE``) from
  an origin that is not this server's or one of ``allowed_origins`` (403), read from
  ``Origin`` and ``Sec-Fetch-Site``;
* a request without the right key, where every writing endpoint needs one (admin
  endpoints, those under ``key_paths``, and all of them with ``require_key``), so a keyless
  client cannot make the server buffer bodies;
* a ``Content-Length`` over ``max_body_bytes`` (``max_form_bytes`` under ``form_paths``) (413).

Under ``form_paths`` an error answer is a short HTML page when the request asked for HTML (a
browser's form post), JSON otherwise.

A body that takes longer than ``body_timeout`` to arrive gets 408 and the connection is
closed (headers are timed by the HTTP protocol, see :mod:`.run`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from .auth import key_error, presented_key
from .errors import error_bytes, error_page

__all__ = ["Guard"]

log = logging.getLogger("domainfit.serve")

WRITES = ("POST", "PUT", "PATCH", "DELETE")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _BodyTimeout(Exception):
    pass


class Guard:
    """Pure ASGI middleware (see the module docstring)."""

    def __init__(self, app, settings, metrics):
        self.app, self.settings, self.metrics = app, settings, metrics
        self._keyed = ("/v1/admin/", *settings.key_paths)  # writes under these need the key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        state = {"code": 500, "sent": False, "closed": False}

        async def send_wrapped(message):
            if state["closed"]:
                return  # the guard has answered (a timeout): the app's late answer goes nowhere
            if message["type"] == "http.response.start":
                state["code"], state["sent"] = message["status"], True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        page = self._form_path(scope) and "text/html" in headers.get("accept", "")

        async def respond(code: int, kind: str, text: str, extra: dict | None = None, close: bool = False):
            body = error_page(code, text, request_id) if page else error_bytes(kind, text, request_id)
            kind_of_body = b"text/html; charset=utf-8" if page else b"application/json"
            head = [(b"content-type", kind_of_body), (b"content-length", str(len(body)).encode())]
            head += [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (extra or {}).items()]
            if close:
                head.append((b"connection", b"close"))
            await send_wrapped({"type": "http.response.start", "status": code, "headers": head})
            await send_wrapped({"type": "http.response.body", "body": body})

        length = headers.get("content-length")
        try:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                await respond(*refusal, close=True)
            else:
                await self._forward(scope, receive, send_wrapped, respond, state, length)
        except Exception as exc:
            if state["closed"] or type(exc).__name__ == "ClientDisconnect":
                pass  # the client went away, or the guard already answered (408)
            else:
                log.exception("request %s failed", request_id)
                if not state["sent"]:
                    await respond(500, "internal", "internal error; see the server log")
            # Not raised further: the answer is complete, so the connection stays usable.
        finally:
            seconds = time.perf_counter() - started
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            code = str(state["code"])
            self.metrics["requests"].labels(endpoint, code).inc()
            self.metrics["latency"].labels(endpoint).observe(seconds)
            if state["code"] >= 400:
                self.metrics["errors"].labels(endpoint, code).inc()
            log.info("request %s %s %s status=%s bytes=%s ms=%.1f", request_id, scope.get("method"), endpoint,
                     code, length or "-", seconds * 1000)

    def _form_path(self, scope) -> bool:
        path = scope.get("path", "")
        return any(path.startswith(prefix) for prefix in self.settings.form_paths)

    def _limit(self, scope) -> int:
        return self.settings.max_form_bytes if self._form_path(scope) else self.settings.max_body_bytes

    def _refusal(self, scope, headers: dict) -> tuple | None:
        """``(status, code, message[, headers])`` for a request refused before its body is read."""
        method = scope.get("method")
        if method not in WRITES:
            return None
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        json_body = ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))
        if has_body and not json_body and not (ctype in FORM_TYPES and self._form_path(scope)):
            return (415, "unsupported_media_type", "send the body as JSON, with 'Content-Type: application/json'")
        if self._cross_site(scope, headers):
            return (403, "cross_site", "cross-site requests from a web page are refused (the server allows "
                    "its own pages and --allow-origin)")
        if self.settings.require_key or scope.get("path", "").startswith(self._keyed):
            error = key_error(presented_key(headers), self.settings.api_key)
            if error is not None:
                return (error.status, error.code, error.message)
        length = headers.get("content-length")
        limit = self._limit(scope)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return (413, "body_too_large", f"the request body is larger than {limit} bytes")
        return None

    def _cross_site(self, scope, headers: dict) -> bool:
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.rstrip("/").lower()
            # The page's host against the one the request was sent to (the scheme may differ
            # behind a proxy that ends TLS).
            same = origin.partition("://")[2] == headers.get("host", "").lower()
            return not same and origin not in self.settings.allowed_origins
        # No Origin: only a browser says where the request came from this way.
        return headers.get("sec-fetch-site") in ("cross-site", "same-site")

    async def _forward(self, scope, receive, send, respond, state, length) -> None:
        """Run the app with the body read under the size limit and the read timeout."""
        limit = self._limit(scope)
        deadline = asyncio.get_running_loop().time() + self.settings.body_timeout
        progress = {"size": 0, "done": scope.get("method") not in WRITES}

        async def receive_guarded():
            if progress["done"]:
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except asyncio.TimeoutError:
                if not state["sent"]:
                    await respond(408, "request_timeout", f"the body did not arrive within "
                                  f"{self.settings.body_timeout:g} seconds", close=True)
                state["closed"] = True
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                progress["size"] += len(message.get("body", b""))
                progress["done"] = not message.get("more_body", False)
                if progress["size"] > limit:  # no Content-Length (chunked): counted while reading
                    if not state["sent"]:
                        await respond(413, "body_too_large", f"the request body is larger than {limit} bytes",
                                      close=True)
                    state["closed"] = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, receive_guarded, send)
