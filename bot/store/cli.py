"""`kefu migrate` and `kefu store copy`: bring a database's schema up to date, move a shop to another engine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.errors import KefuError
from bot.store.conversations import Store
from bot.store.copy import copy_store
from bot.store.engine import display, is_postgres_url
from bot.store.migrations import MIGRATIONS, MIGRATIONS_TABLE


def add_store_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    migrate = commands.add_parser(
        "migrate", parents=[common], help="create or upgrade the database's tables, then exit",
        description="Applies the schema migrations the database has not run yet (kefu serve does this too, at "
                    "start). With several workers, run it once before starting the new version.")
    migrate.add_argument("--url", metavar="LOCATION", help="this database instead of the config's [storage]: "
                                                           "postgresql://… or sqlite:///path")
    store = commands.add_parser("store", parents=[common], help="copy a shop's history to another database")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    copy = actions.add_parser(
        "copy", parents=[common], help="copy every conversation, message and log into a new, empty database",
        description="Copies the whole store (conversations, messages, handoffs, order lookups, the audit log and "
                    "its key) into an empty database, in one transaction. Stop kefu first: messages arriving "
                    "during the copy would stay behind.")
    copy.add_argument("--from", dest="source", metavar="LOCATION",
                      help="sqlite:///path/kefu.db or postgresql://… (default: the config's [storage])")
    copy.add_argument("--to", dest="target", metavar="LOCATION", required=True,
                      help="postgresql://user:password@host/db or sqlite:///path/kefu.db")


def parse_location(text: str) -> Path | str:
    """A command line's database: a PostgreSQL URL, sqlite:///path, or a plain path to a SQLite file."""
    if is_postgres_url(text):
        return text
    if text.startswith("sqlite://"):
        return Path(text.removeprefix("sqlite://"))
    if "://" in text:
        raise KefuError(f"'{text}' is neither postgresql://… nor sqlite:///path")
    return Path(text)


async def migrate_command(config: Config, args: argparse.Namespace) -> int:
    location = parse_location(args.url) if args.url else config.storage.location
    store = Store(location, pool_size=1)
    await store.open()  # applies what is missing, one migration at a time under a lock
    try:
        applied = await store.read(lambda db: [row[0] for row in db.execute(
            f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name")])
    finally:
        await store.close()
    print(f"{store.engine.location}: schema at {applied[-1]} ({len(applied)} of {len(MIGRATIONS)} migrations)")
    return 0


async def store_command(config: Config, args: argparse.Namespace) -> int:
    source = parse_location(args.source) if args.source else config.storage.location
    target = parse_location(args.target)
    copied = await copy_store(source, target)
    width = max(len(table.table) for table in copied)
    for table in copied:
        print(f"{table.table:<{width}}  {table.rows:>9,} rows")
    print(f"copied {sum(table.rows for table in copied):,} rows into {display(target)}")
    return 0
