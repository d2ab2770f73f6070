"""One shared read per change for every open event stream.

Each console tab holds an event stream, and every committed change wakes all of
them. Were each stream to re-read the queue, 100 open tabs would cost 100 store
reads per change, on the same reader thread the shoppers' turns use. Instead the
streams share one snapshot per change version: the first stream to ask starts the
read, the others await that same read, and later asks at the same version get the
cached result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class VersionedSnapshot(Generic[Value]):
    """`get()` returns what `read()` returned at the current `version()`, reading at most once per version.

    The version is taken *before* the read starts, so a snapshot is never older than the
    version it is filed under; a change during the read bumps the version and the next
    `get()` reads again.
    """

    def __init__(self, read: Callable[[], Awaitable[Value]], version: Callable[[], int]):
        self._read = read
        self._version = version
        self._cached: tuple[int, Value] | None = None
        self._reading: tuple[int, asyncio.Task[Value]] | None = None

    async def get(self) -> Value:
        version = self._version()
        if self._cached is not None and self._cached[0] == version:
            return self._cached[1]
        if self._reading is None or self._reading[0] != version:
            task = asyncio.create_task(self._read_at(version), name=f"kefu-console-snapshot-{version}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # every waiter may have left
            self._reading = (version, task)
        # Shielded: one stream going away (its tab closed) must not cancel the read the others wait for.
        return await asyncio.shield(self._reading[1])

    async def _read_at(self, version: int) -> Value:
        try:
            value = await self._read()
        finally:
            if self._reading is not None and self._reading[0] == version:
                self._reading = None
        if self._cached is None or self._cached[0] <= version:
            self._cached = (version, value)
        return value
