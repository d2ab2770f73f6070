"""The PostgreSQL engine: one database shared by any number of kefu workers.

psycopg 3 with a connection pool. The store's functions are the same ones SQLite runs
(bot/store/conversations.py and its companions): each gets a `PgDatabase` handle that
speaks their `?` placeholders and gives rows by name or position, on a worker thread,
never on the event loop. Those functions are synchronous because SQLite's are, so the
sync pool serves them; one body of SQL for both engines beats two that drift apart.

Write transactions take one transaction-level advisory lock first, so they run one at a time
across every worker, as on SQLite's single writer: a read-check-write inside one (answer a
message only if it is still unanswered, claim a conversation only if nobody has) is safe
across processes and machines, with nothing to retry. Each is a few short statements (about
a millisecond), which puts the store's ceiling far above what the encoders of a worker can
answer (bench/workers.py). SERIALIZABLE transactions were tried first: under 3 workers' load
the false conflicts of PostgreSQL's predicate locks on the messages table's index pages made
writes fail even after 12 retries.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from bot.errors import KefuError
from bot.store.engine import POSTGRESQL, StoreClosedError, redacted
from bot.store.migrations import MIGRATIONS, apply_migrations

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 6  # deadlocks with a statement outside kefu's writes (an operator's): rare, and clear at once
WRITE_LOCK = 0x6B656677  # "kefw": the one lock every write transaction takes
CONNECT_SECONDS = 30.0
POOL_WAIT_SECONDS = 10.0  # a request waits this long for a connection before it is refused (503)
RETRIED = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


class StoreUnavailableError(KefuError):
    """PostgreSQL could not be reached or refused the connection."""


class PgRow:
    """A row by column name or position, like sqlite3.Row (the first of two same-named columns wins)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: tuple[Any, ...]):
        self._names = names
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._names[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._names, self._values, strict=False))!r})"


def _plain(value: Any) -> Any:
    """NUMERIC (PostgreSQL's SUM and AVG of integers) as the int or float SQLite gives."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], PgRow]:
    names: dict[str, int] = {}
    for index, column in enumerate(cursor.description or ()):
        names.setdefault(column.name, index)

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(names, tuple(_plain(value) for value in values))

    return make


_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|\?|:[A-Za-z_]\w*")


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """SQLite's placeholders outside quoted text (`?`, `:name`) to psycopg's (`%s`, `%(name)s`); every
    literal `%` to `%%`, since psycopg reads placeholders inside quotes too. A `::` cast stays."""

    def placeholder(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if text.startswith(":") and text != "::":
            return f"%({text[1:]})s"
        return text

    return _QUOTED_OR_MARK.sub(placeholder, sql.replace("%", "%%"))


def _parameter(value: Any) -> Any:
    # SQLite stores True as 1 in the INTEGER flag columns; PostgreSQL would refuse boolean = bigint.
    return int(value) if isinstance(value, bool) else value


class PgDatabase:
    """The handle a store function gets on PostgreSQL (the same surface as sqlite_utils.Database's)."""

    dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = (), /) -> psycopg.Cursor[PgRow]:
        cursor = self.conn.cursor(row_factory=_row_factory)
        if isinstance(parameters, Mapping):
            cursor.execute(translate(sql), {name: _parameter(value) for name, value in parameters.items()})
        elif parameters:
            cursor.execute(translate(sql), [_parameter(value) for value in parameters])
        else:
            cursor.execute(sql)  # nothing to bind: the text goes as written (a literal % included)
        return cursor

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)


_COLUMN_TYPES: dict[type, str] = {int: "BIGINT", str: 'TEXT COLLATE "C"', float: "DOUBLE PRECISION", bytes: "BYTEA"}


