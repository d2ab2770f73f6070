"""Micro-batching: requests arriving together are processed in one blocking call.

Encoding 32 questions in one call costs little more than encoding one, and one
thread working through a batch beats many threads fighting over two cores and
the GIL, so concurrent turns share a batch, run off the event loop. The batching
is work-conserving: while fewer than `parallel` batches run, a request goes at once
(after `window_ms`, 0 by default, for company: with no window, the requests of one step
of the event loop go together, handed to the thread pool at its next step); requests
arriving while every worker is busy gather and go the moment one is free. A lone shopper
waits for no timer; under load the batches grow by themselves. With several workers the gathered requests are
shared out (a worker takes 1/`parallel` of them, at most `max_batch`), so one worker does
not take a wave of 60 while the other takes the one straggler: the workers then stay
busy in turn instead of in lockstep, and the turns behind a batch overlap with the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from bot.concurrency import start_blocking

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """`process` gets a list of items and returns one result per item, in order."""

    def __init__(self, process: Callable[[Sequence[T]], Sequence[R]], *, window_ms: float, max_batch: int,
                 parallel: int = 1):
        self._process = process
        self._window = window_ms / 1000.0
        self._max_batch = max_batch
        self._parallel = parallel
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.Handle | None = None  # the pending flush
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0  # batches being processed, at most `parallel`
        self.batches = 0  # how many blocking calls were made (for benchmarks)
        self.items = 0

    async def submit(self, item: T) -> R:
        return await self.start(item)

    def start(self, item: T) -> asyncio.Future[R]:
        """Queue `item`; the future of its result. With no window and a worker free, its batch is in the
        thread pool once the caller yields to the loop once, ahead of blocking work it starts after that."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._running >= self._parallel:
            return future  # goes with the next batch, the moment a running one ends
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_soon(self._flush) if self._window <= 0 else loop.call_later(self._window,
                                                                                                self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # A share for each worker, busy ones included: they are free again soon.
        share = min(self._max_batch, -(-len(self._pending) // self._parallel))
        while self._pending and self._running < self._parallel:
            batch, self._pending = self._pending[:share], self._pending[share:]
            self._running += 1
            self.batches += 1
            self.items += len(batch)
            try:
                job = start_blocking(self._process, [item for item, _ in batch])
            except RuntimeError as exc:  # the loop's thread pool is shut down: the loop is closing
                self._running -= 1
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            task = asyncio.create_task(self._finish(batch, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, batch: list[tuple[T, asyncio.Future[R]]], job: asyncio.Future[Sequence[R]]) -> None:
        try:
            results = await job
        except Exception as exc:  # every waiter gets the error, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._running -= 1
            self._flush()  # what gathered while this batch ran
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)
