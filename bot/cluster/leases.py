"""Leases: which worker works on what, when several kefu workers share one database.

A lease is a row (name, holder, expires_at). Taking one is a single upsert that succeeds only
when the row is free, lapsed, or already ours; a background task renews every lease a worker
holds a few times per lease period. A worker that dies (kill -9, a lost machine) renews nothing,
so its leases lapse within `seconds` and another worker takes the work over. A worker that
cannot renew (the database unreachable, the process stalled) stops treating its leases as held
once they may have lapsed, so two workers never both act on one name.

Times are the workers' clocks (Unix seconds): keep them in step (NTP); a skew well under the
lease period (15 s) is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from bot.errors import KefuError
from bot.store import Database, Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
RENEWALS_PER_LEASE = 3


def new_worker_id() -> str:
    """This process's name in leases and logs: host, pid and a random tail (pids repeat after restarts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def _acquire(db: Database, name: str, holder: str, now: float, until: float) -> bool:
    db.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
        "WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
        [name, holder, until, now])
    row = db.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
    return row is not None and row[0] == holder


def _release(db: Database, names: list[str], holder: str) -> None:
    for name in names:
        db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])


def _renew(db: Database, holder: str, until: float) -> set[str]:
    """Push every lease `holder` has out to `until`; the names it still has."""
    return {row[0] for row in db.execute("UPDATE leases SET expires_at = ? WHERE holder = ? RETURNING name",
                                         [until, holder])}


class Leases:
    """This worker's leases: take, check, give back; renewed in the background while it runs."""

    def __init__(self, store: Store, *, worker: str, seconds: float = LEASE_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.worker = worker
        self.seconds = seconds
        self._store = store
        self._clock = clock
        self._held: set[str] = set()
        self._sure_until = 0.0  # until when every lease in _held is certainly still ours
        self._task: asyncio.Task[None] | None = None

    async def acquire(self, name: str) -> bool:
        now = self._clock()
        until = now + self.seconds
        if not await self._store.write(_acquire, name, self.worker, now, until):
            return False
        if not self._held:
            self._sure_until = until
        self._held.add(name)
        return True

    def holds(self, name: str) -> bool:
        """Whether this worker may still act on `name` (False once a renewal failed long enough)."""
        return name in self._held and self._clock() < self._sure_until

    async def release(self, name: str) -> None:
        self._held.discard(name)
        await self._store.write(_release, [name], self.worker)

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_renewed(), name="kefu-leases")

    async def stop(self) -> None:
        """Stop renewing and give back what is held, so another worker takes it over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        held, self._held = sorted(self._held), set()
        if held:
            try:
                await self._store.write(_release, held, self.worker)
            except KefuError as exc:  # they lapse on their own within the lease period
                log.warning("leases.release_failed count=%d error=%s", len(held), exc)

    async def _keep_renewed(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / RENEWALS_PER_LEASE)
            await self.renew()

    async def renew(self) -> None:
        started = self._clock()
        until = started + self.seconds
        renewing = set(self._held)  # one taken while this runs is not in `kept`, yet ours
        try:
            kept = await self._store.write(_renew, self.worker, until)
        except Exception as exc:  # the database is unreachable: the leases may lapse; holds() says so in time
            log.warning("leases.renew_failed held=%d error=%s: %s", len(self._held), type(exc).__name__, exc)
            return
        lost = renewing - kept
        if lost:
            log.warning("leases.lost count=%d first=%s (another worker took them after they lapsed)", len(lost),
                        sorted(lost)[0])
        self._held -= lost
        self._sure_until = started + self.seconds  # measured from before the write: never overstated
