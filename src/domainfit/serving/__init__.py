"""Serving: the HTTP API, micro-batching, the model registry and the feedback store."""

from __future__ import annotations

from pathlib import Path

from .app import ServeSettings, create_app
from .feedback import FeedbackStore
from .registry import Registry

__all__ = ["serve", "create_app", "ServeSettings", "Registry", "FeedbackStore"]


def serve(source: str | Path, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          log_level: str = "info") -> None:
    """Serve an artifact folder or a registry folder with uvicorn until interrupted."""
    import logging

    import uvicorn

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(create_app(source, settings), host=host, port=port, log_level=log_level, access_log=False)
