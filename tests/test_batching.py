"""The micro-batcher on a real event loop: a failing batch is retried request by request, the
queue is bounded, and work whose caller gave up never reaches the model."""

from __future__ import annotations

import asyncio
import threading

import pytest

from domainfit.serving.batching import MicroBatcher, QueueFull


def _run(coro):
    return asyncio.run(coro)


def test_one_bad_request_fails_alone():
    calls = []

    def model(items):
        calls.append(list(items))
        if "boom" in items:
            raise ValueError("cannot encode boom")
        return [x.upper() for x in items]

    async def main():
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=50)
        batcher.start()
        good = [batcher.submit([f"t{n}"]) for n in range(10)]
        bad = batcher.submit(["boom"])
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        await batcher.close()
        return results

    results = _run(main())
    assert results[:10] == [[f"T{n}"] for n in range(10)]
    assert isinstance(results[10], ValueError)
    assert len(calls[0]) == 11  # they were batched together first, then each ran alone
    assert sorted(c[0] for c in calls[1:]) == sorted(["boom"] + [f"t{n}" for n in range(10)])


def test_full_queue_refuses_at_once_and_nothing_is_queued():
    release = threading.Event()

    def model(items):
        release.wait(5)
        return items

    async def main():
        batcher = MicroBatcher(model, max_batch=4, max_wait_ms=1, max_queue=8)
        batcher.start()
        running = batcher.enqueue(["a"] * 4)
        await asyncio.sleep(0.05)  # the worker took it; the queue is empty again
        waiting = batcher.enqueue(["b"] * 8)  # an empty queue takes any one request
        with pytest.raises(QueueFull) as refused:
            batcher.enqueue(["c"])
        queued = batcher.queued
        release.set()
        results = await asyncio.gather(running, waiting)
        await batcher.close()
        return refused.value, queued, results

    refused, queued, results = _run(main())
    assert queued == 8 and refused.retry_after >= 1
    assert results == [["a"] * 4, ["b"] * 8]


def test_abandoned_requests_never_reach_the_model():
    release = threading.Event()
    seen = []

    def model(items):
        seen.extend(items)
        release.wait(5)
        return items

    async def main():
        batcher = MicroBatcher(model, max_batch=2, max_wait_ms=1)
        batcher.start()
        first = batcher.enqueue(["first"])
        await asyncio.sleep(0.05)
        gave_up = [asyncio.ensure_future(batcher.submit([f"gone{n}", f"gone{n}"])) for n in range(5)]
        await asyncio.sleep(0.01)
        assert batcher.queued == 10
        for task in gave_up:
            task.cancel()  # what a client disconnect or a deadline does
        await asyncio.sleep(0)
        assert batcher.queued == 0  # their room is free at once, while the model is still busy
        last = batcher.enqueue(["last"])
        release.set()
        out = await asyncio.gather(first, last)
        await batcher.close()
        return out, batcher.queued

    (first, last), queued = _run(main())
    assert first == ["first"] and last == ["last"] and queued == 0
    assert seen == ["first", "last"]
