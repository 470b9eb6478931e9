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
    requests before it stops.

    A model of a registry that cannot be served (its registry entry is corrupt, or its
    production version fails to load) never takes the others down: it is kept at the version
    it served (at start-up: skipped), and ``failures`` says why (``/readyz`` shows it) until
    its next registry change loads.
    """

    def __init__(self, source: Path | None, settings: ServeSettings, metrics):
        self.source = Path(source) if source is not None else None
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, Loaded] = {}
        self.failures: dict[str, str] = {}
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
                               on_batch=lambda n, s: histogram.labels(name).observe(n),
                               max_queue=self.settings.max_queue)
        return Loaded(name, version, predictor, batcher, path)

    async def preload(self, name: str, version: int) -> Loaded:
        """Load a registry version without serving it (a promotion checks it loads first).

        Raises:
            ApiError: 409 ``broken_version`` when it does not load (nothing has changed).
        """
        path = self.registry.version_path(name, version)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self._load, name, version, path)
        except Exception as exc:
            raise ApiError(409, "broken_version", f"version {version} of {name} does not load, so it is not "
                           f"served: {_reason(exc)}") from None

    async def install(self, loaded: Loaded) -> None:
        """Serve ``loaded`` (from :meth:`preload`) in place of the current version of its model."""
        async with self._lock:
            self._mtimes[loaded.name] = self.registry.state_file(loaded.name).stat().st_mtime_ns
            current = self.models.get(loaded.name)
            if current is not None and current.version == loaded.version:  # a poll was quicker
                await loaded.batcher.close()
                return
            await self._swap(loaded)

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
        await self._scan()
        if not self.models and self.failures:
            log.error("no model of %s could be served: %s", self.source, self.failures)
        self._poller = loop.create_task(self._poll())

    async def _scan(self) -> None:
        """Reload every model whose registry entry changed; record the ones that cannot be read."""
        listed, problems = self.registry.entries()  # one read of every registry.json per poll
        for name, problem in problems.items():
            self._fail(name, problem)
        names = set(listed) | set(self.models)
        for name in set(self.failures) - names - set(problems):  # gone from the registry
            del self.failures[name]
        for name in names:
            try:
                state_file = self.registry.state_file(name)
                mtime = state_file.stat().st_mtime_ns if state_file.exists() else -1
            except (OSError, DomainfitError) as exc:
                self._fail(name, _reason(exc))
                continue
            if mtime != self._mtimes.get(name):
                await self.reload(name)

    def _fail(self, name: str, reason: str) -> None:
        if self.failures.get(name) != reason:  # logged once, not on every poll
            log.error("model %s cannot be served: %s", name, reason)
        self.failures[name] = reason

    async def reload(self, name: str) -> None:
        """Serve the current production version of ``name`` (load it if it changed). When it
        cannot be loaded, the version served so far stays, and ``failures`` says why."""
        async with self._lock:
            current = self.models.get(name)
            try:
                self._mtimes[name] = self.registry.state_file(name).stat().st_mtime_ns
                production = self.registry.production(name)
            except FileNotFoundError:
                production = None  # removed
            except (OSError, DomainfitError) as exc:
                self._fail(name, _reason(exc) + (f"; still serving version {current.version}" if current else ""))
                return
            if production is None:
                self.failures.pop(name, None)
                if current is not None:
                    del self.models[name]
                    await current.batcher.close()
                return
            version, path = production
            if current is not None and current.version == version:
                self.failures.pop(name, None)
                return
            try:
                loaded = await asyncio.get_running_loop().run_in_executor(None, self._load, name, version, path)
            except Exception as exc:
                kept = f"; still serving version {current.version}" if current else ""
                self._fail(name, f"version {version} does not load: {_reason(exc)}{kept}")
                return
            await self._swap(loaded)

    async def _swap(self, loaded: Loaded) -> None:
        current = self.models.get(loaded.name)
        loaded.batcher.start()
        self.models[loaded.name] = loaded  # new requests go to the new version from here on
        self.failures.pop(loaded.name, None)
        log.info("serving %s version %s", loaded.name, loaded.version)
        if current is not None:
            await current.batcher.close()  # requests already queued on the old version finish there

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                await self._scan()
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


def _reason(exc: Exception) -> str:
    """An exception as one line for an operator."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]
