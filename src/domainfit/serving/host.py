"""The served models: one artifact folder, or every production model of a registry folder,
each behind its own micro-batcher; a promotion is picked up while serving."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import is_artifact
from ..core.errors import DomainfitError
from ..stores import Registry
from .batching import MicroBatcher
from .errors import ApiError
from .settings import ServeSettings

__all__ = ["ModelHost", "Loaded"]

log = logging.getLogger("domainfit.serve")


@dataclass
class Loaded:
    """A served version of a model."""

    name: str
    version: int
    predictor: Any
    batcher: MicroBatcher
    path: Path


class ModelHost:
    """The served models. A promotion is picked up by polling the registry's state file; the
    new version is loaded in a thread, then swapped in, and the old one finishes its queued
    requests before it stops."""

    def __init__(self, source: Path | None, settings: ServeSettings, metrics):
        self.source = Path(source) if source is not None else None
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, Loaded] = {}
        self.registry = None if self.source is None or is_artifact(self.source) else Registry(self.source)
        self._mtimes: dict[str, int] = {}
        self._poller: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        if self.source is not None and self.registry is None and not self.source.is_dir():
            raise DomainfitError(f"{source} is neither a model folder nor a registry folder.")

    def _load(self, name: str, version: int, path: Path) -> Loaded:
        from ..inference import Predictor

        predictor = Predictor(path)
        histogram = self.metrics["batch"]
        batcher = MicroBatcher(predictor.answer, self.settings.max_batch, self.settings.max_wait_ms,
                               on_batch=lambda n, s: histogram.labels(name).observe(n))
        return Loaded(name, version, predictor, batcher, path)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.source is None:
            return
        if self.registry is None:
            name = self.source.name if self.source.name and not self.source.name.startswith(".") else "model"
            name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)[:64]
            loaded = await loop.run_in_executor(None, self._load, name, 1, self.source)
            loaded.batcher.start()
            self.models[name] = loaded
            return
        for name in self.registry.names():
            await self.reload(name)
        self._poller = loop.create_task(self._poll())

    async def reload(self, name: str) -> None:
        """Serve the current production version of ``name`` (load it if it changed)."""
        async with self._lock:
            try:
                self._mtimes[name] = self.registry.state_file(name).stat().st_mtime_ns
                production = self.registry.production(name)
            except (OSError, DomainfitError):
                production = None
            current = self.models.get(name)
            if production is None:
                if current is not None:
                    del self.models[name]
                    await current.batcher.close()
                return
            version, path = production
            if current is not None and current.version == version:
                return
            loaded = await asyncio.get_running_loop().run_in_executor(None, self._load, name, version, path)
            loaded.batcher.start()
            self.models[name] = loaded  # new requests go to the new version from here on
            log.info("serving %s version %s", name, version)
            if current is not None:
                await current.batcher.close()  # requests already queued on the old version finish there

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                names = set(self.registry.names()) | set(self.models)
                for name in names:
                    state_file = self.registry.state_file(name)
                    mtime = state_file.stat().st_mtime_ns if state_file.exists() else -1
                    if mtime != self._mtimes.get(name):
                        await self.reload(name)
            except Exception:  # a poll must never kill the server; the next one tries again
                log.exception("registry poll failed")

    def get(self, name: str) -> Loaded:
        loaded = self.models.get(name)
        if loaded is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise ApiError(404, "unknown_model", f"no model named {name[:80]!r} is served (models: {known})")
        return loaded

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for loaded in list(self.models.values()):
            await loaded.batcher.close()
