"""How long a worker's claim on an outbox row lasts (replies to push, notifications for agents).

A pass claims what it will send (bot/delivery.py, bot/handoff/notifier.py) and sends while enough
of the claim is left for a send's own timeout; a worker that dies mid-pass leaves its claims to
lapse, and another worker's next pass (every few seconds) sends what it left.
"""

from __future__ import annotations

CLAIM_SECONDS = 60.0
CLAIM_MARGIN_SECONDS = 15.0  # a send starts only with this much of the claim left
CLUSTER_POLL_SECONDS = 5.0  # each worker looks for unclaimed rows this often, whoever stored them
