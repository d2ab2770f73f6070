"""Sliding-window rate limits for the widget's API, per visitor and per client address."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_KEYS = 100_000  # beyond this, keys with no recent use are dropped first


@dataclass
class WindowLimiter:
    """At most `limit` events per key within `window_seconds`."""

    limit: int
    window_seconds: float
    clock: Callable[[], float] = time.monotonic
    _events: dict[str, deque[float]] = field(default_factory=dict)

    def take(self, key: str) -> float:
        """Count one event for `key` and return 0, or the seconds to wait when the limit is reached
        (the event is then not counted)."""
        now = self.clock()
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= MAX_KEYS:
                self._forget_idle(now)
            events = self._events[key] = deque()
        while events and now - events[0] >= self.window_seconds:
            events.popleft()
        if len(events) >= self.limit:
            return max(0.001, events[0] + self.window_seconds - now)
        events.append(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, events in self._events.items() if not events or now - events[-1] >= self.window_seconds]:
            del self._events[key]
