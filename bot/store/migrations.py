"""Schema migrations: small functions recorded in a table and applied once, in order.

A new column or table is a new function appended to `MIGRATIONS`; never edit one
that has shipped, because databases in the field have already run it. The same functions
build both engines' schemas: on PostgreSQL `db[table].create(...)` and `.add_column(...)`
are bot.store.postgres.PgTable's translations of sqlite-utils' calls.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from bot.store.engine import POSTGRESQL, Database, dialect_of

log = logging.getLogger(__name__)

Migration = tuple[str, Callable[[Database], None]]
MIGRATIONS_TABLE = "_kefu_migrations"


def _m001_conversations_and_messages(db: Database) -> None:
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


def _m002_language_choice(db: Database) -> None:
    """A language the shopper chose explicitly wins over detection until they choose again."""
    db["conversations"].add_column("language_locked", int, not_null_default=0)


def _m003_handoff(db: Database) -> None:
    """Who answers each conversation, every change of that with its reason, and the agents' outbox."""
    conversations = db["conversations"]
    conversations.add_column("handoff_state", str, not_null_default="bot")
    conversations.add_column("agent", str)
    conversations.add_column("state_since", str)
    conversations.add_column("waiting_notice_sent", int, not_null_default=0)
    # Messages up to this id belong to an earlier handoff: follow-ups, mood and the unconfident
    # streak look only past it, so a released conversation starts clean.
    conversations.add_column("context_start_id", int, not_null_default=0)
    conversations.add_column("mood", float)
    db["handoff_transitions"].create(
        {
            "id": int,
            "conversation_key": str,
            "from_state": str,
            "to_state": str,
            "reason": str,  # explicit_request, upset, unconfident, faq_flagged, keyword, claimed, released, ...
            "detail": str,
            "actor": str,  # "bot", "shopper" or the agent's name
            "message_id": int,  # the message that caused it, if any
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_key", "from_state", "to_state", "reason", "actor", "created_at"},
        foreign_keys=[("conversation_key", "conversations", "key")],
    )
    db.execute("CREATE INDEX handoff_transitions_by_conversation ON handoff_transitions (conversation_key, id)")
    db.execute("CREATE INDEX conversations_by_handoff_state ON conversations (handoff_state)")
    db["notifications"].create(
        {
            "id": int,
            "conversation_key": str,
            "target": str,  # the notifier's name
            "event": str,
            "payload": str,  # JSON
            "status": str,  # pending / sent / failed
            "attempts": int,
            "next_attempt_at": str,
            "error": str,
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_key", "target", "event", "payload", "status", "created_at"},
        defaults={"attempts": 0},
    )
    db.execute("CREATE INDEX notifications_pending ON notifications (status, target)")


def _m004_media(db: Database) -> None:
    """What a shopper sent besides text (a photo, a voice message…): kept so an agent knows it exists."""
    db["messages"].add_column("media", str)


def _m005_messages_by_time(db: Database) -> None:
    """The merchant dashboard reads a period of shopper messages; without this it scans the whole table."""
    db.execute("CREATE INDEX messages_inbound_by_time ON messages (created_at) WHERE direction = 'in'")


def _m006_privacy_audit(db: Database) -> None:
    """Who exported, erased, purged or worked which conversation, without holding any shopper's data.

    `target_ref` is a keyed hash (HMAC-SHA256 with `privacy_key.secret`) of the conversation or
    user, so the log names nobody, yet "what was done to this shopper?" can still be answered by
    hashing their id again (bot/privacy/audit.py). The key is made once, here, per database.
    """
    db["audit_log"].create(
        {
            "id": int,
            "at": str,
            "actor": str,  # an agent's or merchant's name, "cli" or "retention"
            "action": str,  # claim, reply, release, close, export, erase, purge
            "target_kind": str,  # conversation, user or older_than
            "channel": str,  # the channel's name (never personal); None for a purge
            "target_ref": str,  # keyed hash of the conversation/user; for a purge the cutoff date
            "counts": str,  # JSON object of numbers: rows exported/erased, forced, message id…
        },
        pk="id",
        not_null={"at", "actor", "action", "target_kind"},
    )
    db.execute("CREATE INDEX audit_log_by_target ON audit_log (target_ref, id)")
    db["privacy_key"].create({"id": int, "secret": str}, pk="id", not_null={"secret"})
    db.execute("INSERT INTO privacy_key (id, secret) VALUES (1, ?)", [secrets.token_hex(32)])


def _m007_message_vectors(db: Database) -> None:
    """A shopper message's sentence vector (bot/store/vectors.py), so the dashboard need not encode it again."""
    db["messages"].add_column("vector", bytes)
    db["messages"].add_column("vector_encoder", str)


def _m008_order_lookups(db: Database) -> None:
    """Every order lookup (who, which order, what came of it) and each conversation's order in progress.

    No contact data of the order is kept: `proof` says which kind of detail matched ("email"),
    never its value; `summary` (status, items, tracking) is kept for verified lookups only, for
    the agents who take the conversation over.
    """
    db["order_lookups"].create(
        {
            "id": int,
            "at": str,
            "conversation_key": str,
            "message_id": int,
            "order_number": str,
            "source": str,
            "result": str,  # verified, asked_proof, no_match, not_found, unavailable, rate_limited
            "proof": str,  # which detail matched: email, phone, postcode, customer
            "summary": str,  # JSON, verified lookups only
        },
        pk="id",
        not_null={"at", "conversation_key", "result"},
    )
    db.execute("CREATE INDEX order_lookups_by_conversation ON order_lookups (conversation_key, id)")
    db.execute("CREATE INDEX order_lookups_by_order ON order_lookups (order_number, at)")
    db["order_sessions"].create(
        {
            "conversation_key": str,
            "order_number": str,  # the order the conversation is about (asked for proof, or verified)
            "intent": str,
            "verified_number": str,
            "verified_at": str,
            "updated_at": str,
        },
        pk="conversation_key",
        not_null={"updated_at"},
    )


def _m009_reply_links(db: Database) -> None:
    """The links a reply offers (product pages), as JSON [{"title", "url"}], for channels with buttons."""
    db["messages"].add_column("links", str)


def _m010_signed_customer(db: Database) -> None:
    """The shop's customer id and its HMAC sent with a logged-in shopper's message (bot/orders checks it)."""
    db["messages"].add_column("customer_id", str)
    db["messages"].add_column("customer_hash", str)


def _m011_delivery_receipts(db: Database) -> None:
    """What a chat app says became of a reply after it took it (WhatsApp: sent, delivered, read, failed),
    found by the app's own id for the sent message."""
    db["messages"].add_column("channel_message_id", str)
    db["messages"].add_column("receipt", str)
    db["messages"].add_column("receipt_at", str)
    db["messages"].add_column("receipt_error", str)
    db.execute("CREATE INDEX IF NOT EXISTS messages_by_channel_message_id ON messages (channel_message_id)")


def _m012_worker_leases(db: Database) -> None:
    """Who works what when several kefu workers share one database (bot/cluster): a conversation's turns,
    a channel's polling, each reply's and notification's sending. A lease names its holder and lapses at
    `expires_at` (Unix seconds) unless renewed, so a worker that dies leaves its work to another."""
    db["leases"].create({"name": str, "holder": str, "expires_at": float}, pk="name",
                        not_null={"holder", "expires_at"})
    db.execute("CREATE INDEX leases_by_holder ON leases (holder)")
    db["messages"].add_column("delivery_claim", str)  # the worker sending it now ...
    db["messages"].add_column("delivery_claim_until", float)  # ... until then
    db["notifications"].add_column("claim", str)
    db["notifications"].add_column("claim_until", float)


def _m013_shared_secrets(db: Database) -> None:
    """Random secrets every worker of a shop must agree on (the web chat's token key), made once by whichever
    worker asks first."""
    db["shared_secrets"].create({"name": str, "secret": str}, pk="name", not_null={"secret"})


def _m014_console_access(db: Database) -> None:
    """Web console sessions (by the SHA-256 of the cookie's token) and sign-in attempts, shared by every worker
    so an agent stays signed in wherever the load balancer sends them and the limit holds across workers."""
    db["console_sessions"].create({"digest": str, "user_name": str, "csrf_token": str, "created_at": float,
                                   "last_seen": float}, pk="digest",
                                  not_null={"user_name", "csrf_token", "created_at", "last_seen"})
    db.execute("CREATE INDEX console_sessions_by_user ON console_sessions (user_name, created_at)")
    db["sign_in_attempts"].create({"id": int, "address_key": str, "name_key": str, "at": float}, pk="id",
                                  not_null={"address_key", "at"})
    db.execute("CREATE INDEX sign_in_attempts_by_address ON sign_in_attempts (address_key, at)")
    db.execute("CREATE INDEX sign_in_attempts_by_name ON sign_in_attempts (name_key, at)")


def _m015_delivery_parts(db: Database) -> None:
    """How many messages of a long reply the chat app already took (a reply over its size limit goes as
    several): a retry, also after a restart, sends the rest, never the first parts again."""
    db["messages"].add_column("delivery_parts", int, not_null_default=0)


MIGRATIONS: list[Migration] = [
    ("001_conversations_and_messages", _m001_conversations_and_messages),
    ("002_language_choice", _m002_language_choice),
    ("003_handoff", _m003_handoff),
    ("004_media", _m004_media),
    ("005_messages_by_time", _m005_messages_by_time),
    ("006_privacy_audit", _m006_privacy_audit),
    ("007_message_vectors", _m007_message_vectors),
    ("008_order_lookups", _m008_order_lookups),
    ("009_reply_links", _m009_reply_links),
    ("010_signed_customer", _m010_signed_customer),
    ("011_delivery_receipts", _m011_delivery_receipts),
    ("012_worker_leases", _m012_worker_leases),
    ("013_shared_secrets", _m013_shared_secrets),
    ("014_console_access", _m014_console_access),
    ("015_delivery_parts", _m015_delivery_parts),
]


# SQLite's few functions the store's SQL uses, for PostgreSQL: one body of SQL serves both engines.
POSTGRES_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION json_valid(doc text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        PERFORM doc::jsonb;
        RETURN doc IS NOT NULL;
    EXCEPTION WHEN others THEN
        RETURN false;
    END $$""",
    # '$.retrieval[0].faq_id' -> {retrieval,0,faq_id}; the value as text (what the store compares it as).
    """CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT doc::jsonb #>> string_to_array(
            regexp_replace(regexp_replace(path, '^\\$\\.?', ''), '\\[(\\d+)\\]', '.\\1', 'g'), '.')
    $$""",
    """CREATE OR REPLACE FUNCTION json_array(VARIADIC items text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT array_to_json(items)::text
    $$""",
    """CREATE OR REPLACE FUNCTION julianday(at text) RETURNS double precision LANGUAGE sql STABLE AS $$
        SELECT extract(epoch FROM at::timestamptz)::double precision / 86400.0 + 2440587.5
    $$""",
    """CREATE OR REPLACE FUNCTION round(value double precision, places integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE AS $$ SELECT round(value::numeric, places)::double precision $$""",
)
MIGRATION_LOCK = 0x6B656675  # "kefu": workers starting together migrate one at a time


def apply_migrations(db: Database, migrations: list[Migration]) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction."""
    postgres = dialect_of(db) == POSTGRESQL
    if postgres:
        db.execute("SELECT pg_advisory_lock(?)", [MIGRATION_LOCK])
    try:
        if postgres:
            for statement in POSTGRES_FUNCTIONS:
                db.execute(statement)
        db.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}").fetchall()}
        applied = []
        for name, migrate in migrations:
            if name in done:
                continue
            with _transaction(db):
                migrate(db)
                db.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                    [name, datetime.now(timezone.utc).isoformat()],
                )
            log.info("store.migration_applied name=%s", name)
            applied.append(name)
        return applied
    finally:
        if postgres:
            db.execute("SELECT pg_advisory_unlock(?)", [MIGRATION_LOCK])


@contextmanager
def _transaction(db: Database) -> Iterator[None]:
    if dialect_of(db) == POSTGRESQL:
        with db.conn.transaction():  # type: ignore[attr-defined]
            yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
