"""The console's app: the model server of :mod:`domainfit.serving` (its guard, limits,
metrics, error shape, and the registry under the root served at ``/v1/models/...``) with the
console's pages and API as an extension, and its job runner started and stopped with it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse

from ..core.errors import DomainfitError
from ..serving import ApiError, ServeSettings, create_app, run_app
from .api import api_routes
from .pages import page_routes
from .security import Security
from .service import Console
from .workspace import ConsoleError

__all__ = ["ConsoleSettings", "create_console_app", "run_console"]

STATIC = Path(__file__).parent / "static"


@dataclass
class ConsoleSettings:
    """How the console is reached.

    Attributes:
        root: the folder it works in (see :mod:`.workspace`).
        host, port: where it listens; anything but a loopback address needs ``api_key``.
        api_key: the key (or password) to sign in with; ``DOMAINFIT_API_KEY`` when not given.
        max_upload_mb: the largest upload, in MiB.
    """

    root: str | Path = "."
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    max_upload_mb: float = 200.0

    def check(self) -> "ConsoleSettings":
        import os

        self.api_key = self.api_key or os.environ.get("DOMAINFIT_API_KEY") or None
        if not self.api_key and not _loopback(self.host):
            raise DomainfitError(f"--host {self.host} lets other machines reach the console: give it a key with "
                                 "--api-key (or DOMAINFIT_API_KEY), or keep the default 127.0.0.1.")
        if not self.max_upload_mb > 0:
            raise DomainfitError(f"--max-upload-mb must be more than 0, not {self.max_upload_mb}.")
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_console_app(settings: ConsoleSettings, *, env: dict | None = None):
    """The console's ASGI app (``env``: variables for the job processes besides this
    process's own).

    Example:
        >>> app = create_console_app(ConsoleSettings(root="work"))             # doctest: +SKIP
    """
    settings.check()
    limit = int(settings.max_upload_mb * (1 << 20))
    console = Console.open(settings.root, limit, env=env)
    security = Security(console.workspace.secret(), settings.api_key)
    # With a key, the served models' API (predict, feedback) needs it too: the console may
    # listen beyond this machine, and its pages sign in with a cookie of their own.
    serve = ServeSettings(api_key=settings.api_key, db_url=console.workspace.db_url, form_paths=("/console/",),
                          max_form_bytes=limit + (1 << 20), key_paths=("/v1/",) if settings.api_key else ())

    def extension(ctx) -> APIRouter:
        async def start():
            console.runner.start()

        async def stop():
            console.runner.close()

        ctx.on_start.append(start)
        ctx.on_stop.append(stop)

        def signed_in_page(request: Request) -> None:
            if not security.signed_in(request):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise ApiError(303, "sign_in", "sign in first", {"Location": f"/console/login?next={target}"})

        def signed_in_api(request: Request) -> None:
            if not security.signed_in(request):
                raise ApiError(401, "missing_key", "sign in on /console/login, or send the key as "
                               "'Authorization: Bearer KEY'")

        router = APIRouter()

        @router.get("/", include_in_schema=False)
        async def root():
            return RedirectResponse("/console/", 307)

        @router.get("/console/static/{name}", include_in_schema=False)
        async def static(name: str):
            path = (STATIC / name).resolve()
            if path.parent != STATIC.resolve() or not path.is_file():
                raise ConsoleError(f"no static file {name!r}", 404, "not_found")
            return FileResponse(path, headers={"Cache-Control": "no-cache"})

        router.include_router(page_routes(console, security, ctx, Depends(signed_in_page)))
        router.include_router(api_routes(console, security, Depends(signed_in_api)))
        return router

    app = create_app(console.workspace.registry, serve, extensions=[extension], title="domainfit console")
    app.console = console
    return app


def run_console(settings: ConsoleSettings, log_level: str = "info") -> None:
    """Serve the console until interrupted."""
    app = create_console_app(settings)
    run_app(app, host=settings.host, port=settings.port, log_level=log_level)
