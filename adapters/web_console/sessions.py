"""Who is signed in to the web console, and how often a sign-in may fail.

Sessions live in memory: the cookie holds a random token, the server keeps only
its SHA-256, so a leaked process dump or log line cannot be replayed as a
cookie. Restarting kefu signs everyone out (the README says so). Each session
carries its own CSRF token, sent back by the page in a header on every change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.config import ConsoleUser

MAX_SESSIONS_PER_USER = 20  # signing in on a 21st browser signs the oldest one out


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    user: ConsoleUser
    csrf_token: str
    created_at: float
    last_seen: float

    def has_role(self, role: str) -> bool:
        return role in self.user.roles

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


@dataclass
class SessionBook:
    """Signed-in browsers by token digest; a session expires after `idle_seconds` without a request."""

    idle_seconds: float
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)

    def open(self, user: ConsoleUser) -> tuple[str, Session]:
        """A new session for `user`: the cookie token (shown once) and the session."""
        self._forget_expired()
        mine = sorted((s.created_at, digest) for digest, s in self._sessions.items() if s.user.name == user.name)
        for _, digest in mine[: max(0, len(mine) - MAX_SESSIONS_PER_USER + 1)]:
            del self._sessions[digest]
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(user=user, csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen=now)
        self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie token (its idle clock restarts), or None."""
        if not token:
            return None
        digest = _digest(token)
        session = self._sessions.get(digest)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_seconds:
            del self._sessions[digest]
            return None
        session.last_seen = now
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    def _forget_expired(self) -> None:
        now = self.clock()
        for digest in [d for d, s in self._sessions.items() if now - s.last_seen > self.idle_seconds]:
            del self._sessions[digest]


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt already counted against the limits, kept until its password check ends."""

    address: str
    name: str
    at: float


@dataclass
class SignInLimiter:
    """At most `attempts` sign-ins that are not successes per client address and per user name
    within `window_seconds`.

    An attempt is counted when it arrives, before the slow password check, and forgotten only
    if it succeeds: otherwise 40 guesses sent at once would all be checked before the first
    failure was recorded. Counting both keys stops one address guessing many names and many
    addresses guessing one name; a success clears that name's failures.
    """

    attempts: int
    window_seconds: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def begin(self, address: str, name: str) -> Attempt | float:
        """Count an attempt and return it, or the seconds to wait when either limit is reached."""
        wait = self.retry_after(address, name)
        if wait > 0:
            return wait
        attempt = Attempt(address=address, name=name, at=self.clock())
        for key in _keys(address, name):
            self._failures.setdefault(key, deque()).append(attempt.at)
        return attempt

    def retry_after(self, address: str, name: str) -> float:
        """Seconds until another try is allowed; 0 when it is allowed now."""
        now = self.clock()
        waits = [0.0]
        for key in _keys(address, name):
            failures = self._recent(key, now)
            if len(failures) >= self.attempts:
                waits.append(failures[0] + self.window_seconds - now)
        return max(waits)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the name's failures are cleared and this attempt uncounted."""
        self._failures.pop(_keys(attempt.address, attempt.name)[1], None)
        failures = self._failures.get(_keys(attempt.address, attempt.name)[0])
        if failures is not None and attempt.at in failures:
            failures.remove(attempt.at)

    def _recent(self, key: str, now: float) -> deque[float]:
        """The failures still inside the window; keys with none are dropped so the dict stays small."""
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and now - failures[0] > self.window_seconds:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures


def _keys(address: str, name: str) -> tuple[str, str]:
    return f"address:{address}", f"name:{name.casefold()}"
