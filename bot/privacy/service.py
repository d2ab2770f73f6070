"""The privacy requests as the app, the agent API, the console and the CLI make them.

Every read and write runs on the store's threads (`Store.read` / `Store.write`), and the WAL is
truncated after an erasure or a purge, so deleted text is not left in the log file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.messages import utc_now
from bot.privacy import audit
from bot.privacy.erase import checkpoint, erase_subject, secure_delete_on
from bot.privacy.export import export_subject
from bot.privacy.retention import BATCH, count_candidates, purge_batch
from bot.privacy.subject import Subject
from bot.store import Store

log = logging.getLogger(__name__)

CHECKPOINT_TRIES = 5
FIRST_PURGE_DELAY_SECONDS = 5.0


class PrivacyService:
    """Export, erase, purge and the audit log over one store; owns the retention task when `retain_days` is set."""

    def __init__(self, store: Store, *, retain_days: int = 0, interval_seconds: float = 3600.0,
                 batch: int = BATCH, on_erase: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] = utc_now):
        self._store = store
        self._retain = timedelta(days=retain_days) if retain_days > 0 else None
        self._interval = interval_seconds
        self._batch = batch
        self._on_erase = on_erase  # in-memory views that may hold erased text drop it (none cache any today)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        """After the store opens: the writer zeroes what it deletes from now on."""
        await self._store.maintain(secure_delete_on)

    # -- requests ----------------------------------------------------------------

    async def export(self, subject: Subject, *, actor: str) -> dict[str, Any]:
        document = await self._store.read(export_subject, subject)
        await self._store.write(lambda db: audit.record_subject(db, subject, actor=actor, action="export",
                                                                counts=document["counts"]))
        log.info("privacy.exported kind=%s channel=%s actor=%s conversations=%d messages=%d", subject.kind,
                 subject.channel, actor, document["counts"]["conversations"], document["counts"]["messages"])
        return document

    async def erase(self, subject: Subject, *, actor: str, force: bool = False) -> dict[str, Any]:
        """Raises ConversationNotFoundError, or HandoffConflictError for a live conversation unless `force`."""
        counts = await self._store.write(erase_subject, subject, actor, force)
        scrubbed = await self._scrub()
        log.info("privacy.erased kind=%s channel=%s actor=%s conversations=%d messages=%d forced=%d", subject.kind,
                 subject.channel, actor, counts.get("conversations", 0), counts.get("messages", 0),
                 counts.get("forced", 0))
        return {"erased": counts, "wal_truncated": scrubbed}

    async def purge(self, older_than: timedelta, *, actor: str, dry_run: bool = False) -> dict[str, Any]:
        """Delete conversations idle longer than `older_than`, one batch per transaction."""
        cutoff = self._clock() - older_than
        if dry_run:
            return {"cutoff": cutoff.isoformat(), "would_purge": await self._store.read(count_candidates, cutoff)}
        totals: dict[str, int] = {}
        while True:
            counts = await self._store.write(purge_batch, cutoff, actor, self._batch)
            for name, value in counts.items():
                totals[name] = totals.get(name, 0) + value
            if counts["conversations"] < self._batch:
                break
            await asyncio.sleep(0)  # let turns and agents' writes in between batches
        scrubbed = await self._scrub() if totals.get("conversations") else True
        if totals.get("conversations"):
            log.info("privacy.purged actor=%s cutoff=%s conversations=%d messages=%d", actor,
                     cutoff.isoformat(timespec="seconds"), totals["conversations"], totals.get("messages", 0))
        return {"cutoff": cutoff.isoformat(), "purged": totals, "wal_truncated": scrubbed}

    async def audit(self, *, limit: int = 100, subject: Subject | None = None,
                    before: int | None = None) -> list[audit.AuditEntry]:
        return await self._store.read(lambda db: audit.entries(db, limit=limit, subject=subject, before=before))

    async def record_action(self, actor: str, action: str, conversation_key: str,
                            counts: Mapping[str, int] | None = None) -> None:
        """An agent's claim, reply, release or close (the Desk calls this after the action committed)."""
        await self._store.write(lambda db: audit.record_conversation(db, conversation_key, actor=actor,
                                                                     action=action, counts=counts))

    async def _scrub(self) -> bool:
        if self._on_erase is not None:
            self._on_erase()
        for attempt in range(CHECKPOINT_TRIES):
            if await self._store.maintain(checkpoint):
                return True
            await asyncio.sleep(0.1 * (attempt + 1))  # a reader (perhaps another process) still uses the WAL
        log.warning("privacy.wal_busy the WAL could not be truncated now; SQLite overwrites it at a later "
                    "checkpoint")
        return False

    # -- retention ---------------------------------------------------------------

    def start(self) -> None:
        if self._retain is not None and self._task is None:
            self._task = asyncio.create_task(self._retention(), name="kefu-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _retention(self) -> None:
        assert self._retain is not None
        await asyncio.sleep(min(FIRST_PURGE_DELAY_SECONDS, self._interval))
        while True:
            try:
                await self.purge(self._retain, actor="retention")
            except Exception:  # keep the schedule; the next pass retries
                log.exception("privacy.retention_failed")
            await asyncio.sleep(self._interval)
