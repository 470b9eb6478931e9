"""Server-side micro-batching: concurrent requests share one model call.

A request puts its items (texts, pairs, queries) on the model's queue and waits. One
worker takes the first waiting request, then keeps collecting until the batch holds
``max_batch`` items or ``max_wait_ms`` has passed since the first, runs the model once on
the whole batch in a worker thread (so the event loop keeps accepting requests), and hands
each request its own slice of the results. A request larger than ``max_batch`` runs alone.

Under failure and overload:

* when a batch's model call fails, each of its requests is run again alone, so that only
  the request that caused the failure gets the error;
* the queue is bounded (``max_queue`` items): a request that would overflow it is refused
  at once with :class:`QueueFull` (the server answers 503 with ``Retry-After``);
* a request whose caller stopped waiting (the client went away, or its deadline passed)
  is cancelled; its items are dropped from the queue and never reach the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["MicroBatcher", "QueueFull"]


class QueueFull(Exception):
    """The model's queue has no room for the request; ``retry_after`` is a fair wait in seconds."""

    def __init__(self, queued: int, limit: int, retry_after: int):
        super().__init__(f"{queued} items are waiting for this model (the limit is {limit}); retry later")
        self.retry_after = retry_after


class _Entry:
    """A request's items on the queue; ``counted`` while they count towards ``queued``."""

    __slots__ = ("items", "future", "counted")

    def __init__(self, items: list, future: asyncio.Future):
        self.items, self.future, self.counted = items, future, True


class MicroBatcher:
    """Batches ``run(items) -> results`` (one result per item, same order) across requests.

    Args:
        run: the model call; it gets the items of every request in the batch.
        max_batch: items per model call (a single larger request is not split).
        max_wait_ms: how long the first request of a batch waits for others.
        on_batch: optional ``fn(items, seconds)`` after every call (metrics).
        max_queue: items that may wait (None: no bound). A request larger than the bound
            is still taken when the queue is empty.
    """

    def __init__(self, run: Callable[[list], list], max_batch: int = 64, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int, float], None] | None = None, max_queue: int | None = None):
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch
        self.max_queue = max_queue
        self.queued = 0  # items waiting (not yet handed to the model)
        self._seconds_per_item = 0.001  # running estimate, for Retry-After
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="domainfit-model")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._loop())

    def enqueue(self, items: list) -> asyncio.Future:
        """Queue ``items`` now (no await: a model swap cannot slip in between) and return the
        future of their results. Cancel the future to give up: the items leave the queue.

        Raises:
            QueueFull: the queue has no room (nothing was queued).
        """
        if self.max_queue is not None and self.queued and self.queued + len(items) > self.max_queue:
            wait = self.queued * self._seconds_per_item
            raise QueueFull(self.queued, self.max_queue, max(1, min(60, round(wait + 0.5))))
        future = asyncio.get_running_loop().create_future()
        entry = _Entry(items, future)
        self.queued += len(items)
        future.add_done_callback(lambda f: f.cancelled() and self._count_out(entry))  # room at once
        self._queue.put_nowait(entry)
        return future

    async def submit(self, items: list) -> list:
        """Results for ``items`` once their batch has run (see :meth:`enqueue`); an exception
        of the model call on this request's own items is raised here."""
        future = self.enqueue(items)
        try:
            return await future
        except asyncio.CancelledError:
            future.cancel()  # the worker skips it
            raise

    def _count_out(self, entry: _Entry) -> None:
        if entry.counted:
            entry.counted = False
            self.queued -= len(entry.items)

    def _take(self, entry: _Entry) -> bool:
        """Count ``entry`` out of the queue; False when its caller has given up."""
        self._count_out(entry)
        return not entry.future.done()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if first is None:
                return
            if not self._take(first):
                continue
            batch, size, stop = [first], len(first.items), False
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    entry = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if entry is None:
                    stop = True
                    break
                if self._take(entry):
                    batch.append(entry)
                    size += len(entry.items)
            await self._run_batch(loop, batch)
            if stop:
                return

    async def _call(self, loop, items: list) -> list:
        started = loop.time()
        results = await loop.run_in_executor(self._executor, self.run, items)
        seconds = loop.time() - started
        self._seconds_per_item = 0.8 * self._seconds_per_item + 0.2 * seconds / max(1, len(items))
        if self.on_batch is not None:
            self.on_batch(len(items), seconds)
        return results

    async def _run_batch(self, loop, batch: list[_Entry]) -> None:
        batch = [(e.items, e.future) for e in batch if not e.future.done()]
        if not batch:
            return
        items = [x for part, _ in batch for x in part]
        try:
            results = await self._call(loop, items)
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            # One request may have broken the call for all: run each alone, so that only it fails.
            for part, future in batch:
                if future.done():
                    continue
                try:
                    result = await self._call(loop, part)
                except Exception as alone:
                    if not future.done():
                        future.set_exception(alone)
                else:
                    if not future.done():
                        future.set_result(result)
            return
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