def _literal(value: object) -> str:
    if isinstance(value, bool) or isinstance(value, int | float):
        return str(int(value) if isinstance(value, bool) else value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


class PgTable:
    """The two table operations migrations use (sqlite-utils' `create` and `add_column`), as PostgreSQL DDL.

    Text is `COLLATE "C"`: compared byte by byte as SQLite does, so ISO timestamps and ids sort the
    same on both engines whatever the server's locale.
    """

    def __init__(self, db: PgDatabase, name: str):
        self._db = db
        self.name = name

    def create(self, columns: dict[str, type], *, pk: str, not_null: set[str] | None = None,
               defaults: dict[str, object] | None = None,
               foreign_keys: Sequence[tuple[str, str, str]] = ()) -> None:
        parts = []
        for name, kind in columns.items():
            if name == pk:
                identity = " GENERATED BY DEFAULT AS IDENTITY" if kind is int else ""
                parts.append(f'"{name}" {_COLUMN_TYPES[kind]}{identity} PRIMARY KEY')
                continue
            column = f'"{name}" {_COLUMN_TYPES[kind]}'
            if name in (not_null or ()):
                column += " NOT NULL"
            if defaults and name in defaults:
                column += f" DEFAULT {_literal(defaults[name])}"
            parts.append(column)
        parts += [f'FOREIGN KEY ("{column}") REFERENCES "{table}" ("{other}")' for column, table, other in foreign_keys]
        self._db.execute(f'CREATE TABLE "{self.name}" ({", ".join(parts)})')

    def add_column(self, name: str, kind: type, *, not_null_default: object = None) -> None:
        column = f'"{name}" {_COLUMN_TYPES[kind]}'
        if not_null_default is not None:
            column += f" NOT NULL DEFAULT {_literal(not_null_default)}"
        self._db.execute(f'ALTER TABLE "{self.name}" ADD COLUMN {column}')


class PostgresEngine:
    dialect = POSTGRESQL

    def __init__(self, url: str, *, pool_size: int = 8):
        self.url = url
        self.location = redacted(url)
        self._pool_size = pool_size
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="kefu-postgres")
        self._pool: ConnectionPool | None = None
        self._closed = False
        self._random = random.Random()
        self._random_lock = threading.Lock()

    async def open(self) -> None:
        self._pool = ConnectionPool(self.url, min_size=1, max_size=self._pool_size, open=False,
                                    kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
                                    name="kefu", timeout=POOL_WAIT_SECONDS, check=ConnectionPool.check_connection,
                                    reconnect_timeout=CONNECT_SECONDS)
        try:
            await self._run(self._pool.open, True, CONNECT_SECONDS)
            await self._run(self._migrate)
        except (StoreUnavailableError, TimeoutError) as exc:
            await self.close()
            raise StoreUnavailableError(f"PostgreSQL at {self.location} is unavailable: {exc}") from exc

    def _migrate(self) -> None:
        assert self._pool is not None
        with self._pool.connection() as conn:
            apply_migrations(PgDatabase(conn), MIGRATIONS)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            await self._run(self._pool.close)
        self._threads.shutdown(wait=True)

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(func, *args))
        except psycopg.OperationalError as exc:  # the server is down, unreachable, or the pool waited too long
            raise StoreUnavailableError(f"PostgreSQL at {self.location} is unavailable: "
                                        f"{type(exc).__name__}: {exc}") from exc

    def _usable_pool(self) -> ConnectionPool:
        if self._closed or self._pool is None:
            raise StoreClosedError("the store is closed")
        return self._pool

    async def write(self, func: Callable[..., Any], *args: Any) -> Any:
        pool = self._usable_pool()
        return await self._run(self._write, pool, func, args)

    def _write(self, pool: ConnectionPool, func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with pool.connection() as conn, conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
                    return func(PgDatabase(conn), *args)
            except RETRIED as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.warning("store.write_retried function=%s attempt=%d sqlstate=%s",
                            getattr(func, "__name__", "?"), attempt, exc.sqlstate)
                with self._random_lock:
                    pause = self._random.uniform(0, 0.005 * 2 ** min(attempt, 6))
                time.sleep(pause)  # on the store's thread: a jittered backoff so the two writers part
        raise AssertionError("unreachable")

    async def read(self, func: Callable[..., Any], *args: Any) -> Any:
        pool = self._usable_pool()
        return await self._run(self._read, pool, func, args)

    @staticmethod
    def _read(pool: ConnectionPool, func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        with pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return func(PgDatabase(conn), *args)

    async def maintain(self, func: Callable[..., Any], *args: Any) -> Any:
        pool = self._usable_pool()

        def outside_transaction() -> Any:
            with pool.connection() as conn:
                return func(PgDatabase(conn), *args)

        return await self._run(outside_transaction)
