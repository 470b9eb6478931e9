"""Serving: the HTTP API over artifacts and registries, split by concern.

``settings`` (limits, keys), ``errors`` (one JSON error shape and its handlers), ``schemas``
(request bodies), ``guard`` (the ASGI middleware: request ids, body limits, metrics, logs),
``metrics``, ``host`` (served models, hot swap), ``batching`` (micro-batches),
``routers/`` (health, predict, feedback, admin), ``app`` (``create_app``) and ``run``
(uvicorn).
"""

from __future__ import annotations

from .app import Extension, create_app
from .context import ServerContext
from .errors import ApiError
from .run import run_app, serve
from .settings import ServeSettings

__all__ = ["serve", "run_app", "create_app", "Extension", "ServerContext", "ServeSettings", "ApiError"]
