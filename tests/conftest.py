"""Shared fixtures: a real config file, a real SQLite file (or PostgreSQL database) and a real HTTP server per test."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import psycopg
import pytest
from aiohttp import web, web_app

from bot.app import KefuApp
from bot.config import Config, load_config
from bot.messages import Message, Reply, ReplyKind
from bot.store import Store
from bot.store.engine import is_postgres_url
from bot.store.postgres import PgDatabase
from postgres_server import PostgresServer

REPO = Path(__file__).resolve().parent.parent
SAMPLE_FAQ = REPO / "examples" / "sample-shop" / "faq"
TOKEN = "test-token-0123456789"
# Indexes and embedding caches are content-addressed, so tests share one folder and only the
# first test that sees an FAQ version pays for encoding it.
SHARED_INDEX = Path(tempfile.gettempdir()) / f"kefu-tests-index-{os.getuid()}"


def write_config(directory: Path, extra: str = "", *, webhook: str = "", handoff: str = "enabled = false",
                 http: str = "", storage: Path | str | None = None, port: int = 0) -> Path:
    """A kefu.toml using the sample shop's FAQ, with storage in `directory` and a free port.

    Handoff is off unless a test sets `handoff`: the spine's tests repeat questions the bot
    cannot answer, which would (rightly) hand those conversations to a person.
    """
    path = directory / "kefu.toml"
    where = f'url = "{storage}"' if is_postgres_url(storage) else 'database = "data/kefu.db"'
    path.write_text(
        f"""
[shop]
name = "Test Shop"
default_language = "en"
languages = ["en", "zh"]

[storage]
{where}
index_dir = "{SHARED_INDEX.as_posix()}"

[knowledge]
faq_dir = "{SAMPLE_FAQ.as_posix()}"

[retrieval]
top_topics = ["order-tracking", "shipping-time", "returns-policy"]

[http]
host = "127.0.0.1"
port = {port}
max_body_bytes = 4096
shutdown_timeout_seconds = 5
{http}

[webhook]
enabled = true
token = "{TOKEN}"
max_text_chars = 500
{webhook}

[handoff]
{handoff}
{extra}
""",
        encoding="utf-8",
    )
    return path


async def queue_reply(database: Path, channel: str, conversation: str, text: str) -> int:
    """A shopper's message and its reply waiting for delivery, stored before kefu starts (as a crash leaves it)."""
    store = Store(database)
    await store.open()
    try:
        record = await store.record_inbound(Message(channel=channel, conversation=conversation,
                                                    user_id=conversation, text="tell me everything"))
        reply = Reply(channel=channel, conversation=conversation, user_id=conversation, text=text, language="en",
                      kind=ReplyKind.AGENT, in_reply_to=record.message.id)
        stored = await store.record_reply(record.message.id, reply, latency_ms=1.0, deliver=True, meta={})
        assert stored.message_id is not None
        return stored.message_id
    finally:
        await store.close()


def with_cold_index(config: Path) -> Path:
    """Point the config at an index folder of its own, empty: what a first start would build goes there."""
    folder = config.parent / "cold-index"
    config.write_text(config.read_text(encoding="utf-8").replace(SHARED_INDEX.as_posix(), folder.as_posix()),
                      encoding="utf-8")
    return folder


@pytest.fixture
def config_path(tmp_path: Path, storage: Path | str) -> Path:
    return write_config(tmp_path, storage=storage)


def rows(location: Path | str, sql: str, *params: object) -> list[tuple]:
    """Rows read straight from the SQLite file or the PostgreSQL database, beside the store under test."""
    if is_postgres_url(location):
        with psycopg.connect(str(location), autocommit=True) as conn:
            return [tuple(row) for row in PgDatabase(conn).execute(sql, params)]
    with sqlite3.connect(location) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path, environ={})


@pytest.fixture
async def model_server():  # noqa: ANN201 (a FakeModelServer: tests/fake_llm.py imports this module)
    """A fake OpenAI-compatible model server on 127.0.0.1 answering with the grounded default."""
    from fake_llm import FakeModelServer, serving

    async with serving(FakeModelServer()) as server:
        yield server


@pytest.fixture(autouse=True)
def release_aiohttp_handlers() -> Iterator[None]:
    """Let each test's apps go once it ends.

    aiohttp caches each handler's middleware chain in a module-level LRU of 1,024 entries
    (`aiohttp.web_app._cached_build_middleware`), keyed by the handler and its apps. A handler
    is a bound method of a channel, so the cache kept every KefuApp built by a test alive,
    encoders, detector and all: ~145 MB an app, 20 GB resident by the end of the suite. A
    server builds one app per process, so only a process that builds many (this one) needs it.
    An app's objects refer to each other, so they wait for the cycle collector's rare full
    pass: collect now, once per test that served HTTP (the cache is empty otherwise).
    """
    yield
    cache = web_app._cached_build_middleware
    if cache.cache_info().currsize:
        cache.cache_clear()
        gc.collect()


@pytest.fixture
async def app(config: Config) -> AsyncIterator[KefuApp]:
    async with KefuApp(config, channels=["webhook"], serve_http=True) as running:
        yield running


ENGINES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_engines: run the test on SQLite and on PostgreSQL (the `storage` fixture)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "storage" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("storage", ENGINES, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole session (tests/postgres_server.py)."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty database of the test's own on the session's PostgreSQL, dropped afterwards."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the test's store lives: a SQLite file in its folder, or (tests marked both_engines, their
    second run) a PostgreSQL database of its own."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("postgres_url")
    return tmp_path / "kefu.db"


@pytest.fixture
async def store(storage: Path | str) -> AsyncIterator[Store]:
    """A real, empty store (`storage`), closed afterwards."""
    opened = Store(storage)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def url(app: KefuApp) -> Callable[[str], str]:
    assert app.http is not None
    return lambda path: app.http.base_url + path


@asynccontextmanager
async def loopback_server(routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
                          ) -> AsyncIterator[str]:
    """A real aiohttp server on 127.0.0.1 with POST `routes` (a stand-in for a merchant's system); yields its base URL."""
    server = web.Application()
    for path, handler in routes.items():
        server.router.add_post(path, handler)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Wait for an event (a stored row, a log line), polling; the generous timeout only bounds a hang."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def ask(app: KefuApp, text: str, conversation: str = "c1") -> dict:
    """The reply to one webhook message, as the shop's site gets it."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{app.http.base_url}/v1/messages", json={"conversation_id": conversation,
                                                                          "text": text},
                                headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["reply"]


def stored_meta(app: KefuApp, reply: dict) -> dict:
    """The trace kefu stored with a reply."""
    with sqlite3.connect(app.config.storage.database) as db:
        return json.loads(db.execute("SELECT meta FROM messages WHERE id = ?", [reply["message_id"]]).fetchone()[0])
