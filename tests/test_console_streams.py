"""Open console event streams are cheap: one change costs one queue read, however many streams are open.

Real kefu on 127.0.0.1, real Server-Sent Events connections signed in over HTTP like a browser.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from conftest import write_config

from adapters.web_console.snapshots import VersionedSnapshot
from bot.app import KefuApp
from bot.config import load_config
from bot.messages import Message
from bot.passwords import hash_password

STREAMS = 25
PASSWORD = "alice-secret-1"


@pytest.fixture
async def console_app(tmp_path) -> AsyncIterator[KefuApp]:
    users = f'\n[[console.users]]\nname = "alice"\npassword_hash = "{hash_password(PASSWORD)}"\n'
    path = write_config(tmp_path, extra=f"[console]\nenabled = true\n{users}",
                        handoff="enabled = true\nagent_wait_seconds = 3600")
    async with KefuApp(load_config(path, environ={}), channels=["webhook", "web_console"], serve_http=True) as app:
        yield app


async def signed_in(base: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),  # unsafe: an IP host
                                    connector=aiohttp.TCPConnector(limit=STREAMS + 5))
    async with session.get(f"{base}/console") as page:
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    form = {"csrf": token, "name": "alice", "password": PASSWORD, "next": "console"}
    async with session.post(f"{base}/console/sign-in", data=form, allow_redirects=False) as response:
        assert response.status == 303
    return session


class Stream:
    """One open GET /console/api/events, read event by event."""

    def __init__(self, response: aiohttp.ClientResponse):
        self.response = response

    async def next_event(self, name: str) -> dict:
        event = None
        while True:
            line = (await asyncio.wait_for(self.response.content.readline(), 30)).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == name:
                return json.loads(line.removeprefix("data: "))


async def test_one_change_is_one_queue_read_for_every_open_stream(console_app):
    app = console_app
    base = app.http.base_url
    await app.handle(Message(channel="webhook", conversation="s-1", user_id="s-1", text="human please",
                             external_id="1"))
    session = await signed_in(base)
    try:
        streams = [Stream(await session.get(f"{base}/console/api/events")) for _ in range(STREAMS)]
        for stream in streams:
            first = await stream.next_event("queue")
            assert [(h["conversation"], h["state"]) for h in first["handoffs"]] == [("s-1", "waiting_agent")]
            await stream.next_event("change")

        reads = 0
        handoffs = app.handoffs

        async def counted(states):
            nonlocal reads
            reads += 1
            return await handoffs(states)

        app.handoffs = counted  # the console's backend is the app: count what the streams ask of it
        await app.claim("webhook", "s-1", "alice")  # one change: one committed write
        for stream in streams:
            queue = await stream.next_event("queue")
            assert [(h["conversation"], h["state"], h["agent"]) for h in queue["handoffs"]] == [
                ("s-1", "agent", "alice")]
        assert reads == 1
    finally:
        await session.close()


async def test_a_snapshot_is_read_again_after_a_change_and_survives_a_waiter_leaving():
    version = 0
    reads = 0
    gate = asyncio.Event()

    async def read() -> str:
        nonlocal reads
        reads += 1
        await gate.wait()
        return f"queue at {version}"

    snapshot = VersionedSnapshot(read, lambda: version)
    leaving = asyncio.create_task(snapshot.get())
    staying = asyncio.create_task(snapshot.get())
    await asyncio.sleep(0)
    leaving.cancel()  # one tab closes while the read is under way
    gate.set()
    assert await staying == "queue at 0" and reads == 1
    assert await snapshot.get() == "queue at 0" and reads == 1  # cached for this version
    version = 1
    assert await snapshot.get() == "queue at 1" and reads == 2
