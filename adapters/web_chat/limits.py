"""Sliding-window rate limits for the widget's API, per visitor and per client address."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_KEYS = 100_000  # beyond this, the least recently used key is forgotten: memory stays bounded


@dataclass
class WindowLimiter:
    """At most `limit` events per key within `window_seconds`.

    Keys are kept in order of last use, so making room for a new key is one step (the oldest goes),
    not a scan of every key: a flood of new keys costs what it brings, however many are kept.
    """

    limit: int
    window_seconds: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = MAX_KEYS
    _events: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def take(self, key: str) -> float:
        """Count one event for `key` and return 0, or the seconds to wait when the limit is reached
        (the event is then not counted)."""
        now = self.clock()
        events = self._events.get(key)
        if events is None:
            while len(self._events) >= self.max_keys:
                self._events.popitem(last=False)
            events = self._events[key] = deque()
        else:
            self._events.move_to_end(key)
        while events and now - events[0] >= self.window_seconds:
            events.popleft()
        if len(events) >= self.limit:
            return max(0.001, events[0] + self.window_seconds - now)
        events.append(now)
        return 0.0

    def __len__(self) -> int:
        return len(self._events)
