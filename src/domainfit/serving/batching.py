"""Server-side micro-batching: concurrent requests share one model call.

A request puts its items (texts, pairs, queries) on the model's queue and waits. One
worker takes the first waiting request, then keeps collecting until the batch holds
``max_batch`` items or ``max_wait_ms`` has passed since the first, runs the model once on
the whole batch in a worker thread (so the event loop keeps accepting requests), and hands
each request its own slice of the results. A request larger than ``max_batch`` runs alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Batches ``run(items) -> results`` (one result per item, same order) across requests.

    Args:
        run: the model call; it gets the items of every request in the batch.
        max_batch: items per model call (a single larger request is not split).
        max_wait_ms: how long the first request of a batch waits for others.
        on_batch: optional ``fn(items, seconds)`` after every call (metrics).
    """

    def __init__(self, run: Callable[[list], list], max_batch: int = 64, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int, float], None] | None = None):
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="domainfit-model")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, items: list) -> list:
        """Results for ``items`` once their batch has run (an exception of the model call is
        raised here, in every request of that batch)."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((items, future))  # no await before this: a swap cannot slip in between
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch, size, stop = [first], len(first[0]), False
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item[0])
            await self._run_batch(loop, batch)
            if stop:
                return

    async def _run_batch(self, loop, batch: list[tuple[list, asyncio.Future]]) -> None:
        items = [x for part, _ in batch for x in part]
        started = loop.time()
        try:
            results = await loop.run_in_executor(self._executor, self.run, items)
        except Exception as exc:  # the model call failed: every request of the batch gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(items), loop.time() - started)
        start = 0
        for part, future in batch:
            if not future.done():
                future.set_result(results[start:start + len(part)])
            start += len(part)

    async def close(self) -> None:
        """Finish every request already queued, then stop (used when a model is replaced)."""
        if self._queue is not None and self._worker is not None:
            self._queue.put_nowait(None)
            await self._worker
        self._executor.shutdown(wait=False)
