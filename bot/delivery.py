"""Pushes stored replies through channels that deliver asynchronously, until they arrive.

A reply for such a channel is stored as a pending delivery in the same
transaction as the reply itself, so a crash between "stored" and "sent" is
repaired at the next start: the worker sends every pending delivery, in order
per conversation, with exponential backoff between failed attempts.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from bot.errors import DeliveryError
from bot.messages import Channel, DeliveryPolicy, utc_now
from bot.store import Store

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0
IDLE_POLL_SECONDS = 60.0


def retry_time(attempts: int, policy: DeliveryPolicy) -> datetime:
    """When to try again after `attempts` failed attempts."""
    delay = min(MAX_BACKOFF_SECONDS, policy.backoff_seconds * 2 ** max(0, attempts - 1))
    return utc_now() + timedelta(seconds=delay)


class DeliveryWorker:
    """One per push channel; owns one background task."""

    def __init__(self, *, store: Store, channel: Channel, policy: DeliveryPolicy):
        self._store = store
        self._channel = channel
        self._policy = policy
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"kefu-delivery-{self._channel.name}")

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
                next_due = await self.deliver_pending()
            except Exception:  # the loop must outlive a bad pass; the rows stay pending
                log.exception("delivery.pass_failed channel=%s", self._channel.name)
                next_due = utc_now() + timedelta(seconds=self._policy.backoff_seconds or 1.0)
            timeout = IDLE_POLL_SECONDS
            if next_due is not None:
                timeout = max(0.0, min(timeout, (next_due - utc_now()).total_seconds()))
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
            except TimeoutError:
                pass

    async def deliver_pending(self) -> datetime | None:
        """Send what is due; return when the next retry is due (None: nothing waits)."""
        blocked: set[str] = set()  # conversations with an earlier undelivered reply keep their order
        next_due: datetime | None = None
        for pending in await self._store.pending_deliveries(self._channel.name):
            reply = pending.reply
            key = reply.conversation_key
            if key in blocked:
                continue
            if pending.next_attempt_at is not None:
                due = datetime.fromisoformat(pending.next_attempt_at)
                if due > utc_now():
                    blocked.add(key)
                    next_due = due if next_due is None else min(next_due, due)
                    continue
            try:
                await self._channel.deliver(reply)
            except DeliveryError as exc:
                attempts = pending.attempts + 1
                give_up = exc.permanent or attempts >= self._policy.max_attempts
                retry_at = None if give_up else retry_time(attempts, self._policy)
                await self._store.mark_delivery_failed(reply.message_id, str(exc), retry_at)
                blocked.add(key)
                if give_up:
                    log.error("delivery.gave_up channel=%s message=%s attempts=%d error=%s",
                              self._channel.name, reply.message_id, attempts, exc)
                else:
                    log.warning("delivery.retry_later channel=%s message=%s attempts=%d at=%s error=%s",
                                self._channel.name, reply.message_id, attempts, retry_at, exc)
                    next_due = retry_at if next_due is None else min(next_due, retry_at)
                continue
            await self._store.mark_delivered(reply.message_id)
        return next_due
