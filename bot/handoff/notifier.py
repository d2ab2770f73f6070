"""Tells human agents about handoffs, through pluggable notifiers fed from a durable outbox.

A notification is queued in the same transaction as the handoff it reports; a
worker per notifier sends what is queued, retries with backoff, and resumes
after a restart, so a helpdesk that is down for a while still hears of every
handoff. A notification that keeps failing is marked failed (never deleted)
and logged as an error.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from bot.cluster.claims import ClaimWindow
from bot.config import NotifyConfig
from bot.errors import DeliveryError
from bot.handoff.store import HandoffStore
from bot.messages import DeliveryPolicy, utc_now
from bot.metrics import Metrics
from bot.retry import RetryLoop, earlier, next_attempt
from bot.signing import post_signed

log = logging.getLogger(__name__)

NOTIFICATION_HEADER = "X-Kefu-Notification"


class Notifier(Protocol):
    """Sends one agent notification; raises DeliveryError (permanent or not) when it cannot."""

    name: str
    policy: DeliveryPolicy

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, notification_id: int, event: str, payload: dict[str, Any]) -> None: ...


class HttpCallbackNotifier:
    """POSTs `{"event": ..., **payload}` to the merchant's helpdesk, signed like the webhook channel."""

    name = "http"

    def __init__(self, config: NotifyConfig):
        self._config = config
        self.policy = DeliveryPolicy(max_attempts=config.max_attempts, backoff_seconds=config.backoff_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, notification_id: int, event: str, payload: dict[str, Any]) -> None:
        if self._session is None:
            raise DeliveryError("the HTTP notifier is not started")
        body = json.dumps({"event": event, **payload}, ensure_ascii=False, default=str).encode()
        # The id lets the receiver drop a repeat (delivery is at least once).
        await post_signed(self._session, self._config.url, self._config.secret, body,
                          {NOTIFICATION_HEADER: str(notification_id)}, version=self._config.signature_version)


class NotificationWorker:
    """One per notifier: sends its queued notifications in order, with backoff on failure."""

    def __init__(self, *, records: HandoffStore, notifier: Notifier, metrics: Metrics | None = None,
                 worker: str | None = None):
        self._worker = worker  # this worker's id when several share the store; None: the only one
        self._records = records
        self._notifier = notifier
        self._metrics = metrics
        self._loop = RetryLoop(f"kefu-notify-{notifier.name}", self.send_pending, notifier.policy)

    @property
    def name(self) -> str:
        return self._notifier.name

    async def start(self) -> None:
        await self._notifier.start()
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._notifier.stop()

    async def send_pending(self) -> datetime | None:
        """Send what is due, oldest first; return when the next retry is due (None: nothing waits)."""
        next_due: datetime | None = None
        window = None
        if self._worker is None:
            due_now = await self._records.pending_notifications(self._notifier.name)
        else:
            window = ClaimWindow()
            due_now = await self._records.claim_notifications(self._notifier.name, self._worker, window.now,
                                                              window.until)
            next_due = window.next_look()
        for item in due_now:
            if window is not None and window.running_out():
                return utc_now()
            if item.next_attempt_at is not None:
                due = datetime.fromisoformat(item.next_attempt_at)
                if due > utc_now():
                    next_due = earlier(next_due, due)
                    continue
            try:
                await self._notifier.send(item.id, item.event, item.payload)
            except DeliveryError as exc:
                attempts = item.attempts + 1
                retry_at = next_attempt(exc, attempts, self._notifier.policy)
                await self._records.mark_notification_failed(item.id, str(exc), retry_at)
                if self._metrics is not None:  # labelled with the notifier ("http", "telegram"): that is what failed
                    self._metrics.error(self._notifier.name, "notification")
                if retry_at is None:
                    log.error("notify.gave_up notifier=%s notification=%d conversation=%s attempts=%d error=%s",
                              self._notifier.name, item.id, item.conversation_key, attempts, exc)
                else:
                    log.warning("notify.retry_later notifier=%s notification=%d attempts=%d at=%s error=%s",
                                self._notifier.name, item.id, attempts, retry_at, exc)
                    next_due = earlier(next_due, retry_at)
                continue
            await self._records.mark_notification_sent(item.id)
            log.info("notify.sent notifier=%s notification=%d event=%s", self._notifier.name, item.id, item.event)
        return next_due
