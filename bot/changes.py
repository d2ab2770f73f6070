"""A version counter that live views wait on instead of polling the database.

The store bumps it after every committed write; the web console's event stream
wakes up, re-reads what it shows and sends only what changed. One writer, any
number of waiters, all on the event loop.
"""

from __future__ import annotations

import asyncio


class ChangeFeed:
    def __init__(self) -> None:
        self._version = 0
        self._changed = asyncio.Event()

    @property
    def version(self) -> int:
        return self._version

    def bump(self) -> None:
        """Something was committed: wake every waiter (each gets a fresh event for the next change)."""
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, after: int, timeout: float) -> int:
        """The version once it passes `after`, or the current one when `timeout` seconds pass first."""
        if self._version > after:
            return self._version
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            pass
        return self._version
