"""The registry over HTTP (admin key always): list, add a version, promote, roll back,
remove. A change is served as soon as it is made."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from ...core.errors import DomainfitError
from ...stores import check_name
from ..context import ServerContext
from ..errors import ApiError
from ..schemas import AddVersion, Promote

__all__ = ["routes"]


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

    @router.get("/v1/admin/registry", summary="Every version of every model (admin)")
    async def registry_list():
        return {"versions": registry().listing()}

    @router.post("/v1/admin/registry/{name}/versions", summary="Add a version (admin)")
    async def registry_add(name: str, body: AddVersion):
        _checked(name)
        version = await asyncio.get_running_loop().run_in_executor(None, registry().add, name, body.path, body.stage)
        await host.reload(name)
        return {"name": name, "version": version}

    @router.post("/v1/admin/registry/{name}/promote", summary="Promote a version to production (admin)")
    async def registry_promote(name: str, body: Promote):
        entry = registry().promote(_checked(name), body.version)
        await host.reload(name)
        return {"name": name, "version": entry["version"], "stage": entry["stage"]}

    @router.post("/v1/admin/registry/{name}/rollback", summary="Roll back to the previous production version (admin)")
    async def registry_rollback(name: str):
        entry = registry().rollback(_checked(name))
        await host.reload(name)
        return {"name": name, "version": entry["version"], "stage": entry["stage"]}

    @router.delete("/v1/admin/registry/{name}/versions/{version}", summary="Remove a version (admin)")
    async def registry_remove(name: str, version: int):
        registry().remove(_checked(name), version)
        return {"name": name, "removed": version}

    return router
