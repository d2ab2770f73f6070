"""What tables and columns a database has, asked the way each engine answers it.

For code that works on every table the store has, whatever migrations made them: the privacy
erasure (every row with a conversation_key) and `kefu store copy`.
"""

from __future__ import annotations

from bot.store.engine import POSTGRESQL, Database, dialect_of
from bot.store.migrations import MIGRATIONS_TABLE


def table_names(db: Database) -> list[str]:
    """The store's tables (not the migrations' own record), by name."""
    if dialect_of(db) == POSTGRESQL:
        names = [row[0] for row in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'")]
    else:
        names = [row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return sorted(name for name in names if name != MIGRATIONS_TABLE)


def column_names(db: Database, table: str) -> list[str]:
    """A table's columns in their order."""
    if dialect_of(db) == POSTGRESQL:
        return [row[0] for row in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position", [table])]
    return [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]


def primary_key(db: Database, table: str) -> list[str]:
    """A table's primary key columns (empty when it has none)."""
    if dialect_of(db) == POSTGRESQL:
        return [row[0] for row in db.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = ?::regclass AND i.indisprimary", [f'"{table}"'])]
    return [row[1] for row in sorted(db.execute(f'PRAGMA table_info("{table}")'), key=lambda r: r[5]) if row[5]]
