"""The SQLite engine (the default: nothing to install), via sqlite-utils.

All writes go through one writer thread (a single connection), reads through a
second connection on its own thread; WAL mode lets them run side by side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.concurrency import SerialExecutor
from bot.store.engine import SQLITE, StoreClosedError
from bot.store.migrations import MIGRATIONS, apply_migrations


class SqliteEngine:
    dialect = SQLITE

    def __init__(self, path: Path):
        self.path = path
        self.location = str(path)
        self._writer = SerialExecutor("kefu-sqlite-writer")
        self._reader = SerialExecutor("kefu-sqlite-reader")
        self._write_db: sqlite_utils.Database | None = None
        self._read_db: sqlite_utils.Database | None = None
        self._closed = False

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_db = await self._writer.run(self._connect, True)
        self._read_db = await self._reader.run(self._connect, False)

    def _connect(self, writer: bool) -> sqlite_utils.Database:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        if writer:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        db = sqlite_utils.Database(conn)
        if writer:
            apply_migrations(db, MIGRATIONS)
        return db

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._write_db is not None:
            await self._writer.run(self._write_db.conn.close)
        if self._read_db is not None:
            await self._reader.run(self._read_db.conn.close)
        self._writer.shutdown()
        self._reader.shutdown()

    async def write(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._closed or self._write_db is None:
            raise StoreClosedError("the store is closed")
        db = self._write_db

        def in_transaction() -> Any:
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                result = func(db, *args)
            except BaseException:
                db.conn.execute("ROLLBACK")
                raise
            db.conn.execute("COMMIT")
            return result

        return await self._writer.run(in_transaction)

    async def read(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._closed or self._read_db is None:
            raise StoreClosedError("the store is closed")
        return await self._reader.run(func, self._read_db, *args)

    async def maintain(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._closed or self._write_db is None:
            raise StoreClosedError("the store is closed")
        return await self._writer.run(func, self._write_db, *args)
