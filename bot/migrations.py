"""Schema migrations: small functions recorded in a table and applied once, in order.

A new column or table is a new function appended to `MIGRATIONS`; never edit one
that has shipped, because databases in the field have already run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

import sqlite_utils

log = logging.getLogger(__name__)

Migration = tuple[str, Callable[[sqlite_utils.Database], None]]
MIGRATIONS_TABLE = "_kefu_migrations"


def _m001_conversations_and_messages(db: sqlite_utils.Database) -> None:
    db["conversations"].create(
        {
            "key": str,
            "channel": str,
            "conversation": str,
            "user_id": str,
            "display_name": str,
            "language": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="key",
        not_null={"channel", "conversation", "user_id", "created_at", "updated_at"},
    )
    db["messages"].create(
        {
            "id": int,
            "conversation_key": str,
            "direction": str,  # "in" from a shopper/agent, "out" from the bot or an agent
            "role": str,
            "channel": str,
            "conversation": str,
            "user_id": str,
            "external_id": str,  # the channel's message id, for dedupe
            "text": str,
            "language_hint": str,
            "language": str,
            "sentiment": float,  # inbound: -1 (furious) .. +1, filled by the sentiment stage
            "status": str,  # inbound: pending / answered / failed
            "error": str,
            "kind": str,  # outbound: answer / not_sure / no_match / agent / system
            "quick_replies": str,  # JSON list
            "faq_ids": str,  # JSON list
            "confidence": float,
            "why": str,
            "reply_to": int,
            "latency_ms": float,
            "meta": str,  # JSON: how the turn was decided
            "delivery": str,  # outbound on push channels: pending / sent / failed
            "delivery_attempts": int,
            "delivery_error": str,
            "next_delivery_at": str,
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_key", "direction", "role", "channel", "conversation", "user_id", "text",
                  "created_at"},
        defaults={"delivery_attempts": 0},
        foreign_keys=[("conversation_key", "conversations", "key")],
    )
    db.execute(
        "CREATE UNIQUE INDEX messages_inbound_dedupe ON messages (conversation_key, external_id) "
        "WHERE direction = 'in' AND external_id IS NOT NULL"
    )
    db.execute("CREATE INDEX messages_by_conversation ON messages (conversation_key, id)")
    db.execute("CREATE INDEX messages_pending_inbound ON messages (status) WHERE direction = 'in'")
    db.execute("CREATE INDEX messages_pending_delivery ON messages (delivery, channel) WHERE direction = 'out'")
    db.execute("CREATE INDEX messages_reply_to ON messages (reply_to)")


def _m002_language_choice(db: sqlite_utils.Database) -> None:
    """A language the shopper chose explicitly wins over detection until they choose again."""
    db["conversations"].add_column("language_locked", int, not_null_default=0)


MIGRATIONS: list[Migration] = [
    ("001_conversations_and_messages", _m001_conversations_and_messages),
    ("002_language_choice", _m002_language_choice),
]


def apply_migrations(db: sqlite_utils.Database, migrations: list[Migration]) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction."""
    db.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}").fetchall()}
    applied = []
    for name, migrate in migrations:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            migrate(db)
            db.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                [name, datetime.now(timezone.utc).isoformat()],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        log.info("store.migration_applied name=%s", name)
        applied.append(name)
    return applied
