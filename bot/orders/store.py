"""Order lookups on the conversation store: the record of each lookup and the conversation's order in progress.

The record is also the rate limit: failed proofs are counted per conversation and per order
number from it, so the limit holds across restarts and across workers sharing the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


from bot.messages import utc_now
from bot.store import Store, verified_orders
from bot.store.engine import Database

FAILED_PROOFS = ("no_match", "not_found")  # both read "no match" to the shopper


@dataclass(frozen=True)
class OrderSession:
    """The order a conversation is about: asked for proof of, or shown after proof."""

    order_number: str | None = None
    intent: str | None = None
    verified_number: str | None = None
    verified_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Lookup:
    conversation_key: str
    message_id: int
    order_number: str | None
    source: str
    result: str
    proof: str | None = None
    summary: dict[str, Any] | None = None


class OrderLookups:
    def __init__(self, store: Store):
        self._store = store

    async def previous_question(self, conversation_key: str, message_id: int) -> str | None:
        """The shopper's message before this one: the question a message giving the proof answers."""
        return await self._store.previous_shopper_text(conversation_key, message_id)

    async def session(self, conversation_key: str) -> OrderSession:
        return await self._store.read(_session, conversation_key)

    async def save_session(self, conversation_key: str, session: OrderSession) -> None:
        await self._store.write(_save_session, conversation_key, session)

    async def record(self, lookup: Lookup) -> None:
        await self._store.write(_record, lookup)

    async def failed_proofs(self, conversation_key: str, order_number: str | None, since: timedelta
                            ) -> tuple[int, int]:
        """Failed proofs in the window: in this conversation, and for this order number from any conversation."""
        return await self._store.read(_failed_proofs, conversation_key, order_number, utc_now() - since)

    async def verified_orders(self, conversation_key: str) -> list[dict[str, Any]]:
        """The orders verified in this conversation, latest lookup of each, for the agents."""
        return await self._store.read(verified_orders, conversation_key)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _session(db: Database, conversation_key: str) -> OrderSession:
    row = db.execute("SELECT * FROM order_sessions WHERE conversation_key = ?", [conversation_key]).fetchone()
    if row is None:
        return OrderSession()
    return OrderSession(order_number=row["order_number"], intent=row["intent"],
                        verified_number=row["verified_number"], verified_at=_when(row["verified_at"]),
                        updated_at=_when(row["updated_at"]))


def _save_session(db: Database, conversation_key: str, session: OrderSession) -> None:
    db.execute(
        "INSERT INTO order_sessions (conversation_key, order_number, intent, verified_number, verified_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conversation_key) DO UPDATE SET order_number = excluded.order_number, "
        "intent = excluded.intent, verified_number = excluded.verified_number, verified_at = excluded.verified_at, "
        "updated_at = excluded.updated_at",
        [conversation_key, session.order_number, session.intent, session.verified_number,
         session.verified_at.isoformat() if session.verified_at else None, utc_now().isoformat()],
    )


def _record(db: Database, lookup: Lookup) -> None:
    db.execute(
        "INSERT INTO order_lookups (at, conversation_key, message_id, order_number, source, result, proof, summary) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [utc_now().isoformat(), lookup.conversation_key, lookup.message_id, lookup.order_number, lookup.source,
         lookup.result, lookup.proof, json.dumps(lookup.summary, ensure_ascii=False) if lookup.summary else None],
    )


def _failed_proofs(db: Database, conversation_key: str, order_number: str | None,
                   since: datetime) -> tuple[int, int]:
    marks = ", ".join("?" for _ in FAILED_PROOFS)
    in_conversation = db.execute(
        f"SELECT COUNT(*) FROM order_lookups WHERE conversation_key = ? AND result IN ({marks}) AND at >= ?",
        [conversation_key, *FAILED_PROOFS, since.isoformat()]).fetchone()[0]
    for_order = 0
    if order_number:
        for_order = db.execute(
            f"SELECT COUNT(*) FROM order_lookups WHERE order_number = ? AND result IN ({marks}) AND at >= ?",
            [order_number, *FAILED_PROOFS, since.isoformat()]).fetchone()[0]
    return in_conversation, for_order
