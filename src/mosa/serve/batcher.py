"""Micro-batching: many concurrent requests -> one model call.

Requests wait in a bounded ``asyncio.Queue``. One collector task takes the first waiting
request, keeps collecting for up to ``window_s`` seconds or until ``max_batch`` requests, and
hands the batch to a single worker thread (the model is not thread-safe and a GPU/CPU runs one
forward pass at a time anyway). Results are fanned back to each request's future. A full queue
raises ``QueueFull`` at once so the server can answer 503 instead of piling up work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# process(items) -> one result (or Exception) per item, in order; runs on the worker thread
Process = Callable[[Sequence[Any]], Sequence[Any]]


class QueueFull(Exception):
    """The request queue is full; ``retry_after`` is a suggested wait in whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"queue full, retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Waiting:
    item: Any
    future: asyncio.Future
    batchable: bool = True


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0
    rejected: int = 0
    busy_s: float = 0.0
    largest_batch: int = 0

    def as_dict(self) -> dict[str, Any]:
        mean = self.busy_s / self.batches if self.batches else 0.0
        return {
            "requests": self.requests,
            "batches": self.batches,
            "rejected": self.rejected,
            "largest_batch": self.largest_batch,
            "mean_batch_s": round(mean, 4),
        }


class MicroBatcher:
    """Collect submitted items into batches for ``process`` (run on one worker thread).

    ``submit(item)`` is awaited by each request; ``batchable=False`` items (e.g. edits) run
    alone. Call ``start()`` inside the running event loop and ``stop()`` at shutdown.
    """

    def __init__(
        self, process: Process, *, max_batch: int = 16, window_s: float = 0.01, queue_size: int = 64
    ):
        if max_batch < 1 or queue_size < 1 or window_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1, window_s >= 0")
        self.process = process
        self.max_batch, self.window_s, self.queue_size = max_batch, window_s, queue_size
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._held: _Waiting | None = None  # a non-batchable item that closed the last batch
        self._running = 0  # items in the batch now on the worker

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            return
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mosa-model")
        self._task = asyncio.get_running_loop().create_task(self._collect_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._task = self._executor = self._queue = None

    @property
    def depth(self) -> int:
        """Requests waiting or running."""
        waiting = self._queue.qsize() if self._queue is not None else 0
        return waiting + self._running + (self._held is not None)

    # -- requests --------------------------------------------------------------------------------
    async def submit(self, item: Any, batchable: bool = True) -> Any:
        """Queue ``item`` and wait for its result (raises what ``process`` returned as error)."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Waiting(item, future, batchable))
        except asyncio.QueueFull:
            self.stats.rejected += 1
            raise QueueFull(self.retry_after()) from None
        self.stats.requests += 1
        return await future

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (at least 1)."""
        mean = self.stats.busy_s / self.stats.batches if self.stats.batches else 1.0
        batches_ahead = self.depth / self.max_batch + 1
        return max(1, round(mean * batches_ahead + 0.5))

    # -- the collector ---------------------------------------------------------------------------
    async def _next_batch(self) -> list[_Waiting]:
        assert self._queue is not None
        first = self._held or await self._queue.get()
        self._held = None
        batch = [first]
        if not first.batchable:
            return batch
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                if timeout <= 0:
                    nxt = self._queue.get_nowait()
                else:
                    nxt = await asyncio.wait_for(self._queue.get(), timeout)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if not nxt.batchable:
                self._held = nxt  # runs alone, next
                break
            batch.append(nxt)
        return batch

    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            live = [w for w in batch if not w.future.done()]  # skip requests already cancelled
            if not live:
                continue
            self._running = len(live)
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    self._executor, _call, self.process, [w.item for w in live]
                )
            except asyncio.CancelledError:
                for w in live:
                    if not w.future.done():
                        w.future.cancel()
                raise
            finally:
                self._running = 0
            self.stats.busy_s += time.perf_counter() - start
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(live))
            for w, result in zip(live, results, strict=True):
                if w.future.done():
                    continue
                if isinstance(result, BaseException):
                    w.future.set_exception(result)
                else:
                    w.future.set_result(result)


def _call(process: Process, items: list[Any]) -> list[Any]:
    """Run ``process``; an exception fails every item of the batch, never the collector."""
    try:
        results = list(process(items))
    except Exception as exc:  # noqa: BLE001 - handed to each waiting request
        return [exc] * len(items)
    if len(results) != len(items):
        err = RuntimeError(f"batch process returned {len(results)} results for {len(items)}")
        return [err] * len(items)
    return results
