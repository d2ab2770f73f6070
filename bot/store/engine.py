"""What the conversation store needs of a database engine, and how the engine is chosen.

The store's SQL (bot/store/conversations.py and its companions in bot/handoff, bot/orders,
bot/privacy…) is plain functions over a `Database` handle, written once for both engines.
An engine runs each function on a worker thread, never on the event loop: `write` in one
transaction (serialized, so a read-check-write inside it is safe), `read` on a consistent
snapshot, `maintain` outside any transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from bot.errors import KefuError

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class StoreClosedError(KefuError):
    """The store was used after `close()`."""


class Row(Protocol):
    """A result row, by column name or position (sqlite3.Row and bot.store.postgres.PgRow)."""

    def __getitem__(self, key: int | str) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """The handle a store function gets: `?` placeholders, rows by name or position."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


class Engine(Protocol):
    dialect: str
    location: str  # for messages and logs: a path, or a URL without its password

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, func: Callable[..., Any], *args: Any) -> Any: ...

    async def read(self, func: Callable[..., Any], *args: Any) -> Any: ...

    async def maintain(self, func: Callable[..., Any], *args: Any) -> Any: ...


def redacted(url: str) -> str:
    """A URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def display(location: Path | str) -> str:
    """Where a store lives, fit for a log line."""
    return redacted(str(location)) if is_postgres_url(location) else str(location)


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def engine_for(location: Path | str, *, pool_size: int = 8) -> Engine:
    """The engine for a SQLite file (a path, or "sqlite:///path") or a PostgreSQL URL."""
    if is_postgres_url(location):
        try:
            from bot.store.postgres import PostgresEngine  # psycopg is an optional dependency
        except ImportError as exc:
            raise KefuError(f"a PostgreSQL store needs psycopg ({exc}): pip install 'kefu[postgres]'") from exc
        return PostgresEngine(str(location), pool_size=pool_size)
    from bot.store.sqlite import SqliteEngine

    if isinstance(location, str) and location.startswith("sqlite://"):
        location = location.removeprefix("sqlite://")
    return SqliteEngine(Path(location))


def dialect_of(db: object) -> str:
    """Which SQL dialect a store function's handle speaks, for the few statements that differ."""
    return getattr(db, "dialect", SQLITE)
