"""How long a worker's claim on outbox rows lasts (replies to push, notifications for agents).

A pass claims what it will send (bot/delivery.py, bot/handoff/notifier.py) and sends while enough
of the claim is left for a send's own timeout; a worker that dies mid-pass leaves its claims to
lapse, and another worker's next pass (every few seconds) sends what it left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.messages import utc_now

CLAIM_SECONDS = 60.0
CLAIM_MARGIN_SECONDS = 15.0  # a send starts only with this much of the claim left
CLUSTER_POLL_SECONDS = 5.0  # each worker looks for unclaimed rows this often, whoever stored them


@dataclass(frozen=True)
class ClaimWindow:
    """One pass's claims: taken at `now`, this worker's until `until`."""

    now: float = field(default_factory=time.time)

    @property
    def until(self) -> float:
        return self.now + CLAIM_SECONDS

    def running_out(self) -> bool:
        """Too little is left for another send: the pass ends, and the next one claims afresh."""
        return time.time() > self.until - CLAIM_MARGIN_SECONDS

    @staticmethod
    def next_look() -> datetime:
        return utc_now() + timedelta(seconds=CLUSTER_POLL_SECONDS)
