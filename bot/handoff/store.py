"""Handoff records on the conversation store: state changes, forwarded messages, the agents' outbox.

Each method is one transaction on the store's writer, so a state change, the
message that announces it and the notification that tells the agents are
committed together or not at all: a handoff cannot happen twice, and a
notification cannot be lost between "handed off" and "queued for sending".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


from bot.errors import ConversationNotFoundError
from bot.handoff import Action, next_state
from bot.messages import HandoffState, Reply, ReplyKind, utc_now
from bot.store import (
    ANSWERED,
    FAILED,
    FORWARDED,
    PENDING,
    SENT,
    ConversationState,
    Store,
    answer_inbound,
    conversation_from_row,
    first_reply,
    insert_outbound,
)
from bot.store.engine import POSTGRESQL, Database, Row, dialect_of
from bot.store.vectors import StoredVector

UNCONFIDENT_KINDS = (ReplyKind.NOT_SURE.value, ReplyKind.NO_MATCH.value)
BOT_KINDS = (ReplyKind.ANSWER.value, *UNCONFIDENT_KINDS)


@dataclass(frozen=True)
class Notification:
    """One event for one notifier, as queued in the outbox."""

    id: int
    conversation_key: str
    target: str
    event: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: str | None


@dataclass(frozen=True)
class Transition:
    from_state: HandoffState
    to_state: HandoffState
    reason: str
    detail: str
    actor: str
    message_id: int | None
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {"from": self.from_state.value, "to": self.to_state.value, "reason": self.reason,
                "detail": self.detail, "actor": self.actor, "message_id": self.message_id,
                "created_at": self.created_at}


@dataclass(frozen=True)
class QueuedEvent:
    """A notification to queue in the same transaction as the change it reports."""

    targets: tuple[str, ...]
    event: str
    payload: dict[str, Any]


class HandoffStore:
    def __init__(self, store: Store):
        self._store = store

    # -- reads -----------------------------------------------------------------

    async def recent_sentiments(self, conversation_key: str, before_id: int, limit: int) -> list[float]:
        """Scores of the shopper's messages before `before_id` since the last handoff ended, oldest first."""
        return await self._store.read(_recent_sentiments, conversation_key, before_id, limit)

    async def unconfident_streak(self, conversation_key: str) -> int:
        """Bot replies in a row, newest backwards, that were not confident answers."""
        return await self._store.read(_unconfident_streak, conversation_key)

    async def queue(self, states: tuple[HandoffState, ...]) -> list[ConversationState]:
        return await self._store.read(_queue, states)

    async def transitions(self, conversation_key: str) -> list[Transition]:
        return await self._store.read(_transitions, conversation_key)

    async def last_transition(self, conversation_key: str) -> Transition | None:
        found = await self._store.read(_transitions, conversation_key, True)
        return found[0] if found else None

    async def waiting_since_before(self, cutoff: datetime) -> list[ConversationState]:
        """Queued conversations nobody claimed since `cutoff` whose shopper was not yet told to wait."""
        return await self._store.read(_waiting_since_before, cutoff.isoformat())

    async def pending_notifications(self, target: str) -> list[Notification]:
        return await self._store.read(_pending_notifications, target)

    async def claim_notifications(self, target: str, worker: str, now: float, until: float) -> list[Notification]:
        """With several workers: the target's pending notifications this worker sends until `until`, oldest
        first; each goes to one worker (SKIP LOCKED on PostgreSQL), a dead worker's lapse to the others."""
        return await self._store.write(_claim_notifications, target, worker, now, until)

    # -- writes ----------------------------------------------------------------

    async def record_sentiment(self, inbound_id: int, conversation_key: str, score: float, mood: float) -> None:
        await self._store.write(_record_sentiment, inbound_id, conversation_key, score, mood)

    async def start_handoff(
        self, inbound_id: int, reply: Reply, *, reason: str, detail: str, latency_ms: float, deliver: bool,
        meta: dict[str, Any], event: QueuedEvent, told_when: bool = False, vector: StoredVector | None = None,
    ) -> tuple[Reply | None, ConversationState]:
        """bot → waiting_agent, the shopper's notice and the agents' notification, at once.

        When the conversation is no longer with the bot (an agent claimed it meanwhile),
        nothing is handed off twice: the message is forwarded instead and None returned.
        `told_when`: the notice already said when the team is back (after hours), so the
        "still waiting" notice is not sent later.
        """
        return await self._store.write(
            _start_handoff, inbound_id, reply, reason, detail, latency_ms, deliver, meta, event, told_when, vector
        )

    async def forward(self, inbound_id: int, *, meta: dict[str, Any], event: QueuedEvent) -> ConversationState:
        """A shopper message while a person handles the conversation: stored, not answered, passed on."""
        return await self._store.write(_forward, inbound_id, meta, event)

    async def apply(
        self, conversation_key: str, action: Action, *, actor: str, reason: str, detail: str = "",
        notice: Reply | None = None, deliver: bool = False, message_id: int | None = None,
    ) -> tuple[ConversationState, Reply | None]:
        """Move the conversation (raises HandoffConflictError) and store the shopper's notice with it."""
        return await self._store.write(
            _apply, conversation_key, action, actor, reason, detail, notice, deliver, message_id
        )

    async def leave(self, conversation_key: str, inbound_id: int, *, detail: str,
                    event: Callable[[ConversationState, str | None], QueuedEvent]
                    ) -> tuple[ConversationState, bool]:
        """The shopper goes back to the bot: waiting_agent/agent → bot and the agents' notice, at once.

        Returns the conversation and whether it moved (False: it was with the bot already,
        e.g. an agent released it meanwhile). `event(moved, agent who held it)` builds the agents' notice.
        """
        return await self._store.write(_leave, conversation_key, inbound_id, detail, event)

    async def agent_message(
        self, conversation_key: str, agent: str, reply: Reply, *, deliver: bool
    ) -> tuple[ConversationState, Reply]:
        """An agent's words to the shopper; the agent claims the conversation if nobody holds it."""
        return await self._store.write(_agent_message, conversation_key, agent, reply, deliver)

    async def waiting_notice(self, conversation_key: str, notice: Reply, *, deliver: bool) -> Reply | None:
        """Tell a queued shopper when to expect a person, once per handoff; None if it was claimed meanwhile."""
        return await self._store.write(_waiting_notice, conversation_key, notice, deliver)

    async def mark_notification_sent(self, notification_id: int) -> None:
        await self._store.write(_mark_notification, notification_id, SENT, None, None)

    async def mark_notification_failed(self, notification_id: int, error: str, retry_at: datetime | None) -> None:
        """A failed attempt; `retry_at=None` gives up (the row stays, marked failed, for the operator)."""
        status = PENDING if retry_at else FAILED
        await self._store.write(_mark_notification, notification_id, status, error,
                                retry_at.isoformat() if retry_at else None)


