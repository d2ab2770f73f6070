"""Who is signed in to the web console, and how often a sign-in may fail: kept in the store.

Every worker of a shop reads the same sessions and counts the same failures, so an agent sent
to another worker by the load balancer stays signed in, a restart signs nobody out, and the
limit holds however the guesses are spread over workers.

The cookie holds a random token; the store keeps only its SHA-256, so a leaked backup or log line
cannot be replayed as a cookie. Each session carries its own CSRF token, sent back by the page
in a header on every change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.client_address import limit_key
from bot.store import Database, Store

MAX_SESSIONS_PER_USER = 20  # signing in on a 21st browser signs the oldest one out
SEEN_EVERY_SECONDS = 60.0  # a session's last activity is written at most this often (idle expiry is in hours)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    user: str
    csrf_token: str
    created_at: float
    last_seen: float

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


class ConsoleAccess:
    """Sessions that expire after `idle_seconds` without a request; at most `attempts` sign-ins that are not
    successes per client address and per user name within `window_seconds`.

    An attempt is counted when it arrives, before the slow password check, and forgotten only if it
    succeeds: otherwise 40 guesses sent at once would all be checked before the first failure was
    recorded. Counting both keys stops one address guessing many names and many addresses guessing
    one name; a success clears that name's failures.
    """

    def __init__(self, store: Store, *, idle_seconds: float, attempts: int, window_seconds: float,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._idle = idle_seconds
        self._attempts = attempts
        self._window = window_seconds
        self._clock = clock

    # -- sessions ------------------------------------------------------------------

    async def open_session(self, user: str) -> tuple[str, ConsoleSession]:
        """A new session for `user`: the cookie token (shown once) and the session."""
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(user=user, csrf_token=secrets.token_urlsafe(32), created_at=self._clock(),
                                 last_seen=self._clock())
        await self._store.write(_open_session, _digest(token), session, self._idle)
        return token, session

    async def session(self, token: str | None) -> ConsoleSession | None:
        """The live session for a cookie token (its idle clock restarts), or None."""
        if not token:
            return None
        digest = _digest(token)
        now = self._clock()
        session = await self._store.read(_session, digest)
        if session is None or now - session.last_seen > self._idle:
            return None
        if now - session.last_seen > SEEN_EVERY_SECONDS:
            await self._store.write(_seen, digest, now)
        return session

    async def close_session(self, token: str | None) -> None:
        if token:
            await self._store.write(_close_session, _digest(token))

    # -- the sign-in limit -----------------------------------------------------------

    async def begin_sign_in(self, address: str, name: str) -> int | float:
        """Count an attempt and return its id, or the seconds to wait (a float) when either limit is reached."""
        return await self._store.write(_begin_sign_in, *_keys(address, name), self._clock(), self._attempts,
                                       self._window)

    async def retry_after(self, address: str, name: str) -> float:
        """Seconds until another try is allowed; 0 when it is allowed now."""
        return await self._store.read(_retry_after, *_keys(address, name), self._clock(), self._attempts,
                                      self._window)

    async def sign_in_succeeded(self, attempt: int) -> None:
        """The password was right: the name's failures are cleared and this attempt uncounted."""
        await self._store.write(_succeeded, attempt)


def _keys(address: str, name: str) -> tuple[str, str]:
    """The two counters an attempt counts against, hashed: whatever a sign-in form sends (a name with a lone
    surrogate, 64 emoji) is stored as 64 hex digits, and the table names no one. An IPv6 address counts
    by its /64 (bot/client_address): one customer's whole network, not one of its 2**64 addresses."""
    return (_hashed(f"address:{limit_key(address)}"), _hashed(f"name:{name.casefold()}"))


def _hashed(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _open_session(db: Database, digest: str, session: ConsoleSession, idle: float) -> None:
    db.execute("DELETE FROM console_sessions WHERE last_seen < ?", [session.created_at - idle])
    db.execute("INSERT INTO console_sessions (digest, user_name, csrf_token, created_at, last_seen) "
               "VALUES (?, ?, ?, ?, ?)",
               [digest, session.user, session.csrf_token, session.created_at, session.last_seen])
    db.execute("DELETE FROM console_sessions WHERE user_name = ? AND digest NOT IN (SELECT digest FROM "
               "console_sessions WHERE user_name = ? ORDER BY created_at DESC LIMIT ?)",
               [session.user, session.user, MAX_SESSIONS_PER_USER])


def _session(db: Database, digest: str) -> ConsoleSession | None:
    row = db.execute("SELECT user_name, csrf_token, created_at, last_seen FROM console_sessions WHERE digest = ?",
                     [digest]).fetchone()
    return ConsoleSession(row[0], row[1], row[2], row[3]) if row else None


def _seen(db: Database, digest: str, now: float) -> None:
    db.execute("UPDATE console_sessions SET last_seen = ? WHERE digest = ?", [now, digest])


def _close_session(db: Database, digest: str) -> None:
    db.execute("DELETE FROM console_sessions WHERE digest = ?", [digest])


def _retry_after(db: Database, address_key: str, name_key: str, now: float, attempts: int, window: float) -> float:
    waits = [0.0]
    for column, key in (("address_key", address_key), ("name_key", name_key)):
        recent = db.execute(f"SELECT at FROM sign_in_attempts WHERE {column} = ? AND at > ? ORDER BY at",
                            [key, now - window]).fetchall()
        if len(recent) >= attempts:
            waits.append(recent[0][0] + window - now)
    return max(waits)


def _begin_sign_in(db: Database, address_key: str, name_key: str, now: float, attempts: int,
                   window: float) -> int | float:
    db.execute("DELETE FROM sign_in_attempts WHERE at <= ?", [now - window])
    wait = _retry_after(db, address_key, name_key, now, attempts, window)
    if wait > 0:
        return float(wait)
    return int(db.execute("INSERT INTO sign_in_attempts (address_key, name_key, at) VALUES (?, ?, ?) RETURNING id",
                          [address_key, name_key, now]).fetchone()[0])


def _succeeded(db: Database, attempt: int) -> None:
    row = db.execute("SELECT name_key FROM sign_in_attempts WHERE id = ?", [attempt]).fetchone()
    if row is None:
        return
    db.execute("DELETE FROM sign_in_attempts WHERE id = ?", [attempt])
    # The name's failures no longer count against it; against their addresses they still do.
    db.execute("UPDATE sign_in_attempts SET name_key = NULL WHERE name_key = ?", [row[0]])
