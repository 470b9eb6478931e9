"""The registry over HTTP (admin key always): list, add a version, promote, roll back,
remove. A change is served as soon as it is made; a version that does not load is never
promoted (409, and the registry is left as it was). Registry work runs in worker threads,
so that a held registry lock never stalls the other endpoints."""

from __future__ import annotations

import asyncio
import functools

from fastapi import APIRouter, Depends, Path

from ...core.errors import DomainfitError
from ...stores import check_name
from ..context import ServerContext
from ..errors import ApiError
from ..schemas import MAX_INT, NAME_MAX, NAME_PATTERN, AddVersion, Promote

__all__ = ["routes"]

NAME = Path(..., pattern=NAME_PATTERN, max_length=NAME_MAX, description="A model name in the registry.")


def _checked(name: str) -> str:
    try:
        return check_name(name)
    except DomainfitError as exc:
        raise ApiError(422, "invalid_name", str(exc)) from None


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["admin"], dependencies=[Depends(ctx.admin_auth)])
    host = ctx.host

    def registry():
        if host.registry is None:
            raise ApiError(409, "no_registry", "the server serves one model folder, not a registry")
        return host.registry

    async def off_loop(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    async def known(name: str) -> None:
        _checked(name)
        reg = registry()
        if name not in await off_loop(reg.names):
            raise ApiError(404, "unknown_model", f"there is no model named {name!r} in the registry")

    @router.get("/v1/admin/registry", summary="Every version of every model (admin)")
    async def registry_list():
        reg = registry()
        return {"versions": await off_loop(reg.listing), "problems": await off_loop(reg.problems)}

    @router.post("/v1/admin/registry/{name}/versions", summary="Add a version (admin)")
    async def registry_add(body: AddVersion, name: str = NAME):
        """The folder is checked (manifest, files, weights) before anything is copied; with
        ``stage: production`` the new version must also load before it is promoted."""
        _checked(name)
        reg = registry()
        stage = "staging" if body.stage == "production" else body.stage
        version = await off_loop(reg.add, name, body.path, stage)
        if body.stage == "production":
            await promote(name, version)
        return {"name": name, "version": version}

    async def promote(name: str, version: int, reason: str | None = None) -> dict:
        reg = registry()
        await off_loop(reg.version_path, name, version)  # 409 naming the versions when there is no such one
        loaded = await host.preload(name, version)  # 409, nothing changed, when it does not load
        try:
            entry = await off_loop(lambda: reg.promote(name, version, by="admin API", reason=reason))
        except BaseException:
            await loaded.batcher.close()
            raise
        await host.install(loaded)
        return entry

    @router.post("/v1/admin/registry/{name}/promote", summary="Promote a version to production (admin)")
    async def registry_promote(body: Promote, name: str = NAME):
        await known(name)
        entry = await promote(name, body.version, body.reason)
        return {"name": name, "version": entry["version"], "stage": entry["stage"]}

    @router.post("/v1/admin/registry/{name}/rollback", summary="Roll back to the previous production version (admin)")
    async def registry_rollback(name: str = NAME):
        await known(name)
        entry = await off_loop(lambda: registry().rollback(name, by="admin API"))
        await host.reload(name)
        return {"name": name, "version": entry["version"], "stage": entry["stage"]}

    @router.delete("/v1/admin/registry/{name}/versions/{version}", summary="Remove a version (admin)")
    async def registry_remove(name: str = NAME, version: int = Path(..., ge=1, le=MAX_INT)):
        await known(name)
        await off_loop(registry().remove, name, version)
        return {"name": name, "removed": version}

    return router
