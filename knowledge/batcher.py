"""Micro-batching of query encodings.

Encoding 32 questions in one call costs little more than encoding one, so turns
that need an embedding within a few milliseconds of each other share one batch,
run off the event loop. Under light load the wait is at most `window_ms`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import numpy as np

from bot.concurrency import run_blocking

log = logging.getLogger(__name__)


class MicroBatcher:
    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], *, window_ms: float, max_batch: int):
        self._encode = encode
        self._window = window_ms / 1000.0
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # how many encode calls were made (for benchmarks)
        self.items = 0

    async def encode(self, text: str) -> np.ndarray:
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            vectors = await run_blocking(self._encode, [text for text, _ in batch])
        except Exception as exc:  # every waiter gets the error, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), vector in zip(batch, vectors):
            if not future.done():
                future.set_result(vector)
