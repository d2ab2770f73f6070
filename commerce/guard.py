"""Every order source behind the same care: a short cache, a hard timeout and a circuit breaker.

Lookups happen on demand while a shopper waits, so a slow or failing shop system must cost
one timeout, not one per message: after `failures_to_open` failures in a row the breaker opens
and lookups fail at once for `open_seconds`, then one trial lookup decides whether it closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from commerce.orders import Order, OrderSource, ShopUnavailable, normalise_number

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardPolicy:
    cache_seconds: float = 60.0  # an order changes slowly; a shopper asking twice in a minute sees the same
    timeout_seconds: float = 6.0
    failures_to_open: int = 3
    open_seconds: float = 30.0


class GuardedOrders:
    """An OrderSource that caches, times out and stops calling a shop system that keeps failing."""

    def __init__(self, source: OrderSource, policy: GuardPolicy = GuardPolicy(),
                 clock: Callable[[], float] = time.monotonic):
        self.name = source.name
        self._source = source
        self._policy = policy
        self._clock = clock
        self._cache: dict[str, tuple[float, Order | None]] = {}
        self._failures = 0
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._failures >= self._policy.failures_to_open and self._clock() < self._open_until

    async def find(self, number: str) -> Order | None:
        key = normalise_number(number)
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None and now - cached[0] < self._policy.cache_seconds:
            return cached[1]
        if self.is_open:
            raise ShopUnavailable(self.name, "not called: it failed repeatedly just now (circuit open)")
        try:
            order = await asyncio.wait_for(self._source.find(number), self._policy.timeout_seconds)
        except asyncio.TimeoutError:
            self._failed(f"no answer within {self._policy.timeout_seconds:g} s")
            raise ShopUnavailable(self.name, f"no answer within {self._policy.timeout_seconds:g} s") from None
        except ShopUnavailable as exc:
            self._failed(exc.reason)
            raise
        self._failures = 0
        self._cache[key] = (self._clock(), order)
        if len(self._cache) > 10_000:  # bounded: drop the oldest half
            for old in sorted(self._cache, key=lambda k: self._cache[k][0])[:5_000]:
                del self._cache[old]
        return order

    def _failed(self, reason: str) -> None:
        self._failures += 1
        if self._failures >= self._policy.failures_to_open:
            self._open_until = self._clock() + self._policy.open_seconds
            log.warning("orders.circuit_open source=%s failures=%d reason=%s; not calling it for %g s",
                        self.name, self._failures, reason, self._policy.open_seconds)
        else:
            log.info("orders.lookup_failed source=%s failures=%d reason=%s", self.name, self._failures, reason)

    async def close(self) -> None:
        await self._source.close()
