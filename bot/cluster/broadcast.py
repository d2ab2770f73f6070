"""Telling every worker that something happened: PostgreSQL LISTEN/NOTIFY, or this process alone.

Topics are short names ("changes": something was committed, so the console's live views refresh;
"web_chat": a visitor's reply is stored, so the worker holding their stream sends it now). A
subscriber runs on the event loop for this worker's own publications at once and, with several
workers, for the others' when PostgreSQL passes them on. Publications of one topic and payload
are coalesced while one is on its way, so a burst of commits sends one notification.

Nothing depends on a notification arriving: the console and the widget also re-read on their
keepalive (15 s), so a listener that lost its connection (it reconnects) only slows views down.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable

log = logging.getLogger(__name__)

CHANNEL = "kefu"
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)
SEND_EVERY_SECONDS = 0.05  # at most this often per topic and payload


class Broadcast:
    def __init__(self, url: str | None, *, worker: str):
        self._url = url  # None: the only worker; publications stay in this process
        self._worker = worker
        self._subscribers: dict[str, list[Callable[[str], None]]] = defaultdict(list)
        self._outgoing: set[tuple[str, str]] = set()
        self._queued = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()  # set while the LISTEN connection is up (tests wait on it)

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        self._subscribers[topic].append(callback)

    def publish(self, topic: str, payload: str = "") -> None:
        """Tell this worker's subscribers now and, with several workers, every other worker soon."""
        self._deliver(topic, payload)
        if self._url is not None:
            self._outgoing.add((topic, payload))
            self._queued.set()

    def _deliver(self, topic: str, payload: str) -> None:
        for callback in self._subscribers.get(topic, ()):
            callback(payload)

    async def start(self) -> None:
        if self._url is not None:
            self._tasks = [asyncio.create_task(self._listen(), name="kefu-broadcast-listen"),
                           asyncio.create_task(self._send(), name="kefu-broadcast-send")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _connect(self):  # noqa: ANN202 (a psycopg.AsyncConnection; psycopg is imported only here)
        import psycopg

        return await psycopg.AsyncConnection.connect(self._url, autocommit=True)

    async def _listen(self) -> None:
        import psycopg

        failures = 0
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    failures = 0
                    async for note in conn.notifies():
                        self._received(note.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                pause = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("broadcast.listen_lost error=%s: %s (again in %.1fs; views refresh on their "
                            "keepalive meanwhile)", type(exc).__name__, exc, pause)
                await asyncio.sleep(pause)

    def _received(self, text: str) -> None:
        try:
            note = json.loads(text)
            worker, topic, payload = note["w"], note["t"], note["p"]
        except (ValueError, KeyError, TypeError):
            log.warning("broadcast.unreadable length=%d", len(text))
            return
        if worker != self._worker:  # this worker's own were delivered when published
            self._deliver(topic, payload)

    async def _send(self) -> None:
        import psycopg

        conn = None
        try:
            while True:
                await self._queued.wait()
                self._queued.clear()
                batch, self._outgoing = self._outgoing, set()
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect()
                    for topic, payload in sorted(batch):
                        text = json.dumps({"w": self._worker, "t": topic, "p": payload}, ensure_ascii=False)
                        await conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, text])
                except psycopg.Error as exc:
                    log.warning("broadcast.send_failed count=%d error=%s: %s", len(batch), type(exc).__name__, exc)
                    conn = None
                    await asyncio.sleep(RECONNECT_SECONDS[-1] / 5)
                await asyncio.sleep(SEND_EVERY_SECONDS)
        finally:
            if conn is not None:
                await conn.close()
