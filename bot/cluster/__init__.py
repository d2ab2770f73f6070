"""Several kefu workers on one shared database (PostgreSQL): who works on what, and how they hear of it.

- `leases.py`: time-limited leases a worker takes on a conversation (its turns, in order), a channel's
  polling (one leader), and renews while it lives; a dead worker's leases lapse and others take over;
- `claims.py`: how long a worker's claim on an outbox row (a reply to push, an agents' notification) lasts.
"""

from bot.cluster.leases import LEASE_SECONDS, Leases, new_worker_id

__all__ = ["LEASE_SECONDS", "Leases", "new_worker_id"]