# -- SQL, run on the store's threads -------------------------------------------


def _now() -> str:
    return utc_now().isoformat()


def _conversation_row(db: Database, key: str) -> Row:
    row = db.execute("SELECT * FROM conversations WHERE key = ?", [key]).fetchone()
    if row is None:
        raise ConversationNotFoundError(f"no conversation '{key}'")
    return row


def _recent_sentiments(db: Database, key: str, before_id: int, limit: int) -> list[float]:
    rows = db.execute(
        "SELECT sentiment FROM messages WHERE conversation_key = ? AND direction = 'in' AND role = 'shopper' "
        "AND sentiment IS NOT NULL AND id < ? AND id > (SELECT context_start_id FROM conversations WHERE key = ?) "
        "ORDER BY id DESC LIMIT ?",
        [key, before_id, key, limit],
    ).fetchall()
    return [row["sentiment"] for row in reversed(rows)]


def _unconfident_streak(db: Database, key: str) -> int:
    marks = ",".join("?" * len(BOT_KINDS))
    rows = db.execute(
        f"SELECT kind FROM messages WHERE conversation_key = ? AND direction = 'out' AND kind IN ({marks}) "
        "AND id > (SELECT context_start_id FROM conversations WHERE key = ?) ORDER BY id DESC LIMIT 50",
        [key, *BOT_KINDS, key],
    ).fetchall()
    streak = 0
    for row in rows:
        if row["kind"] not in UNCONFIDENT_KINDS:
            break
        streak += 1
    return streak


def _queue(db: Database, states: tuple[HandoffState, ...]) -> list[ConversationState]:
    marks = ",".join("?" * len(states))
    rows = db.execute(
        f"SELECT * FROM conversations WHERE handoff_state IN ({marks}) ORDER BY state_since, key",
        [state.value for state in states],
    ).fetchall()
    return [conversation_from_row(row) for row in rows]


