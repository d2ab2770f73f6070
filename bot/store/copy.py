"""`kefu store copy`: move a shop's whole history from one engine to another (SQLite → PostgreSQL, or back).

Both sides are first migrated to the same schema. The copy is one transaction on the target, so
a failure leaves it as empty as it was, and it refuses a target that already holds conversations:
two shops' histories never mix. Ids are kept (replies point at their messages, audit entries at
their ids), and PostgreSQL's id counters are moved past them so new rows never collide.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import KefuError
from bot.store.conversations import Store
from bot.store.engine import POSTGRESQL, Database, dialect_of, is_postgres_url
from bot.store.migrations import MIGRATIONS_TABLE
from bot.store.schema import column_names, primary_key, table_names

BATCH = 1000
# Rows the migrations themselves write into a new database; the source's replace them (the privacy
# key hashes every audit entry's target, so the source's must come along).
SEEDED_TABLES = ("privacy_key",)


class StoreCopyError(KefuError):
    """The copy was refused (target not empty, schemas differ) before anything was written."""


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int


def _parents_first(names: list[str]) -> list[str]:
    """Conversations before what refers to it, then messages, then the rest."""
    return sorted(names, key=lambda name: (name != "conversations", name != "messages", name))


def _migrations(db: Database) -> set[str]:
    return {row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}


@contextmanager
def _reader(location: Path | str) -> Iterator[Database]:
    """A plain read connection to the source, used from inside the target's transaction."""
    if is_postgres_url(location):
        import psycopg

        from bot.store.postgres import PgDatabase

        with psycopg.connect(str(location), autocommit=True, options="-c TimeZone=UTC") as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PgDatabase(conn)
        return
    conn = sqlite3.connect(f"file:{Path(location)}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN")  # one snapshot of the file for the whole copy
        yield conn  # type: ignore[misc]
    finally:
        conn.close()


async def copy_store(source: Path | str, target: Path | str) -> list[TableCopy]:
    """Copy every row of `source` into the empty `target`; both are migrated first."""
    if str(source) == str(target):
        raise StoreCopyError("the source and the target are the same database")
    if not is_postgres_url(source) and not Path(source).exists():
        raise StoreCopyError(f"no database at {source}")
    for location in (source, target):
        opened = Store(location, pool_size=1)
        await opened.open()  # brings its schema up to date
        await opened.close()
    store = Store(target, pool_size=1)
    await store.open()
    try:
        return await store.write(_copy_into, source)
    finally:
        await store.close()


def _copy_into(target: Database, source_location: Path | str) -> list[TableCopy]:
    with _reader(source_location) as source:
        if _migrations(source) != _migrations(target):
            raise StoreCopyError("the two databases are at different schema versions; upgrade kefu on both")
        names = _parents_first(table_names(source))
        missing = sorted(set(names) - set(table_names(target)))
        if missing:
            raise StoreCopyError(f"the target has no table {', '.join(missing)}")
        for name in names:
            if name not in SEEDED_TABLES and target.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone():
                raise StoreCopyError(f"the target already holds data (table {name}); copy only into a new database")
        copied = []
        for name in names:
            if name in SEEDED_TABLES:
                target.execute(f'DELETE FROM "{name}"')
            copied.append(TableCopy(name, _copy_table(source, target, name)))
        if dialect_of(target) == POSTGRESQL:
            _advance_identities(target)
        return copied


def _copy_table(source: Database, target: Database, table: str) -> int:
    shared = [column for column in column_names(source, table) if column in set(column_names(target, table))]
    key = primary_key(source, table) or shared[:1]
    listed = ", ".join(f'"{column}"' for column in shared)
    order = ", ".join(f'"{column}"' for column in key)
    insert = f'INSERT INTO "{table}" ({listed}) VALUES ({", ".join("?" * len(shared))})'
    count = 0
    offset = 0
    while True:
        batch: list[Any] = source.execute(f'SELECT {listed} FROM "{table}" ORDER BY {order} LIMIT ? OFFSET ?',
                                          [BATCH, offset]).fetchall()
        for row in batch:
            target.execute(insert, list(row))
        count += len(batch)
        offset += len(batch)
        if len(batch) < BATCH:
            return count


def _advance_identities(db: Database) -> None:
    """Each id counter past the largest copied id, so the next new row gets a fresh one."""
    for table, column in db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND is_identity = 'YES'").fetchall():
        db.execute(f'SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX("{column}"), 0) + 1, false) '
                   f'FROM "{table}"', [f'"{table}"', column])
