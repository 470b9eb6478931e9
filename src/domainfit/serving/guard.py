"""The ASGI guard in front of every app: request ids, the body size limit, latency and
status metrics, and one log line per request (never texts or keys)."""

from __future__ import annotations

import logging
import time
import uuid

from .errors import error_bytes

__all__ = ["Guard"]

log = logging.getLogger("domainfit.serve")


class Guard:
    """Pure ASGI middleware: request id, body size limit, latency and status metrics, logs."""

    def __init__(self, app, settings, metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope.get("method") in ("POST", "PUT", "PATCH") and "json" not in headers.get("content-type", ""):
            # Every body of this API is JSON: read it as JSON whatever the client said
            # (curl -d sends application/x-www-form-urlencoded).
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"] + \
                [(b"content-type", b"application/json")]
        given = headers.get("x-request-id", "")
        request_id = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        limit = self.settings.max_body_bytes

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        async def respond(code: int, kind: str, text: str):
            body = error_bytes(kind, text, request_id)
            await send_wrapped({"type": "http.response.start", "status": code,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send_wrapped({"type": "http.response.body", "body": body})

        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await respond(413, "body_too_large", f"the request body is larger than {limit} bytes")
        elif length is None and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            # No length given (chunked): read the body here, up to the limit, then replay it.
            chunks, size, more = [], 0, True
            while more and size <= limit:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
            if size > limit:
                await respond(413, "body_too_large", f"the request body is larger than {limit} bytes")
            else:
                replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

                async def receive_replayed():
                    return replay.pop() if replay else await receive()

                await self.app(scope, receive_replayed, send_wrapped)
        else:
            await self.app(scope, receive, send_wrapped)
        seconds = time.perf_counter() - started
        route = scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        self.metrics["requests"].labels(endpoint, str(status["code"])).inc()
        self.metrics["latency"].labels(endpoint).observe(seconds)
        if status["code"] >= 400:
            self.metrics["errors"].labels(endpoint, str(status["code"])).inc()
        log.info("request %s %s %s status=%s bytes=%s ms=%.1f", request_id, scope.get("method"), endpoint,
                 status["code"], length or "-", seconds * 1000)