def _transitions(db: Database, key: str, latest_only: bool = False) -> list[Transition]:
    order = "DESC LIMIT 1" if latest_only else ""
    rows = db.execute(f"SELECT * FROM handoff_transitions WHERE conversation_key = ? ORDER BY id {order}",
                      [key]).fetchall()
    return [
        Transition(HandoffState(row["from_state"]), HandoffState(row["to_state"]), row["reason"],
                   row["detail"] or "", row["actor"], row["message_id"], row["created_at"])
        for row in rows
    ]


def _waiting_since_before(db: Database, cutoff: str) -> list[ConversationState]:
    rows = db.execute(
        "SELECT * FROM conversations WHERE handoff_state = ? AND waiting_notice_sent = 0 AND state_since < ? "
        "ORDER BY state_since",
        [HandoffState.WAITING_AGENT.value, cutoff],
    ).fetchall()
    return [conversation_from_row(row) for row in rows]


def _claim_notifications(db: Database, target: str, worker: str, now: float, until: float) -> list[Notification]:
    skip_locked = " FOR UPDATE SKIP LOCKED" if dialect_of(db) == POSTGRESQL else ""
    db.execute(f"UPDATE notifications SET claim = ?, claim_until = ? WHERE id IN (SELECT id FROM notifications "
               f"WHERE status = ? AND target = ? AND (claim IS NULL OR claim = ? OR claim_until < ?){skip_locked})",
               [worker, until, PENDING, target, worker, now])
    return _notifications(db, "SELECT * FROM notifications WHERE status = ? AND target = ? AND claim = ? ORDER BY id",
                          [PENDING, target, worker])


def _pending_notifications(db: Database, target: str) -> list[Notification]:
    return _notifications(db, "SELECT * FROM notifications WHERE status = ? AND target = ? ORDER BY id",
                          [PENDING, target])


def _notifications(db: Database, sql: str, parameters: list[object]) -> list[Notification]:
    rows = db.execute(sql, parameters).fetchall()
    return [
        Notification(row["id"], row["conversation_key"], row["target"], row["event"], json.loads(row["payload"]),
                     row["attempts"], row["next_attempt_at"])
        for row in rows
    ]


def _record_sentiment(db: Database, inbound_id: int, key: str, score: float, mood: float) -> None:
    db.execute("UPDATE messages SET sentiment = ? WHERE id = ?", [round(score, 4), inbound_id])
    db.execute("UPDATE conversations SET mood = ? WHERE key = ?", [round(mood, 4), key])


def _enqueue(db: Database, key: str, event: QueuedEvent) -> None:
    payload = json.dumps(event.payload, ensure_ascii=False, default=str)
    for target in event.targets:
        db.execute(
            "INSERT INTO notifications (conversation_key, target, event, payload, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [key, target, event.event, payload, PENDING, _now()],
        )


def _move(
    db: Database, key: str, action: Action, actor: str, reason: str, detail: str,
    message_id: int | None,
) -> ConversationState:
    row = _conversation_row(db, key)
    current = HandoffState(row["handoff_state"])
    target = next_state(action, current, holder=row["agent"], actor=actor)
    if target == current and action == Action.CLAIM:
        return conversation_from_row(row)  # the same agent claiming twice: nothing changes
    now = _now()
    agent = actor if target == HandoffState.AGENT else None
    if target in (HandoffState.BOT, HandoffState.CLOSED):
        # Whatever was said during the handoff stays in the transcript but out of the bot's context.
        last = db.execute("SELECT COALESCE(MAX(id), 0) FROM messages WHERE conversation_key = ?", [key]).fetchone()
        db.execute("UPDATE conversations SET context_start_id = ?, mood = NULL WHERE key = ?", [last[0], key])
    db.execute(
        "UPDATE conversations SET handoff_state = ?, agent = ?, state_since = ?, updated_at = ?, "
        "waiting_notice_sent = CASE WHEN ? = 'waiting_agent' THEN 0 ELSE waiting_notice_sent END WHERE key = ?",
        [target.value, agent, now, now, target.value, key],
    )
    db.execute(
        "INSERT INTO handoff_transitions (conversation_key, from_state, to_state, reason, detail, actor, message_id, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [key, current.value, target.value, reason, detail, actor, message_id, now],
    )
    return conversation_from_row(_conversation_row(db, key))


