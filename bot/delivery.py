"""Pushes stored replies through channels that deliver asynchronously, until they arrive.

A reply for such a channel is stored as a pending delivery in the same
transaction as the reply itself, so a crash between "stored" and "sent" is
repaired at the next start: the worker sends every pending delivery, in order
per conversation, with exponential backoff between failed attempts.

With several kefu workers on one database (`worker` set), each pass first claims the
replies it sends (Store.claim_deliveries), so exactly one worker sends each and a
conversation's replies keep their order; a dead worker's claims lapse and another
worker's next pass sends what it left.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from bot.cluster.claims import ClaimWindow
from bot.errors import DeliveryError
from bot.messages import Channel, DeliveryPolicy, Reply, utc_now
from bot.metrics import DeliveryResult, Metrics
from bot.retry import RetryLoop, earlier, next_attempt
from bot.store import Store

log = logging.getLogger(__name__)


class DeliveryWorker:
    """One per push channel; owns one background loop."""

    def __init__(self, *, store: Store, channel: Channel, policy: DeliveryPolicy, metrics: Metrics | None = None,
                 worker: str | None = None):
        self._store = store
        self._worker = worker  # this worker's id when several share the store; None: the only one
        self._channel = channel
        self._policy = policy
        self._metrics = metrics
        self._loop = RetryLoop(f"kefu-delivery-{channel.name}", self.deliver_pending, policy)

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    async def stop(self) -> None:
        await self._loop.stop()

    async def deliver_pending(self) -> datetime | None:
        """Send what is due; return when the next retry is due (None: nothing waits)."""
        blocked: set[str] = set()  # conversations with an earlier undelivered reply keep their order
        next_due: datetime | None = None
        window = None
        if self._worker is None:
            due_now = await self._store.pending_deliveries(self._channel.name)
        else:
            window = ClaimWindow()
            due_now = await self._store.claim_deliveries(self._channel.name, self._worker, window.now, window.until)
            next_due = window.next_look()
        for pending in due_now:
            if window is not None and window.running_out():
                next_due = utc_now()
                break
            reply = pending.reply
            key = reply.conversation_key
            if key in blocked or not self._serves(reply):
                continue
            if pending.next_attempt_at is not None:
                due = datetime.fromisoformat(pending.next_attempt_at)
                if due > utc_now():
                    blocked.add(key)
                    next_due = earlier(next_due, due)
                    continue
            try:
                await self._channel.deliver(reply)
            except DeliveryError as exc:
                if exc.held:
                    await self._store.mark_delivery_held(reply.message_id, str(exc))
                    log.warning("delivery.held channel=%s message=%s reason=%s", self._channel.name,
                                reply.message_id, exc)
                    self._count("failed")
                    blocked.add(key)
                    continue
                attempts = pending.attempts + 1
                retry_at = next_attempt(exc, attempts, self._policy)
                await self._store.mark_delivery_failed(reply.message_id, str(exc), retry_at)
                self._count("failed" if retry_at is None else "retry")
                blocked.add(key)
                if retry_at is None:
                    log.error("delivery.gave_up channel=%s message=%s attempts=%d error=%s",
                              self._channel.name, reply.message_id, attempts, exc)
                else:
                    log.warning("delivery.retry_later channel=%s message=%s attempts=%d at=%s error=%s",
                                self._channel.name, reply.message_id, attempts, retry_at, exc)
                    next_due = earlier(next_due, retry_at)
                continue
            # Shielded: a shutdown cancelling this pass must not drop the mark of a reply already sent (its
            # write would be cancelled while still queued for the writer), or the next start sends it again.
            await asyncio.shield(self._store.mark_delivered(reply.message_id))
            self._count("sent")
        if self._policy.poll_seconds is not None:  # another process may queue replies without waking us
            next_due = earlier(next_due, utc_now() + timedelta(seconds=self._policy.poll_seconds))
        return next_due

    def _serves(self, reply: Reply) -> bool:
        """A channel serving one conversation leaves the others' replies pending, untouched, for their turn."""
        return self._policy.conversation is None or reply.conversation == self._policy.conversation

    def _count(self, result: DeliveryResult) -> None:
        if self._metrics is not None:
            self._metrics.delivery(self._channel.name, result)
