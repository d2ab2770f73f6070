"""Runs turns: strictly in order within a conversation, concurrently across conversations.

A message is committed to the store first; then its conversation's worker is
woken. The worker takes the conversation's pending messages from the store in id
order, so the order is the store's order, and restart recovery is the same code
path: wake every conversation that has pending messages.

A turn that fails or runs past the timeout is answered in its place with a stored
apology (`fail_turn`) before the worker moves on: were it left unanswered, the
client's resend would be answered after the conversation's later messages.

With several kefu processes on one database (`leases`, PostgreSQL), a conversation is
drained only under its lease (bot/cluster/leases.py), so exactly one worker answers it at
a time, in the store's order. A message stored here for a conversation another worker
holds is answered there; whoever waits for it here reads the outcome from the store. A
sweep takes over conversations whose worker died once their lease lapses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from dataclasses import dataclass

from bot.admission import Admission
from bot.cluster.leases import Leases
from bot.errors import KefuError
from bot.messages import HandleResult, HandoffState, Message, Reply
from bot.metrics import Metrics
from bot.store import FAILED, SETTLED, InboundRecord, Store, StoredInbound

log = logging.getLogger(__name__)

LEASE_PREFIX = "conversation:"
SWEEP_SECONDS = 2.0  # how often a worker looks for conversations nobody holds (their worker died)
ELSEWHERE_POLL_SECONDS = 0.2  # how often a message answered by another worker is looked up for its waiter


@dataclass(frozen=True)
class TurnOutcome:
    """What a turn ended with: the stored reply (None when forwarded to agents) and who answers next."""

    reply: Reply | None
    state: HandoffState


class TurnFailedError(KefuError):
    """Processing a stored message failed; it stays stored, marked failed, and a redelivery retries it."""


class DispatcherClosedError(KefuError):
    """The bot is shutting down and accepts no new messages."""


class TurnDispatcher:
    def __init__(
        self,
        *,
        store: Store,
        run_turn: Callable[[StoredInbound], Awaitable[TurnOutcome]],
        fail_turn: Callable[[StoredInbound, str, float], Awaitable[TurnOutcome]],  # (message, reason, ms spent)
        on_reply: Callable[[Reply], None],
        turn_timeout: float,
        metrics: Metrics | None = None,
        admission: Admission | None = None,
        leases: Leases | None = None,
    ):
        self._store = store
        self._leases = leases  # None: the only process on its database (SQLite)
        self._admission = admission  # None: no bound (tests of the turn machinery)
        self._run_turn = run_turn
        self._fail_turn = fail_turn
        self._on_reply = on_reply
        self._timeout = turn_timeout
        self._metrics = metrics
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._waiters: dict[int, tuple[str, asyncio.Future[TurnOutcome]]] = {}
        self._accepting = True
        self._sweeper: asyncio.Task[None] | None = None

    async def submit(self, message: Message) -> HandleResult:
        """Store the message, have it answered once, and return the reply."""
        record = await self._record(message)
        if record.settled:
            log.info("turn.duplicate conversation=%s inbound=%d", message.conversation_key, record.message.id)
            return HandleResult(reply=record.reply, inbound_id=record.message.id, duplicate=True, state=record.state)
        waiter = self._waiter(message.conversation_key, record.message.id)
        self.wake(message.conversation_key)
        outcome = await asyncio.shield(waiter)
        return HandleResult(reply=outcome.reply, inbound_id=record.message.id, duplicate=record.duplicate,
                            state=outcome.state)

    async def accept(self, message: Message) -> HandleResult:
        """Store the message and have it answered in the background (channels that push their replies).

        Returns once the message is safely stored, so a channel can confirm it to its sender
        (Telegram's update offset) without waiting for the answer; `reply` is the stored one
        for a redelivery that was answered already, else None.
        """
        record = await self._record(message)
        if not record.settled:
            self.wake(message.conversation_key)
        return HandleResult(reply=record.reply, inbound_id=record.message.id, duplicate=record.duplicate,
                            state=record.state)

    async def _record(self, message: Message) -> InboundRecord:
        if not self._accepting:
            raise DispatcherClosedError("kefu is shutting down")
        admission = self._admission
        if admission is None or (admission.full() and await self._store.is_redelivery(message)):
            record = await self._store.record_inbound(message)  # a redelivery costs no new turn: never refused
            if admission is not None and not record.settled:
                admission.track(record.message.id)
            return record
        admission.admit()  # raises OverloadedError before anything is stored
        try:
            record = await self._store.record_inbound(message)
        except BaseException:
            admission.stored(None)
            raise
        admission.stored(None if record.settled else record.message.id)
        return record

    def _waiter(self, conversation_key: str, inbound_id: int) -> asyncio.Future[TurnOutcome]:
        """One future per stored message, shared by every delivery of that message."""
        if inbound_id not in self._waiters:
            future: asyncio.Future[TurnOutcome] = asyncio.get_running_loop().create_future()
            # The submitter may have gone away (client disconnected): don't warn about an unread error.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._waiters[inbound_id] = (conversation_key, future)
        return self._waiters[inbound_id][1]

    def _resolve(self, inbound_id: int, outcome: TurnOutcome | None = None, error: Exception | None = None) -> None:
        entry = self._waiters.pop(inbound_id, None)
        if entry is None or entry[1].done():
            return
        if error is not None:
            entry[1].set_exception(error)
        else:
            entry[1].set_result(outcome)

    async def recover(self) -> int:
        """Wake every conversation with stored, unanswered messages (after a crash).

        Messages an older kefu marked failed are tried again when nothing later in their
        conversation was answered yet; answering one behind a later message would reorder it.
        """
        requeued, overtaken = await self._store.requeue_failed()
        if requeued or overtaken:
            log.warning("turn.failed_at_start requeued=%d left_failed=%d (answered later messages came after them)",
                        requeued, overtaken)
        keys = await self._store.conversations_with_pending()
        for key in keys:
            self.wake(key)
        if keys:
            log.info("turn.recovering conversations=%d", len(keys))
        return len(keys)

    def wake(self, conversation_key: str) -> None:
        self._dirty.add(conversation_key)
        if conversation_key not in self._workers:
            task = asyncio.create_task(self._drain(conversation_key), name=f"kefu-turns-{conversation_key}")
            self._workers[conversation_key] = task

    async def _drain(self, conversation_key: str) -> None:
        try:
            if self._leases is None:
                await self._drain_here(conversation_key, None)
            else:
                await self._drain_leased(conversation_key, self._leases)
        except KefuError as exc:  # the store is unreachable: the messages stay stored, pending, for a redelivery
            log.error("turn.drain_failed conversation=%s error=%s", conversation_key, exc)
            for inbound_id in [i for i, (key, _) in self._waiters.items() if key == conversation_key]:
                self._resolve(inbound_id, error=TurnFailedError(str(exc)))
        finally:
            del self._workers[conversation_key]

    async def _drain_leased(self, conversation_key: str, leases: Leases) -> None:
        name = LEASE_PREFIX + conversation_key
        while True:
            if await leases.acquire(name):
                self._dirty.add(conversation_key)  # read what any worker stored, not only what woke this one
                try:
                    await self._drain_here(conversation_key, name)
                finally:
                    await asyncio.shield(leases.release(name))
                # A message another worker stored while this one let go found the lease still taken: look again.
                if await self._store.pending_inbound(conversation_key):
                    continue
            else:
                # Another worker answers this conversation now (it looks again before letting go); what
                # waits here learns the outcome from the store.
                self._dirty.discard(conversation_key)
                if await self._settle_from_store(conversation_key):
                    await asyncio.sleep(ELSEWHERE_POLL_SECONDS)
                    continue
            if self._idle(conversation_key):
                return

    async def _drain_here(self, conversation_key: str, lease: str | None) -> None:
        while True:
            while conversation_key in self._dirty:
                self._dirty.discard(conversation_key)
                batch = await self._store.pending_inbound(conversation_key)
                for inbound in batch:
                    if lease is not None and self._leases is not None and not self._leases.holds(lease):
                        log.warning("turn.lease_lost conversation=%s (another worker goes on with it)",
                                    conversation_key)
                        return
                    try:
                        await self._answer(inbound)
                    finally:
                        if self._admission is not None:
                            self._admission.finished(inbound.id)
                if batch and lease is not None:
                    self._dirty.add(conversation_key)  # other workers store messages without waking this one
            # Waiters left here belong to redeliveries of messages that were answered (or
            # failed) before the last look at the store: answer them from the store.
            await self._settle_from_store(conversation_key)
            if self._idle(conversation_key):
                return

    def _idle(self, conversation_key: str) -> bool:
        """Nothing more to do here. Checked with no await before the drain ends, so a message submitted
        during the drain's last awaits (its waiter and wake came while the task still existed) is not left."""
        return conversation_key not in self._dirty and not any(
            key == conversation_key for key, _ in self._waiters.values())

    async def _settle_from_store(self, conversation_key: str) -> bool:
        """Resolve this conversation's waiters whose message is settled in the store; True if some still wait."""
        waiting = False
        for inbound_id in [i for i, (key, _) in self._waiters.items() if key == conversation_key]:
            status, reply, error, state = await self._store.inbound_outcome(inbound_id)
            if status in SETTLED:
                self._resolve(inbound_id, TurnOutcome(reply, state))
            elif status == FAILED:
                self._resolve(inbound_id, error=TurnFailedError(error or "processing failed"))
            else:
                self._dirty.add(conversation_key)
                waiting = True
        return waiting

    def start_sweeping(self) -> None:
        """With leases: take over, every few seconds, conversations with pending messages that nobody holds."""
        if self._leases is not None and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="kefu-turns-sweep")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                keys = await self._store.conversations_unleased(LEASE_PREFIX, time.time())
            except Exception as exc:  # the database is unreachable for now: the next sweep tries again
                log.warning("turn.sweep_failed error=%s: %s", type(exc).__name__, exc)
                continue
            for key in keys:
                if key not in self._workers:
                    log.info("turn.taking_over conversation=%s (no worker holds it)", key)
                    self.wake(key)

    async def _answer(self, inbound: StoredInbound) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                outcome = await self._run_turn(inbound)
        except Exception as exc:  # one bad turn must not stop the conversation's later messages
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"the turn took longer than {self._timeout:g}s"
            log.exception("turn.failed conversation=%s inbound=%d", inbound.conversation_key, inbound.id)
            if self._metrics is not None:
                self._metrics.error(inbound.channel, "turn")
            outcome = await self._answer_failed(inbound, reason, (time.perf_counter() - started) * 1000)
            if outcome is None:
                return
        if outcome.reply is not None:
            self._on_reply(outcome.reply)
        self._resolve(inbound.id, outcome)

    async def _answer_failed(self, inbound: StoredInbound, reason: str, elapsed_ms: float) -> TurnOutcome | None:
        """Keep the failed message's place with a stored apology; only if even that fails, mark it failed."""
        try:
            return await self._fail_turn(inbound, reason, elapsed_ms)
        except Exception as exc:  # the store itself is failing: record what we can, tell the waiter
            log.exception("turn.fallback_failed conversation=%s inbound=%d", inbound.conversation_key, inbound.id)
            detail = f"{reason}; storing the apology failed too: {type(exc).__name__}: {exc}"
            try:
                await self._store.mark_failed(inbound.id, detail)
            except KefuError:
                log.error("turn.mark_failed_failed inbound=%d (it stays pending for the next start)", inbound.id)
            self._resolve(inbound.id, error=TurnFailedError(detail))
            return None

    async def close(self, grace_seconds: float) -> None:
        """Stop accepting; let in-flight turns finish within the grace period."""
        self._accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        workers = list(self._workers.values())
        if not workers:
            return
        done, pending = await asyncio.wait(workers, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("turn.shutdown_cancelled workers=%d (their messages stay pending for the next start)",
                        len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
        for inbound_id in list(self._waiters):
            self._resolve(inbound_id, error=DispatcherClosedError("kefu shut down before answering"))