def _start_handoff(
    db: Database, inbound_id: int, reply: Reply, reason: str, detail: str, latency_ms: float,
    deliver: bool, meta: dict[str, Any], event: QueuedEvent, told_when: bool, vector: StoredVector | None,
) -> tuple[Reply | None, ConversationState]:
    key = reply.conversation_key
    status = db.execute("SELECT status FROM messages WHERE id = ?", [inbound_id]).fetchone()["status"]
    if status in (ANSWERED, FORWARDED):
        return first_reply(db, inbound_id), conversation_from_row(_conversation_row(db, key))
    row = _conversation_row(db, key)
    if HandoffState(row["handoff_state"]) != HandoffState.BOT:
        return None, _forward(db, inbound_id, meta, QueuedEvent(event.targets, "handoff.shopper_message",
                                                                event.payload))
    conversation = _move(db, key, Action.HANDOFF, "bot", reason, detail, inbound_id)
    if told_when:
        db.execute("UPDATE conversations SET waiting_notice_sent = 1 WHERE key = ?", [key])
    stored = answer_inbound(db, inbound_id, reply, latency_ms, deliver, meta, vector)
    _enqueue(db, key, event)
    return stored, conversation


def _forward(db: Database, inbound_id: int, meta: dict[str, Any], event: QueuedEvent) -> ConversationState:
    row = db.execute("SELECT conversation_key, status FROM messages WHERE id = ?", [inbound_id]).fetchone()
    if row["status"] not in (ANSWERED, FORWARDED):
        db.execute("UPDATE messages SET status = ?, meta = ? WHERE id = ?",
                   [FORWARDED, json.dumps(meta, ensure_ascii=False, default=str), inbound_id])
        _enqueue(db, row["conversation_key"], event)
    return conversation_from_row(_conversation_row(db, row["conversation_key"]))


def _apply(
    db: Database, key: str, action: Action, actor: str, reason: str, detail: str,
    notice: Reply | None, deliver: bool, message_id: int | None,
) -> tuple[ConversationState, Reply | None]:
    before = HandoffState(_conversation_row(db, key)["handoff_state"])
    conversation = _move(db, key, action, actor, reason, detail, message_id)
    stored = None
    if notice is not None and conversation.handoff != before:
        stored = insert_outbound(db, notice, reply_to=None, latency_ms=None, deliver=deliver, meta={"notice": reason})
    return conversation, stored


def _leave(
    db: Database, key: str, inbound_id: int, detail: str,
    event: Callable[[ConversationState, str | None], QueuedEvent],
) -> tuple[ConversationState, bool]:
    row = _conversation_row(db, key)
    if HandoffState(row["handoff_state"]) not in (HandoffState.WAITING_AGENT, HandoffState.AGENT):
        return conversation_from_row(row), False
    conversation = _move(db, key, Action.LEAVE, "shopper", "shopper_left", detail, inbound_id)
    _enqueue(db, key, event(conversation, row["agent"]))
    return conversation, True


def _agent_message(
    db: Database, key: str, agent: str, reply: Reply, deliver: bool
) -> tuple[ConversationState, Reply]:
    row = _conversation_row(db, key)
    state = HandoffState(row["handoff_state"])
    if state != HandoffState.AGENT or row["agent"] != agent:
        _move(db, key, Action.CLAIM, agent, "claimed", "the agent replied", None)
    stored = insert_outbound(db, reply, reply_to=None, latency_ms=None, deliver=deliver, meta={"agent": agent})
    return conversation_from_row(_conversation_row(db, key)), stored


def _waiting_notice(db: Database, key: str, notice: Reply, deliver: bool) -> Reply | None:
    row = _conversation_row(db, key)
    if HandoffState(row["handoff_state"]) != HandoffState.WAITING_AGENT or row["waiting_notice_sent"]:
        return None
    db.execute("UPDATE conversations SET waiting_notice_sent = 1 WHERE key = ?", [key])
    return insert_outbound(db, notice, reply_to=None, latency_ms=None, deliver=deliver, meta={"notice": "waiting"})


def _mark_notification(
    db: Database, notification_id: int, status: str, error: str | None, retry_at: str | None
) -> None:
    db.execute(
        "UPDATE notifications SET status = ?, attempts = attempts + 1, error = ?, next_attempt_at = ?, claim = NULL "
        "WHERE id = ?",
        [status, error[:2000] if error else None, retry_at, notification_id],
    )
