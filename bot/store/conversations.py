"""The conversation store: every message in and out, and what became of each.

The SQL here is written once for both engines (bot/store/sqlite.py, bot/store/postgres.py):
each function takes a database handle and runs inside the one transaction the engine
opened for it, so a crash never leaves a half-written turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.errors import KefuError
from bot.messages import (
    HandoffState,
    Link,
    Message,
    Receipt,
    Reply,
    ReplyKind,
    Role,
    Transcript,
    TranscriptEntry,
    utc_now,
)
from bot.store.engine import POSTGRESQL, Database, Engine, Row, dialect_of, engine_for
from bot.store.vectors import StoredVector

log = logging.getLogger(__name__)

PENDING = "pending"
ANSWERED = "answered"
FORWARDED = "forwarded"  # inbound while a person handles the conversation: stored and passed to agents
FAILED = "failed"
SENT = "sent"
HELD = "held"  # nothing can go until the shopper writes again (WhatsApp after 24 hours, without a template)
SETTLED = (ANSWERED, FORWARDED)


@dataclass(frozen=True)
class StoredInbound:
    """An inbound message as stored, the unit a turn works on."""

    id: int
    conversation_key: str
    channel: str
    conversation: str
    user_id: str
    text: str
    language_hint: str | None
    external_id: str | None
    role: Role
    created_at: str
    media: str | None = None
    customer_id: str | None = None  # a logged-in shopper's id in the shop, as the channel passed it
    customer_hash: str | None = None  # the shop's HMAC-SHA256 of it (checked in bot/orders, never trusted unchecked)


@dataclass(frozen=True)
class InboundRecord:
    """The result of recording an inbound message (new or redelivered)."""

    message: StoredInbound
    duplicate: bool
    reply: Reply | None  # set when a duplicate was already answered
    settled: bool = False  # a duplicate that was answered or forwarded already: nothing left to do
    state: HandoffState = HandoffState.BOT


@dataclass(frozen=True)
class ConversationState:
    key: str
    channel: str
    conversation: str
    user_id: str
    language: str | None
    language_locked: bool = False  # chosen by the shopper, not detected
    handoff: HandoffState = HandoffState.BOT
    agent: str | None = None
    state_since: str | None = None
    context_start_id: int = 0  # messages up to this id belong to an earlier handoff
    mood: float | None = None  # rolling mood of the shopper since context_start_id
    display_name: str | None = None


@dataclass(frozen=True)
class PendingDelivery:
    reply: Reply
    attempts: int
    next_attempt_at: str | None


class Store:
    """Async front over an engine; `open()` before use, `close()` is idempotent."""

    def __init__(self, location: Path | str, *, on_commit: Callable[[], None] | None = None, pool_size: int = 8):
        self.engine: Engine = engine_for(location, pool_size=pool_size)
        self.dialect = self.engine.dialect
        self._on_commit = on_commit  # told after every committed write: live views refresh (the web console)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()

    async def write(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run `func(db, *args)` in one transaction (for companion modules)."""
        return await self._write(func, *args)

    async def read(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run `func(db, *args)` for reading only."""
        return await self._read(func, *args)

    async def maintain(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run `func(db, *args)` outside a transaction.

        For what SQLite refuses inside one: checkpoints, VACUUM, connection PRAGMAs (bot/privacy).
        """
        return await self.engine.maintain(func, *args)

    async def _write(self, func: Callable[..., Any], *args: Any) -> Any:
        result = await self.engine.write(func, *args)
        if self._on_commit is not None:
            self._on_commit()
        return result

    async def _read(self, func: Callable[..., Any], *args: Any) -> Any:
        return await self.engine.read(func, *args)

    # -- inbound ---------------------------------------------------------------

    async def record_inbound(self, message: Message) -> InboundRecord:
        """Commit an inbound message before anything else happens to it.

        A redelivery (same conversation and external id) is not stored twice: the
        first copy is returned with its reply if it has one. A redelivered message
        whose processing failed is set back to pending so it is tried again.
        """
        return await self._write(_record_inbound, message)

    async def is_redelivery(self, message: Message) -> bool:
        """Whether `message` (same conversation and external id) is stored already."""
        if message.external_id is None:
            return False
        return await self._read(_has_inbound, message.conversation_key, message.external_id)

    async def pending_inbound(self, conversation_key: str) -> list[StoredInbound]:
        """Unanswered inbound messages of a conversation, oldest first."""
        return await self._read(_pending_inbound, conversation_key)

    async def conversations_with_pending(self) -> list[str]:
        return await self._read(_conversations_with_pending)

    async def conversations_unleased(self, lease_prefix: str, now: float) -> list[str]:
        """Conversations with pending messages that no worker holds a live lease on (bot/dispatcher)."""
        return await self._read(_conversations_unleased, lease_prefix, now)

    async def inbound_outcome(self, inbound_id: int) -> tuple[str, Reply | None, str | None, HandoffState]:
        """(status, reply if answered, error if failed, the conversation's state) of a stored inbound message."""
        return await self._read(_inbound_outcome, inbound_id)

    async def previous_shopper_text(self, conversation_key: str, before_id: int) -> str | None:
        """The shopper's message before `before_id` in the conversation, for follow-up questions."""
        return await self._read(_previous_shopper_text, conversation_key, before_id)

    async def recent_turns(self, conversation_key: str, before_id: int, limit: int) -> list[tuple[str, str]]:
        """(role, text) of the shopper's messages and the bot's replies before `before_id` since the last
        handoff ended, oldest first: what a generating responder may see of the conversation."""
        return await self._read(_recent_turns, conversation_key, before_id, limit)

    async def last_shopper_text(self, conversation_key: str) -> str | None:
        """The shopper's latest message, handoffs included (for agents' queues)."""
        return await self._read(_last_shopper_text, conversation_key)

    async def mark_failed(self, inbound_id: int, error: str) -> None:
        await self._write(_mark_failed, inbound_id, error)

    async def requeue_failed(self) -> tuple[int, int]:
        """Failed inbound messages back to pending where nothing later in the conversation is settled.

        Returns (requeued, left failed): one overtaken by a later answered message stays failed,
        since answering it now would put it behind that message.
        """
        return await self._write(_requeue_failed)

    # -- outbound --------------------------------------------------------------

    async def record_reply(
        self,
        inbound_id: int,
        reply: Reply,
        *,
        latency_ms: float,
        deliver: bool,
        meta: dict[str, Any],
        vector: StoredVector | None = None,
    ) -> Reply:
        """Store the reply and mark its inbound message answered (keeping its `vector`), atomically."""
        return await self._write(answer_inbound, inbound_id, reply, latency_ms, deliver, meta, vector)

    async def answer_failed_turn(self, inbound_id: int, reply: Reply, *, latency_ms: float, deliver: bool,
                                 meta: dict[str, Any]) -> tuple[Reply | None, HandoffState]:
        """Store `reply` for a turn that failed, unless the turn's own write won the race.

        A timed-out turn's last write may still commit after the timeout: then its reply
        (or its forwarding to an agent: None) stands, and nothing is stored twice.
        """
        return await self._write(_answer_failed_turn, inbound_id, reply, latency_ms, deliver, meta)

    async def set_conversation_language(self, conversation_key: str, language: str, *, locked: bool = False) -> None:
        await self._write(_set_language, conversation_key, language, locked)

    async def start_over(self, conversation_key: str, message_id: int) -> None:
        """The shopper's /reset: earlier messages no longer count as context, mood or language choice."""
        await self._write(_start_over, conversation_key, message_id)

    async def conversation(self, conversation_key: str) -> ConversationState | None:
        return await self._read(_conversation, conversation_key)

    async def transcript(self, conversation_key: str) -> Transcript | None:
        return await self._read(_transcript, conversation_key)

    # -- push deliveries -------------------------------------------------------

    async def pending_deliveries(self, channel: str) -> list[PendingDelivery]:
        return await self._read(_pending_deliveries, channel)

    async def claim_deliveries(self, channel: str, worker: str, now: float, until: float) -> list[PendingDelivery]:
        """With several workers: the channel's pending replies this worker may send until `until`, oldest first.

        A conversation's replies are claimed together, and never while another worker's claim on one of
        them is live, so they still go out in order and each is sent by one worker (SKIP LOCKED on
        PostgreSQL: claimers pass over each other's rows instead of queueing behind them).
        """
        return await self._write(_claim_deliveries, channel, worker, now, until)

    async def mark_delivered(self, message_id: int) -> None:
        await self._write(_mark_delivered, message_id)

    async def mark_delivery_failed(self, message_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt; `retry_at=None` gives the delivery up."""
        await self._write(_mark_delivery_failed, message_id, error, retry_at)

    async def mark_delivery_held(self, message_id: int, reason: str) -> None:
        """The channel can send nothing to this shopper until they write again: kept, not retried."""
        await self._write(_mark_delivery_held, message_id, reason)

    async def resend_sent_reply(self, channel: str, channel_message_id: str, reason: str, *, hold: bool) -> bool:
        """The app refused a reply it had taken (WhatsApp's late failed receipt): pending again, or, with
        `hold`, held until the shopper writes again (pending at once when they already have)."""
        return await self._write(_resend_sent_reply, channel, channel_message_id, reason, hold)

    async def release_held_deliveries(self, conversation_key: str) -> int:
        """The shopper wrote again: held replies become pending, in their order, ahead of the new answer."""
        return await self._write(_release_held_deliveries, conversation_key)

    async def record_channel_message_id(self, message_id: int, channel_message_id: str) -> None:
        """The chat app's id for a reply it took ("wamid…"): its receipts name that id."""
        await self._write(_record_channel_message_id, message_id, channel_message_id)

    async def record_parts_sent(self, message_id: int, parts: int) -> None:
        """The first `parts` messages of a long reply went out; written before the next is sent."""
        await asyncio.shield(self._write(_record_parts_sent, message_id, parts))

    async def record_receipt(self, channel: str, channel_message_id: str, receipt: Receipt) -> bool:
        """A receipt for a sent reply (False: no reply of this channel has that id). A receipt never moves a
        reply back: "read" after "delivered" counts, "delivered" after "read" (they arrive in any order) not."""
        return await self._write(_record_receipt, channel, channel_message_id, receipt)

    async def last_shopper_message_at(self, conversation_key: str) -> datetime | None:
        """When the shopper last wrote: chat apps limit what may be sent long after (WhatsApp's 24 hours)."""
        return await self._read(_last_shopper_message_at, conversation_key)

    async def stats(self) -> dict[str, int]:
        return await self._read(_stats)

    async def shared_secret(self, name: str) -> str:
        """A random secret kept in the database: made by the first worker that asks, the same for all."""
        return await self._write(_shared_secret, name, secrets.token_hex(32))


# -- SQL, run on the store's threads -------------------------------------------


def _now() -> str:
    return utc_now().isoformat()


def _record_inbound(db: Database, message: Message) -> InboundRecord:
    now = _now()
    db.execute(
        """
        INSERT INTO conversations (key, channel, conversation, user_id, display_name, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(key) DO UPDATE SET
            updated_at = excluded.updated_at,
            display_name = COALESCE(excluded.display_name, conversations.display_name)
        """,
        [message.conversation_key, message.channel, message.conversation, message.user_id,
         message.display_name, now, now],
    )
    if message.language_choice:
        db.execute("UPDATE conversations SET language = ?, language_locked = 1 WHERE key = ?",
                   [message.language_choice, message.conversation_key])
    if message.external_id is not None:
        existing = _find_inbound(db, message.conversation_key, message.external_id)
        if existing is not None:
            stored = _inbound_from_row(existing)
            if existing["status"] == FAILED:
                db.execute("UPDATE messages SET status = ?, error = NULL WHERE id = ?", [PENDING, stored.id])
            return InboundRecord(message=stored, duplicate=True, reply=first_reply(db, stored.id),
                                 settled=existing["status"] in SETTLED,
                                 state=_state_of(db, message.conversation_key))
    cursor = db.execute(
        """
        INSERT INTO messages (conversation_key, direction, role, channel, conversation, user_id,
                              external_id, text, language_hint, status, created_at, media, customer_id,
                              customer_hash)
        VALUES (?, 'in', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        RETURNING id
        """,
        [message.conversation_key, message.role.value, message.channel, message.conversation,
         message.user_id, message.external_id, message.text, message.language_hint, PENDING,
         message.timestamp.isoformat(), message.media, message.customer_id, message.customer_hash],
    )
    row = db.execute("SELECT * FROM messages WHERE id = ?", [cursor.fetchone()[0]]).fetchone()
    return InboundRecord(message=_inbound_from_row(row), duplicate=False, reply=None,
                         state=_state_of(db, message.conversation_key))


def _find_inbound(db: Database, conversation_key: str, external_id: str) -> Row | None:
    """The stored inbound message a channel identified by its own id: what makes redelivery idempotent."""
    return db.execute(
        "SELECT * FROM messages WHERE direction = 'in' AND conversation_key = ? AND external_id = ?",
        [conversation_key, external_id],
    ).fetchone()


def _has_inbound(db: Database, conversation_key: str, external_id: str) -> bool:
    return _find_inbound(db, conversation_key, external_id) is not None


def _inbound_from_row(row: Row) -> StoredInbound:
    return StoredInbound(
        id=row["id"],
        conversation_key=row["conversation_key"],
        channel=row["channel"],
        conversation=row["conversation"],
        user_id=row["user_id"],
        text=row["text"],
        language_hint=row["language_hint"],
        external_id=row["external_id"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        media=row["media"],
        customer_id=row["customer_id"],
        customer_hash=row["customer_hash"],
    )


def reply_from_row(row: Row) -> Reply:
    return Reply(
        channel=row["channel"],
        conversation=row["conversation"],
        user_id=row["user_id"],
        text=row["text"],
        language=row["language"] or "",
        kind=ReplyKind(row["kind"]),
        quick_replies=tuple(json.loads(row["quick_replies"] or "[]")),
        faq_ids=tuple(json.loads(row["faq_ids"] or "[]")),
        confidence=row["confidence"],
        why=row["why"] or "",
        message_id=row["id"],
        in_reply_to=row["reply_to"],
        created_at=datetime.fromisoformat(row["created_at"]),
        links=tuple(Link(item["title"], item["url"]) for item in json.loads(row["links"] or "[]")),
        parts_sent=row["delivery_parts"] or 0,
    )


def first_reply(db: Database, inbound_id: int) -> Reply | None:
    """The reply stored for an inbound message, if any (also used inside handoff transactions)."""
    row = db.execute(
        "SELECT * FROM messages WHERE direction = 'out' AND reply_to = ? ORDER BY id LIMIT 1", [inbound_id]
    ).fetchone()
    return reply_from_row(row) if row is not None else None


def _pending_inbound(db: Database, conversation_key: str) -> list[StoredInbound]:
    rows = db.execute(
        "SELECT * FROM messages WHERE direction = 'in' AND status = ? AND conversation_key = ? ORDER BY id",
        [PENDING, conversation_key],
    ).fetchall()
    return [_inbound_from_row(row) for row in rows]


def _conversations_with_pending(db: Database) -> list[str]:
    rows = db.execute(
        "SELECT conversation_key, MIN(id) AS first FROM messages WHERE direction = 'in' AND status = ? "
        "GROUP BY conversation_key ORDER BY first",
        [PENDING],
    ).fetchall()
    return [row["conversation_key"] for row in rows]


def _conversations_unleased(db: Database, lease_prefix: str, now: float) -> list[str]:
    rows = db.execute(
        "SELECT m.conversation_key, MIN(m.id) AS first FROM messages m WHERE m.direction = 'in' AND m.status = ? "
        "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.name = ? || m.conversation_key AND l.expires_at >= ?) "
        "GROUP BY m.conversation_key ORDER BY first",
        [PENDING, lease_prefix, now],
    ).fetchall()
    return [row["conversation_key"] for row in rows]


def _state_of(db: Database, conversation_key: str) -> HandoffState:
    row = db.execute("SELECT handoff_state FROM conversations WHERE key = ?", [conversation_key]).fetchone()
    return HandoffState(row["handoff_state"]) if row else HandoffState.BOT


def _inbound_outcome(
    db: Database, inbound_id: int
) -> tuple[str, Reply | None, str | None, HandoffState]:
    row = db.execute("SELECT status, error, conversation_key FROM messages WHERE id = ?", [inbound_id]).fetchone()
    return row["status"], first_reply(db, inbound_id), row["error"], _state_of(db, row["conversation_key"])


def _previous_shopper_text(db: Database, conversation_key: str, before_id: int) -> str | None:
    row = db.execute(
        "SELECT text FROM messages WHERE conversation_key = ? AND direction = 'in' AND role = ? AND id < ? "
        "AND id > (SELECT context_start_id FROM conversations WHERE key = ?) ORDER BY id DESC LIMIT 1",
        [conversation_key, Role.SHOPPER.value, before_id, conversation_key],
    ).fetchone()
    return row["text"] if row else None


def _recent_turns(db: Database, conversation_key: str, before_id: int, limit: int
                  ) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT role, text FROM messages WHERE conversation_key = ? AND id < ? "
        "AND id > (SELECT context_start_id FROM conversations WHERE key = ?) "
        "AND ((direction = 'in' AND role = 'shopper') OR (direction = 'out' AND kind IN ('answer', 'not_sure', "
        "'no_match'))) ORDER BY id DESC LIMIT ?",
        [conversation_key, before_id, conversation_key, limit],
    ).fetchall()
    return [(row["role"], row["text"]) for row in reversed(rows)]


def _last_shopper_text(db: Database, conversation_key: str) -> str | None:
    row = db.execute(
        "SELECT text FROM messages WHERE conversation_key = ? AND direction = 'in' AND role = ? ORDER BY id DESC LIMIT 1",
        [conversation_key, Role.SHOPPER.value],
    ).fetchone()
    return row["text"] if row else None


def _mark_failed(db: Database, inbound_id: int, error: str) -> None:
    db.execute("UPDATE messages SET status = ?, error = ? WHERE id = ?", [FAILED, error[:2000], inbound_id])


def _requeue_failed(db: Database) -> tuple[int, int]:
    overtaken = "EXISTS (SELECT 1 FROM messages later WHERE later.direction = 'in' " \
                "AND later.conversation_key = messages.conversation_key AND later.id > messages.id " \
                "AND later.status IN (?, ?))"
    requeued = db.execute(
        f"UPDATE messages SET status = ?, error = NULL WHERE direction = 'in' AND status = ? AND NOT {overtaken}",
        [PENDING, FAILED, *SETTLED],
    ).rowcount
    left = db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in' AND status = ?", [FAILED]).fetchone()[0]
    return requeued, left


def _answer_failed_turn(db: Database, inbound_id: int, reply: Reply, latency_ms: float,
                        deliver: bool, meta: dict[str, Any]) -> tuple[Reply | None, HandoffState]:
    row = db.execute("SELECT status, conversation_key FROM messages WHERE id = ?", [inbound_id]).fetchone()
    if row is None:
        raise KefuError(f"inbound message {inbound_id} does not exist")
    state = _state_of(db, row["conversation_key"])
    if row["status"] == FORWARDED:
        return None, state
    if row["status"] == ANSWERED:
        return first_reply(db, inbound_id), state
    return answer_inbound(db, inbound_id, reply, latency_ms, deliver, meta), state


def answer_inbound(  # also the last step of a handoff transaction (bot.handoff.store)
    db: Database,
    inbound_id: int,
    reply: Reply,
    latency_ms: float,
    deliver: bool,
    meta: dict[str, Any],
    vector: StoredVector | None = None,
) -> Reply:
    status = db.execute("SELECT status FROM messages WHERE id = ?", [inbound_id]).fetchone()
    if status is None:
        raise KefuError(f"inbound message {inbound_id} does not exist")
    if status["status"] == ANSWERED:
        # Never answer twice: hand back the reply that won.
        return first_reply(db, inbound_id)
    stored = insert_outbound(db, reply, reply_to=inbound_id, latency_ms=latency_ms, deliver=deliver, meta=meta)
    db.execute(
        "UPDATE messages SET status = ?, language = COALESCE(language, ?), vector = ?, vector_encoder = ? "
        "WHERE id = ?",
        [ANSWERED, reply.language, vector.to_blob() if vector else None, vector.encoder if vector else None,
         inbound_id],
    )
    return stored


def insert_outbound(
    db: Database,
    reply: Reply,
    *,
    reply_to: int | None,
    latency_ms: float | None,
    deliver: bool,
    meta: dict[str, Any],
) -> Reply:
    """Store one outbound message (bot, agent or notice), queued for delivery on push channels."""
    cursor = db.execute(
        """
        INSERT INTO messages (conversation_key, direction, role, channel, conversation, user_id, text,
                              language, kind, quick_replies, faq_ids, confidence, why, reply_to,
                              latency_ms, meta, delivery, created_at, links)
        VALUES (?, 'out', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        RETURNING id
        """,
        [reply.conversation_key, Role.BOT.value if reply.kind != ReplyKind.AGENT else Role.AGENT.value,
         reply.channel, reply.conversation, reply.user_id, reply.text, reply.language, reply.kind.value,
         json.dumps(list(reply.quick_replies), ensure_ascii=False),
         json.dumps(list(reply.faq_ids), ensure_ascii=False), reply.confidence, reply.why, reply_to,
         round(latency_ms, 2) if latency_ms is not None else None, json.dumps(meta, ensure_ascii=False, default=str),
         PENDING if deliver else None, reply.created_at.isoformat(),
         json.dumps([{"title": link.title, "url": link.url} for link in reply.links], ensure_ascii=False)
         if reply.links else None],
    )
    db.execute("UPDATE conversations SET updated_at = ? WHERE key = ?", [_now(), reply.conversation_key])
    row = db.execute("SELECT * FROM messages WHERE id = ?", [cursor.fetchone()[0]]).fetchone()
    return reply_from_row(row)


def _set_language(db: Database, conversation_key: str, language: str, locked: bool) -> None:
    if locked:
        db.execute("UPDATE conversations SET language = ?, language_locked = 1 WHERE key = ?",
                   [language, conversation_key])
    else:
        db.execute("UPDATE conversations SET language = ? WHERE key = ?", [language, conversation_key])


def _start_over(db: Database, conversation_key: str, message_id: int) -> None:
    db.execute("UPDATE conversations SET context_start_id = ?, mood = NULL, language_locked = 0 WHERE key = ?",
               [message_id, conversation_key])


def _conversation(db: Database, conversation_key: str) -> ConversationState | None:
    row = db.execute("SELECT * FROM conversations WHERE key = ?", [conversation_key]).fetchone()
    if row is None:
        return None
    return conversation_from_row(row)


def conversation_from_row(row: Row) -> ConversationState:
    return ConversationState(
        key=row["key"], channel=row["channel"], conversation=row["conversation"],
        user_id=row["user_id"], language=row["language"], language_locked=bool(row["language_locked"]),
        handoff=HandoffState(row["handoff_state"]), agent=row["agent"], state_since=row["state_since"],
        context_start_id=row["context_start_id"], mood=row["mood"], display_name=row["display_name"],
    )


def _transcript(db: Database, conversation_key: str) -> Transcript | None:
    conv = db.execute("SELECT * FROM conversations WHERE key = ?", [conversation_key]).fetchone()
    if conv is None:
        return None
    rows = db.execute("SELECT * FROM messages WHERE conversation_key = ? ORDER BY id", [conversation_key])
    entries = tuple(
        TranscriptEntry(
            id=row["id"],
            direction=row["direction"],
            role=Role(row["role"]),
            text=row["text"],
            created_at=row["created_at"],
            language=row["language"],
            external_id=row["external_id"],
            kind=row["kind"],
            faq_ids=tuple(json.loads(row["faq_ids"] or "[]")),
            confidence=row["confidence"],
            latency_ms=row["latency_ms"],
            status=row["status"] if row["direction"] == "in" else (
                row["delivery"] if row["delivery"] in (HELD, PENDING, FAILED) else row["receipt"] or row["delivery"]),
            error=row["receipt_error"] or row["delivery_error"] if row["direction"] == "out" else None,
            sentiment=row["sentiment"],
            media=row["media"],
            why=row["why"],
            faq_tried=_faq_tried(row["meta"]),
            links=tuple(Link(item["title"], item["url"]) for item in json.loads(row["links"] or "[]")),
            quick_replies=tuple(json.loads(row["quick_replies"] or "[]")),
        )
        for row in rows
    )
    return Transcript(
        conversation_key=conv["key"],
        channel=conv["channel"],
        conversation=conv["conversation"],
        user_id=conv["user_id"],
        display_name=conv["display_name"],
        language=conv["language"],
        created_at=conv["created_at"],
        messages=entries,
        state=HandoffState(conv["handoff_state"]),
        agent=conv["agent"],
        mood=conv["mood"],
        orders=tuple(verified_orders(db, conversation_key)),
    )


def verified_orders(db: Database, conversation_key: str) -> list[dict[str, Any]]:
    """The orders verified in a conversation (the latest lookup of each, newest first), for the agents."""
    rows = db.execute(
        "SELECT order_number, summary, at FROM order_lookups WHERE conversation_key = ? AND result = 'verified' "
        "AND summary IS NOT NULL ORDER BY id DESC", [conversation_key]).fetchall()
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest.setdefault(row["order_number"], {**json.loads(row["summary"]), "looked_up_at": row["at"]})
    return list(latest.values())


def _faq_tried(meta: str | None) -> tuple[tuple[str, float], ...]:
    """The FAQ entries retrieval ranked for a turn (from its trace), so an agent sees what the bot considered."""
    if not meta:
        return ()
    ranked = json.loads(meta).get("retrieval") or []
    return tuple((hit["faq_id"], round(float(hit["score"]), 3)) for hit in ranked[:3])


def _pending_deliveries(db: Database, channel: str) -> list[PendingDelivery]:
    return _deliveries(db.execute(
        "SELECT * FROM messages WHERE direction = 'out' AND delivery = ? AND channel = ? ORDER BY id",
        [PENDING, channel],
    ).fetchall())


def _deliveries(rows: list[Row]) -> list[PendingDelivery]:
    return [PendingDelivery(reply=reply_from_row(row), attempts=row["delivery_attempts"],
                            next_attempt_at=row["next_delivery_at"]) for row in rows]


def _claim_deliveries(db: Database, channel: str, worker: str, now: float, until: float) -> list[PendingDelivery]:
    skip_locked = " FOR UPDATE SKIP LOCKED" if dialect_of(db) == POSTGRESQL else ""
    db.execute(
        "UPDATE messages SET delivery_claim = ?, delivery_claim_until = ? WHERE id IN ("
        f"SELECT id FROM messages WHERE direction = 'out' AND delivery = ? AND channel = ?{skip_locked}) "
        "AND conversation_key NOT IN (SELECT conversation_key FROM messages WHERE direction = 'out' "
        "AND delivery = ? AND channel = ? AND delivery_claim <> ? AND delivery_claim_until >= ?)",
        [worker, until, PENDING, channel, PENDING, channel, worker, now])
    return _deliveries(db.execute("SELECT * FROM messages WHERE direction = 'out' AND delivery = ? AND channel = ? "
                                  "AND delivery_claim = ? ORDER BY id", [PENDING, channel, worker]).fetchall())


def _mark_delivered(db: Database, message_id: int) -> None:
    db.execute(
        "UPDATE messages SET delivery = ?, delivery_attempts = delivery_attempts + 1, delivery_error = NULL, "
        "next_delivery_at = NULL, delivery_claim = NULL WHERE id = ?",
        [SENT, message_id],
    )


def _mark_delivery_held(db: Database, message_id: int, reason: str) -> None:
    # The shopper may have written while the channel decided (its release found nothing held yet): then it
    # stays pending and goes now.
    state = PENDING if _shopper_wrote_since(db, message_id) else HELD
    db.execute("UPDATE messages SET delivery = ?, delivery_attempts = delivery_attempts + 1, delivery_error = ?, "
               "next_delivery_at = NULL, delivery_claim = NULL WHERE id = ?", [state, reason[:2000], message_id])


def _resend_sent_reply(db: Database, channel: str, channel_message_id: str, reason: str,
                       hold: bool) -> bool:
    row = db.execute("SELECT id FROM messages WHERE channel_message_id = ? AND channel = ? AND direction = 'out'",
                     [channel_message_id, channel]).fetchone()
    if row is None:
        return False
    state = HELD if hold and not _shopper_wrote_since(db, row["id"]) else PENDING
    db.execute("UPDATE messages SET delivery = ?, delivery_error = ?, next_delivery_at = NULL, delivery_parts = 0 "
               "WHERE id = ?", [state, reason[:2000], row["id"]])  # sent again whole: which part arrived is unknown
    return True


def _shopper_wrote_since(db: Database, message_id: int) -> bool:
    """Whether the shopper wrote after this reply was stored: then nothing waits for them to write again."""
    return db.execute("SELECT 1 FROM messages s JOIN messages r ON r.conversation_key = s.conversation_key "
                      "WHERE r.id = ? AND s.id > r.id AND s.direction = 'in' AND s.role = ? LIMIT 1",
                      [message_id, Role.SHOPPER.value]).fetchone() is not None


def _release_held_deliveries(db: Database, conversation_key: str) -> int:
    cursor = db.execute("UPDATE messages SET delivery = ?, delivery_attempts = 0, next_delivery_at = NULL "
                        "WHERE conversation_key = ? AND direction = 'out' AND delivery = ?",
                        [PENDING, conversation_key, HELD])
    return cursor.rowcount


RECEIPT_ORDER = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}


def _record_channel_message_id(db: Database, message_id: int, channel_message_id: str) -> None:
    # A reply sent again (held, then released) starts its receipts anew under its new id.
    db.execute("UPDATE messages SET channel_message_id = ?, receipt = NULL, receipt_at = NULL, receipt_error = NULL "
               "WHERE id = ?", [channel_message_id, message_id])


def _record_parts_sent(db: Database, message_id: int, parts: int) -> None:
    db.execute("UPDATE messages SET delivery_parts = ? WHERE id = ?", [parts, message_id])


def _record_receipt(db: Database, channel: str, channel_message_id: str, receipt: Receipt) -> bool:
    row = db.execute("SELECT id, receipt FROM messages WHERE channel_message_id = ? AND channel = ? AND "
                     "direction = 'out'", [channel_message_id, channel]).fetchone()
    if row is None:
        return False
    if RECEIPT_ORDER.get(receipt.status, 0) > RECEIPT_ORDER.get(row["receipt"] or "", 0):
        db.execute("UPDATE messages SET receipt = ?, receipt_at = ?, receipt_error = ? WHERE id = ?",
                   [receipt.status, receipt.at.isoformat(), receipt.error, row["id"]])
    return True


def _last_shopper_message_at(db: Database, conversation_key: str) -> datetime | None:
    row = db.execute("SELECT MAX(created_at) AS at FROM messages WHERE conversation_key = ? AND direction = 'in' "
                     "AND role = ?", [conversation_key, Role.SHOPPER.value]).fetchone()
    return datetime.fromisoformat(row["at"]) if row and row["at"] else None


def _mark_delivery_failed(
    db: Database, message_id: int, error: str, retry_at: datetime | None
) -> None:
    db.execute(
        "UPDATE messages SET delivery = ?, delivery_attempts = delivery_attempts + 1, delivery_error = ?, "
        "next_delivery_at = ?, delivery_claim = NULL WHERE id = ?",
        [PENDING if retry_at else FAILED, error[:2000], retry_at.isoformat() if retry_at else None, message_id],
    )


def _shared_secret(db: Database, name: str, candidate: str) -> str:
    db.execute("INSERT INTO shared_secrets (name, secret) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
               [name, candidate])
    return db.execute("SELECT secret FROM shared_secrets WHERE name = ?", [name]).fetchone()[0]


def _stats(db: Database) -> dict[str, int]:
    row = db.execute(
        "SELECT (SELECT COUNT(*) FROM conversations) AS conversations, "
        "(SELECT COUNT(*) FROM messages) AS messages, "
        "(SELECT COUNT(*) FROM messages WHERE direction = 'in' AND status = 'pending') AS pending_inbound, "
        "(SELECT COUNT(*) FROM messages WHERE direction = 'out' AND delivery = 'pending') AS pending_deliveries, "
        "(SELECT COUNT(*) FROM conversations WHERE handoff_state = 'waiting_agent') AS waiting_for_agent, "
        "(SELECT COUNT(*) FROM conversations WHERE handoff_state = 'agent') AS with_agent"
    ).fetchone()
    return dict(row)
