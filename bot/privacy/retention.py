"""Retention: conversations idle longer than `[privacy] retain_days` are purged, a small batch at a time.

"Idle" is the conversation's last activity (`updated_at`: any message in or out, any handoff move).
A conversation is never purged while a person handles it or waits for one, while a message of it
is still unanswered, or while a reply or an agents' notification is still queued: that data is in use.
Each batch is one transaction on the store's writer, so the event loop and other writes wait at
most one batch.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta


from bot.errors import InvalidRequestError
from bot.privacy import audit
from bot.privacy.erase import LIVE_STATES, delete_conversations
from bot.store.engine import Database

BATCH = 200
_AGE = re.compile(r"^\s*(\d+)\s*([dwh]?)\s*$")
_UNITS = {"": "days", "d": "days", "w": "weeks", "h": "hours"}


def parse_age(text: str) -> timedelta:
    """'90d', '12w', '36h' or a bare number of days."""
    found = _AGE.match(text)
    if not found or int(found.group(1)) < 1:
        raise InvalidRequestError(f"'{text}' is not an age like 90d, 12w or 36h (at least 1)", field="older_than")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def _candidates(db: Database, cutoff: str, limit: int) -> list[str]:
    marks = ",".join("?" * len(LIVE_STATES))
    rows = db.execute(
        f"""
        SELECT key FROM conversations c
        WHERE julianday(c.updated_at) < julianday(?) AND c.handoff_state NOT IN ({marks})
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_key = c.key
                          AND ((m.direction = 'in' AND m.status = 'pending')
                               OR (m.direction = 'out' AND m.delivery = 'pending')))
          AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.conversation_key = c.key AND n.status = 'pending')
        ORDER BY c.updated_at LIMIT ?
        """,
        [cutoff, *LIVE_STATES, limit],
    ).fetchall()
    return [row[0] for row in rows]


def purge_batch(db: Database, cutoff: datetime, actor: str, limit: int = BATCH) -> dict[str, int]:
    """In the writer's transaction: delete up to `limit` idle conversations and audit the batch."""
    keys = _candidates(db, cutoff.isoformat(), limit)
    if not keys:
        return {"conversations": 0}
    counts = delete_conversations(db, keys)
    audit.record(db, actor=actor, action="purge", target_kind=audit.OLDER_THAN, channel=None,
                 target_ref=cutoff.isoformat(timespec="seconds"), counts=counts)
    return counts


def count_candidates(db: Database, cutoff: datetime) -> int:
    """How many conversations a purge at `cutoff` would delete now (for --dry-run)."""
    return len(_candidates(db, cutoff.isoformat(), 1_000_000_000))
