"""Admission control: a bound on messages stored but not yet answered in this process.

Under a flood every extra message only makes all the others wait longer, until turns
run into their timeout and clients see 503s for work kefu did half. So beyond
`[pipeline] max_queued_messages` a *new* message is refused before it is stored
(`OverloadedError`, a 429 with Retry-After for HTTP clients): nothing half-done is
left, and the client backs off and sends it again.

What is counted: messages admitted through `submit`/`accept` in this process, from the
moment they are admitted (before the store write, so concurrent arrivals cannot all
slip past the bound) until their turn ends, answered or failed. Not counted:
- redeliveries of a stored message: they cost no new turn (or retry one that failed),
  and refusing them could keep a client's retry loop from ever learning its answer;
- the backlog a crash left, answered by restart recovery: it is finite and only
  shrinks, while counting it could refuse every live shopper for as long as it lasts.

`retry_after` is an estimate from recent throughput: how long the turns queued now
take to finish at the rate turns finished in the last minute (at least 1 second).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from bot.errors import OverloadedError

THROUGHPUT_WINDOW_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 300
RECENT_TURNS = 256


class Admission:
    """Counts queued messages per process; `admit()` refuses a new one beyond `limit`."""

    def __init__(self, limit: int, *, fallback_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self._fallback = fallback_seconds  # the retry hint before any turn has finished (the turn timeout)
        self._clock = clock
        self._reserved = 0  # admitted, not stored yet
        self._queued: set[int] = set()  # stored, turn not ended yet
        self._finished: deque[float] = deque(maxlen=RECENT_TURNS)

    @property
    def queued(self) -> int:
        return self._reserved + len(self._queued)

    def full(self) -> bool:
        return self.queued >= self.limit

    def admit(self) -> None:
        """Reserve a place for a new message, or raise OverloadedError (nothing is stored then)."""
        if self.full():
            raise OverloadedError(f"kefu has {self.queued} messages waiting for an answer (the limit is "
                                  f"{self.limit}); send this one again later", retry_after=self.retry_after())
        self._reserved += 1

    def stored(self, inbound_id: int | None) -> None:
        """The reserved message was written: count it until its turn ends (None: nothing left to answer)."""
        self._reserved = max(0, self._reserved - 1)
        if inbound_id is not None:
            self._queued.add(inbound_id)

    def track(self, inbound_id: int) -> None:
        """A redelivery that put a failed message back in line: counted, though it was not refused."""
        self._queued.add(inbound_id)

    def finished(self, inbound_id: int) -> None:
        """A turn ended (answered, forwarded or failed)."""
        if inbound_id in self._queued:
            self._queued.discard(inbound_id)
            self._finished.append(self._clock())

    def retry_after(self) -> int:
        now = self._clock()
        recent = [at for at in self._finished if now - at <= THROUGHPUT_WINDOW_SECONDS]
        if len(recent) >= 2 and now > recent[0]:
            per_second = (len(recent) - 1) / (now - recent[0])  # falls while nothing finishes (a stall)
            seconds = self.queued / per_second
        else:
            seconds = self._fallback
        return max(1, min(MAX_RETRY_AFTER_SECONDS, math.ceil(seconds)))

