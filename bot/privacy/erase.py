"""Erasure: a subject's rows out of every table, in one transaction, and out of the file's free pages and WAL.

Tables are found by their `conversation_key` column rather than listed, so a table added later
(an outbox, an index of messages) is erased too without anyone remembering to add it here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence


from bot.errors import ConversationNotFoundError, HandoffConflictError
from bot.messages import HandoffState
from bot.privacy import audit
from bot.privacy.subject import Subject
from bot.store.engine import POSTGRESQL, SQLITE, Database, dialect_of
from bot.store.schema import column_names, table_names

log = logging.getLogger(__name__)

LIVE_STATES = (HandoffState.WAITING_AGENT.value, HandoffState.AGENT.value)
CHUNK = 500  # keys per IN (...) list


def secure_delete_on(db: Database) -> None:
    """SQLite: deleted rows are overwritten with zeros on this connection (outside a transaction, on the writer).

    PostgreSQL has no such setting: `checkpoint` vacuums the tables instead.
    """
    if dialect_of(db) == SQLITE:
        db.execute("PRAGMA secure_delete = ON")


def checkpoint(db: Database) -> bool:
    """SQLite: copy the WAL into the file and truncate it to zero bytes; False when a reader kept it busy.

    PostgreSQL: VACUUM the tables that held the rows, so their space is reused and the dead row
    versions are gone from the tables (the server's WAL and backups follow its own retention).
    """
    if dialect_of(db) == POSTGRESQL:
        for table in [*tables_with_conversations(db), "conversations"]:
            db.execute(f'VACUUM "{table}"')
        return True
    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy == 0


def tables_with_conversations(db: Database) -> list[str]:
    found = [name for name in table_names(db) if "conversation_key" in column_names(db, name)]
    # messages last: other tables may refer to its rows; conversations (the parent) is deleted after all.
    return sorted(found, key=lambda name: name == "messages")


def delete_conversations(db: Database, keys: Sequence[str]) -> dict[str, int]:
    """Delete the conversations and every row that belongs to them; counts of rows per table."""
    counts: dict[str, int] = {}
    tables = tables_with_conversations(db)
    for start in range(0, len(keys), CHUNK):
        chunk = list(keys[start:start + CHUNK])
        marks = ",".join("?" * len(chunk))
        for table in tables:
            deleted = db.execute(f'DELETE FROM "{table}" WHERE conversation_key IN ({marks})', chunk).rowcount
            counts[table] = counts.get(table, 0) + deleted
        deleted = db.execute(f"DELETE FROM conversations WHERE key IN ({marks})", chunk).rowcount
        counts["conversations"] = counts.get("conversations", 0) + deleted
    return counts


def live_conversations(db: Database, keys: Sequence[str]) -> list[tuple[str, str, str | None, int]]:
    """(key, state, agent, unanswered messages) of those a person handles or the bot is still answering."""
    found = []
    for key in keys:
        row = db.execute(
            "SELECT handoff_state, agent, (SELECT COUNT(*) FROM messages WHERE conversation_key = c.key "
            "AND direction = 'in' AND status = 'pending') AS pending FROM conversations c WHERE key = ?", [key]
        ).fetchone()
        if row is not None and (row[0] in LIVE_STATES or row[2]):
            found.append((key, row[0], row[1], row[2]))
    return found


def erase_subject(db: Database, subject: Subject, actor: str, force: bool) -> dict[str, int]:
    """In the writer's transaction: refuse a live conversation unless forced, delete, and audit it."""
    keys = subject.keys(db)
    if not keys:
        raise ConversationNotFoundError(f"nothing is stored for {subject.label}")
    live = live_conversations(db, keys)
    if live and not force:
        _, state, agent, pending = live[0]
        why = (f"is {'with agent ' + repr(agent) if state == HandoffState.AGENT.value else 'waiting for an agent'}"
               if state in LIVE_STATES else f"has {pending} message(s) the bot is still answering")
        raise HandoffConflictError(f"a conversation of {subject.label} {why}; close it first, or erase with force",
                                   state=state, agent=agent)
    counts = delete_conversations(db, keys)
    counts["forced"] = len(live)
    audit.record_subject(db, subject, actor=actor, action="erase", counts=counts)
    return counts
