"""Starting a server: the one place that configures and runs uvicorn.

Besides uvicorn's own limits (``max_connections`` becomes its concurrency limit: beyond it,
503), the HTTP protocol here times how long a client takes to send a request's headers:
a connection that has not sent complete headers within ``header_timeout`` seconds of its
first byte (or of connecting) gets 408 and is closed, so slow clients cannot hold
connections open. The body is timed by the guard (``body_timeout``).
"""

from __future__ import annotations

from pathlib import Path

from .errors import error_bytes
from .settings import ServeSettings

__all__ = ["run_app", "serve", "uvicorn_config"]

_TIMEOUT_BODY = error_bytes("request_timeout", "the request headers did not arrive in time", "")
_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                   b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


def _protocol(header_timeout: float):
    """uvicorn's httptools protocol with a deadline on reading each request's headers."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TimedHttpProtocol(HttpToolsProtocol):
        _head_timer = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.write(_TIMEOUT_ANSWER)
                self.transport.close()

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self):
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self):
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

    return TimedHttpProtocol


def uvicorn_config(app, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
                   log_level: str = "info"):
    """The ``uvicorn.Config`` every domainfit server runs under (tests use it too)."""
    import uvicorn

    settings = settings or getattr(app, "settings", None) or ServeSettings()
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                          http=_protocol(settings.header_timeout), limit_concurrency=settings.max_connections,
                          timeout_keep_alive=5, timeout_graceful_shutdown=10)


def run_app(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve an ASGI app (from :func:`create_app`, or an app's own) until interrupted, with
    plain log lines on stderr."""
    import logging

    import uvicorn

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.Server(uvicorn_config(app, host, port, log_level=log_level)).run()


def serve(source: str | Path, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          log_level: str = "info") -> None:
    """Serve an artifact folder or a registry folder until interrupted.

    Raises:
        ManifestError: an artifact folder that is damaged (checked before the server starts,
            so that the command exits with the file named instead of a failed start-up).
    """
    from ..artifact import is_artifact, verify_artifact
    from .app import create_app

    if is_artifact(source):
        verify_artifact(source)
    run_app(create_app(source, settings), host=host, port=port, log_level=log_level)
