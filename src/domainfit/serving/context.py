"""What every router of a server gets: the settings, the metrics, the served models, the
stores, the auth dependencies and the lifecycle hooks. Apps extend a server through the same
object (see :func:`domainfit.serving.create_app`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import Request

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
    """

    settings: ServeSettings
    metrics: dict
    host: Any
    on_start: list[Callable] = field(default_factory=list)
    on_stop: list[Callable] = field(default_factory=list)
    ready_checks: list[Callable[[], bool]] = field(default_factory=list)
    _feedback: Any = None

    def feedback_store(self):
        """The feedback store, opened on first use."""
        if self._feedback is None:
            from ..stores import FeedbackStore

            self._feedback = FeedbackStore(self.settings.db_url)
        return self._feedback

    @staticmethod
    def request_id(request: Request) -> str:
        return request_id(request)

    def _check_key(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key")
        if key is None:
            raise ApiError(401, "missing_key", "this endpoint needs an API key: send 'Authorization: Bearer KEY' "
                           "or 'X-API-Key: KEY'")
        if not hmac.compare_digest(key.encode("utf-8", "replace"), self.settings.api_key.encode()):
            raise ApiError(403, "wrong_key", "the API key is not valid")

    def predict_auth(self, request: Request) -> None:
        """Dependency of endpoints open to clients: a key only with ``require_key``."""
        if self.settings.require_key:
            self._check_key(request)

    def admin_auth(self, request: Request) -> None:
        """Dependency of admin endpoints: always a key (disabled without one)."""
        if not self.settings.api_key:
            raise ApiError(403, "admin_disabled", "admin endpoints are disabled: start the server with --api-key "
                           "or DOMAINFIT_API_KEY")
        self._check_key(request)
