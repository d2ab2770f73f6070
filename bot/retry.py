"""The background loop shared by everything kefu retries: reply deliveries and agent notifications.

A worker runs one pass whenever it is woken (something new was stored) or when the
earliest retry the last pass asked for is due, and polls now and then in case a wake
was missed. A failed attempt waits `backoff` seconds, doubled each time, at most an hour.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.errors import DeliveryError
from bot.messages import DeliveryPolicy, utc_now

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0
IDLE_POLL_SECONDS = 60.0


def retry_time(attempts: int, policy: DeliveryPolicy) -> datetime:
    """When to try again after `attempts` failed attempts."""
    delay = min(MAX_BACKOFF_SECONDS, policy.backoff_seconds * 2 ** max(0, attempts - 1))
    return utc_now() + timedelta(seconds=delay)


def next_attempt(error: DeliveryError, attempts: int, policy: DeliveryPolicy) -> datetime | None:
    """When to retry after this failure (`attempts` made so far), or None to give up."""
    if error.permanent or attempts >= policy.max_attempts:
        return None
    if error.retry_after is not None:
        return utc_now() + timedelta(seconds=error.retry_after)
    return retry_time(attempts, policy)


def earlier(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


class RetryLoop:
    """Owns one background task that calls `run_pass` (which returns when the next retry is due)."""

    def __init__(self, name: str, run_pass: Callable[[], Awaitable[datetime | None]], policy: DeliveryPolicy):
        self._name = name
        self._run_pass = run_pass
        self._policy = policy
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                next_due = await self._run_pass()
            except Exception:  # the loop must outlive a bad pass; the rows stay pending
                log.exception("retry.pass_failed worker=%s", self._name)
                next_due = utc_now() + timedelta(seconds=self._policy.backoff_seconds or 1.0)
            timeout = IDLE_POLL_SECONDS
            if next_due is not None:
                timeout = max(0.0, min(timeout, (next_due - utc_now()).total_seconds()))
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
            except TimeoutError:
                pass
