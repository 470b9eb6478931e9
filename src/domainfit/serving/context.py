"""What every router of a server gets: the settings, the metrics, the served models, the
stores, the auth dependencies and the lifecycle hooks. Apps extend a server through the same
object (see :func:`domainfit.serving.create_app`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import Request, Security

from .auth import API_KEY_HEADER, BEARER, key_error, presented_key
from .batching import MicroBatcher, QueueFull
from .errors import ApiError, request_id
from .settings import ServeSettings

__all__ = ["ServerContext"]


@dataclass
class ServerContext:
    """A server's shared parts.

    Attributes:
        settings: the :class:`ServeSettings`. metrics: the Prometheus metrics by name.
        host: the served models (:class:`~domainfit.serving.host.ModelHost`).
        on_start, on_stop: ``async`` hooks run when the server starts and stops.
        ready_checks: ``fn() -> bool``; ``/readyz`` answers ready when all pass.
        prediction_log: the :class:`~domainfit.stores.PredictionLog` with
            ``settings.log_predictions``, else ``None``.
    """

    settings: ServeSettings
    metrics: dict
    host: Any
    on_start: list[Callable] = field(default_factory=list)
    on_stop: list[Callable] = field(default_factory=list)
    ready_checks: list[Callable[[], bool]] = field(default_factory=list)
    prediction_log: Any = None
    _feedback: Any = None

    def __post_init__(self):
        # Declared with the two ways to send a key, so that the OpenAPI schema lists them
        # where a key is needed (on the prediction endpoints only with ``require_key``).
        def predict_auth(request: Request) -> None:
            """Dependency of endpoints open to clients: a key only with ``require_key``."""

        if self.settings.require_key:
            def predict_auth(request: Request, _b=Security(BEARER), _k=Security(API_KEY_HEADER)) -> None:
                """Dependency of endpoints open to clients: a key (``require_key``)."""
                self._check_key(request)

        def admin_auth(request: Request, _b=Security(BEARER), _k=Security(API_KEY_HEADER)) -> None:
            """Dependency of admin endpoints: always a key (disabled without one)."""
            self._check_key(request)

        self.predict_auth, self.admin_auth = predict_auth, admin_auth

    def feedback_store(self):
        """The feedback store, opened on first use."""
        if self._feedback is None:
            from ..stores import FeedbackStore

            self._feedback = FeedbackStore(self.settings.db_url)
        return self._feedback

    def log_predictions(self, loaded, request: Request, items: list, answers: list) -> None:
        """Queue the answered items in the prediction log (when there is one); never waits."""
        if self.prediction_log is None:
            return
        task = loaded.predictor.task
        self.prediction_log.record(self.request_id(request), loaded.name, loaded.version,
                                   (task.log_fields(i, a) for i, a in zip(items, answers)))

    @staticmethod
    def request_id(request: Request) -> str:
        return request_id(request)

    def _check_key(self, request: Request) -> None:
        error = key_error(presented_key(request.headers), self.settings.api_key)
        if error is not None:
            raise error

    async def answer(self, batcher: MicroBatcher, items: list, request: Request) -> list:
        """``batcher.submit(items)``, given up (and its items dropped from the queue) when the
        client disconnects or the request's deadline passes.

        Raises:
            ApiError: 503 with ``Retry-After`` when the queue is full; 504 past the deadline
                (``request_timeout``, or less with an ``X-Request-Timeout: SECONDS`` header).
        """
        timeout = self.settings.request_timeout
        asked = request.headers.get("x-request-timeout")
        if asked is not None:
            try:
                timeout = min(timeout, float(asked))
            except ValueError:
                raise ApiError(422, "invalid_timeout", "X-Request-Timeout is a number of seconds") from None
            if not timeout > 0:
                raise ApiError(422, "invalid_timeout", "X-Request-Timeout must be more than 0 seconds")
        try:
            work = batcher.enqueue(items)  # at once: between choosing the model and queueing, no await
        except QueueFull as exc:
            raise ApiError(503, "overloaded", str(exc), {"Retry-After": str(exc.retry_after)}) from None
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({work, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            gone.cancel()
        if work in done:
            return work.result()
        work.cancel()  # its items leave the queue
        if gone in done:
            raise ApiError(499, "client_closed", "the client closed the connection")
        raise ApiError(504, "deadline_exceeded", f"no answer within {timeout:g} seconds")

async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body is read by now, so the next message the
    server has for this request is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
