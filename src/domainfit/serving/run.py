"""Starting a server: the one place that runs uvicorn."""

from __future__ import annotations

from pathlib import Path

from .settings import ServeSettings

__all__ = ["run_app", "serve"]


def run_app(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve an ASGI app (from :func:`create_app`, or an app's own) until interrupted, with
    plain log lines on stderr."""
    import logging

    import uvicorn

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def serve(source: str | Path, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          log_level: str = "info") -> None:
    """Serve an artifact folder or a registry folder until interrupted."""
    from .app import create_app

    run_app(create_app(source, settings), host=host, port=port, log_level=log_level)
