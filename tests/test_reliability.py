"""Never lose a message: restart recovery, failing turns, outgoing delivery with retries."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import rows, wait_for, write_config

from adapters.webhook import DELIVERY_HEADER
from bot.app import KefuApp
from bot.config import load_config
from bot.dispatcher import TurnDispatcher, TurnOutcome
from bot.messages import HandoffState, Message, Reply, ReplyKind
from bot.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from bot.store import Store, StoredInbound

OUT_SECRET = "outgoing-secret-123456"

pytestmark = pytest.mark.both_engines


async def test_restart_answers_messages_stored_before_a_crash(tmp_path, storage):
    config = load_config(write_config(tmp_path, storage=storage), environ={})
    store = Store(config.storage.location)
    await store.open()
    record = await store.record_inbound(Message(channel="webhook", conversation="crash", user_id="u",
                                                text="运费多少钱？", external_id="m1"))
    await store.close()
    assert record.duplicate is False

    async with KefuApp(config, channels=["webhook"], serve_http=True):
        db = config.storage.location
        await wait_for(lambda: rows(db, "SELECT status FROM messages WHERE direction = 'in'") == [("answered",)])
        assert rows(db, "SELECT faq_ids, reply_to FROM messages WHERE direction = 'out'") == [
            ('["shipping-cost"]', record.message.id)
        ]


def echo_reply(inbound: StoredInbound) -> Reply:
    return Reply(channel=inbound.channel, conversation=inbound.conversation, user_id=inbound.user_id,
                 text=f"echo {inbound.text}", language="en", kind=ReplyKind.ANSWER, in_reply_to=inbound.id)


async def apologise(store: Store, inbound: StoredInbound, reason: str, elapsed_ms: float) -> TurnOutcome:
    """What the pipeline's fail_turn does, without texts: an apology stored in the message's place."""
    reply = Reply(channel=inbound.channel, conversation=inbound.conversation, user_id=inbound.user_id,
                  text="sorry, try again", language="en", kind=ReplyKind.ERROR, why=reason, in_reply_to=inbound.id)
    stored, state = await store.answer_failed_turn(inbound.id, reply, latency_ms=elapsed_ms, deliver=False,
                                                   meta={"error": reason})
    return TurnOutcome(stored, state)


def dispatcher_with(store: Store, turn, timeout: float = 5.0) -> TurnDispatcher:
    async def run_turn(inbound: StoredInbound) -> TurnOutcome:
        await turn(inbound)
        reply = await store.record_reply(inbound.id, echo_reply(inbound), latency_ms=1.0, deliver=False, meta={})
        return TurnOutcome(reply, HandoffState.BOT)

    async def fail_turn(inbound: StoredInbound, reason: str, elapsed_ms: float) -> TurnOutcome:
        return await apologise(store, inbound, reason, elapsed_ms)

    return TurnDispatcher(store=store, run_turn=run_turn, fail_turn=fail_turn, on_reply=lambda reply: None,
                          turn_timeout=timeout)


def message(text: str, external_id: str | None = None, conversation: str = "c") -> Message:
    return Message(channel="test", conversation=conversation, user_id="u", text=text, external_id=external_id)


async def test_a_failing_turn_is_answered_with_an_apology_and_later_messages_still_get_answers(store, storage):
    async def turn(inbound: StoredInbound) -> None:
        if inbound.text == "boom":
            raise ValueError("the FAQ index exploded")

    dispatcher = dispatcher_with(store, turn)
    failed = await dispatcher.submit(message("boom", "1"))
    assert (failed.reply.kind, failed.reply.text) == (ReplyKind.ERROR, "sorry, try again")
    assert "exploded" in failed.reply.why
    result = await dispatcher.submit(message("fine", "2"))
    assert result.reply.text == "echo fine"
    status, reply, error, state = await store.inbound_outcome(1)
    assert (status, reply.message_id, state) == ("answered", failed.reply.message_id, HandoffState.BOT)
    again = await dispatcher.submit(message("boom", "1"))  # the app's retry finds the apology, asks nothing anew
    assert again.duplicate and again.reply.message_id == failed.reply.message_id


async def test_a_timed_out_turn_keeps_its_place_before_later_messages(store, storage):
    """Finding 5: the timed-out message used to be answered after the client resent it, behind later ones."""
    slow = asyncio.Event()

    async def turn(inbound: StoredInbound) -> None:
        if inbound.text == "slow":
            slow.set()
            await asyncio.sleep(30)

    dispatcher = dispatcher_with(store, turn, timeout=0.3)
    first = asyncio.create_task(dispatcher.submit(message("slow", "1")))
    await slow.wait()
    later = asyncio.create_task(dispatcher.submit(message("next", "2")))  # arrives while the first is stuck
    timed_out = await first
    assert timed_out.reply.kind == ReplyKind.ERROR and "longer than 0.3s" in timed_out.reply.why
    resent = await dispatcher.submit(message("slow", "1"))  # the client's resend after its own timeout
    answered = await later
    assert resent.duplicate and resent.reply.message_id == timed_out.reply.message_id
    replies = rows(storage, "SELECT reply_to, id FROM messages WHERE direction = 'out' ORDER BY id")
    assert [reply_to for reply_to, _ in replies] == [1, 2]  # answered in the order they arrived, once each
    assert answered.reply.text == "echo next"


async def test_a_timed_out_turn_whose_own_reply_commits_late_is_not_answered_twice(store, storage):
    async def run_turn(inbound: StoredInbound) -> TurnOutcome:
        # The turn's write is queued on the store's writer thread, then the turn is cancelled by the timeout.
        writing = asyncio.ensure_future(store.record_reply(inbound.id, echo_reply(inbound), latency_ms=1.0,
                                                           deliver=False, meta={}))
        await asyncio.sleep(30)
        return TurnOutcome(await writing, HandoffState.BOT)

    async def fail_turn(inbound: StoredInbound, reason: str, elapsed_ms: float) -> TurnOutcome:
        return await apologise(store, inbound, reason, elapsed_ms)

    dispatcher = TurnDispatcher(store=store, run_turn=run_turn, fail_turn=fail_turn, on_reply=lambda reply: None,
                                turn_timeout=0.2)
    result = await dispatcher.submit(message("hello", "1"))
    assert result.reply.text == "echo hello"  # the turn's own answer won; no apology was added
    assert rows(storage, "SELECT COUNT(*) FROM messages WHERE direction = 'out'") == [(1,)]


async def test_failed_messages_are_tried_again_at_start_unless_later_ones_were_answered(store, storage):
    dispatcher = dispatcher_with(store, lambda inbound: asyncio.sleep(0))
    for conversation, external in (("a", "1"), ("b", "1")):
        await store.record_inbound(message("old", external, conversation=conversation))
    await store.mark_failed(1, "crashed in an older kefu")  # a's only message
    await store.mark_failed(2, "crashed in an older kefu")  # b's first message, overtaken below
    later = await store.record_inbound(message("newer", "2", conversation="b"))
    await store.record_reply(later.message.id, echo_reply(later.message), latency_ms=1.0, deliver=False, meta={})
    assert await dispatcher.recover() == 1
    await wait_for(lambda: rows(storage, "SELECT status FROM messages WHERE id = 1") == [("answered",)])
    assert rows(storage, "SELECT status FROM messages WHERE id = 2") == [("failed",)]  # answering it now reorders


async def test_redelivery_while_the_first_copy_is_in_flight_shares_its_answer(store, storage):
    started = asyncio.Event()
    release = asyncio.Event()
    calls = []

    async def turn(inbound: StoredInbound) -> None:
        calls.append(inbound.id)
        started.set()
        await release.wait()

    dispatcher = dispatcher_with(store, turn)
    first = asyncio.create_task(dispatcher.submit(message("hello", "1")))
    await started.wait()
    second = asyncio.create_task(dispatcher.submit(message("hello", "1")))
    await asyncio.sleep(0.05)
    release.set()
    a, b = await asyncio.gather(first, second)
    assert calls == [1]
    assert a.reply.message_id == b.reply.message_id
    assert b.duplicate is True


async def test_shutdown_lets_an_in_flight_turn_finish(store, storage):
    started = asyncio.Event()

    async def turn(inbound: StoredInbound) -> None:
        started.set()
        await asyncio.sleep(0.2)

    dispatcher = dispatcher_with(store, turn)
    pending = asyncio.create_task(dispatcher.submit(message("hello", "1")))
    await started.wait()
    await dispatcher.close(grace_seconds=5)
    assert (await pending).reply.text == "echo hello"
    with pytest.raises(Exception, match="shutting down"):
        await dispatcher.submit(message("too late", "2"))


class Receiver:
    """A merchant's endpoint for outgoing webhooks: a real aiohttp server on 127.0.0.1."""

    def __init__(self, statuses: list[int]):
        self.statuses = statuses  # answered in turn; 200 once they run out
        self.received: list[dict] = []
        self.bad_signatures = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers[TIMESTAMP_HEADER]
        if request.headers[SIGNATURE_HEADER] != sign(OUT_SECRET, stamp, body, method=request.method, target=request.raw_path):
            self.bad_signatures += 1
            return web.Response(status=401)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.append({"delivery": request.headers[DELIVERY_HEADER], **json.loads(body)})
        return web.Response(status=status, text="nope" if status != 200 else "ok")

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        await self.runner.cleanup()


def outgoing_config(tmp_path: Path, storage: Path | str, port: int, max_attempts: int = 3):
    extra = f"""
[webhook.outgoing]
url = "http://127.0.0.1:{port}/hook"
secret = "{OUT_SECRET}"
timeout_seconds = 2
max_attempts = {max_attempts}
backoff_seconds = 0.05
"""
    return load_config(write_config(tmp_path, extra, storage=storage), environ={})


async def post_message(app: KefuApp, text: str, message_id: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(app.http.base_url + "/v1/messages",
                             json={"conversation_id": "o", "text": text, "message_id": message_id},
                             headers={"Authorization": "Bearer test-token-0123456789"}) as response:
            assert response.status == 200
            return await response.json()


async def test_replies_are_pushed_to_the_outgoing_webhook_with_retries(tmp_path, storage):
    receiver = Receiver(statuses=[503])
    await receiver.start()
    config = outgoing_config(tmp_path, storage, receiver.port)
    try:
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            data = await post_message(app, "运费多少钱？", "m1")
            await wait_for(lambda: len(receiver.received) == 1)
            db = config.storage.location
            await wait_for(lambda: rows(db, "SELECT delivery FROM messages WHERE direction='out'") == [("sent",)])
    finally:
        await receiver.stop()
    pushed = receiver.received[0]
    assert pushed["event"] == "reply"
    assert pushed["reply"]["faq_ids"] == ["shipping-cost"]
    assert pushed["delivery"] == str(data["reply"]["message_id"])
    assert receiver.bad_signatures == 0
    assert rows(db, "SELECT delivery_attempts FROM messages WHERE direction='out'") == [(2,)]


async def test_a_4xx_from_the_receiver_gives_the_delivery_up_at_once(tmp_path, storage):
    receiver = Receiver(statuses=[400])
    await receiver.start()
    config = outgoing_config(tmp_path, storage, receiver.port)
    db = config.storage.location
    try:
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            await post_message(app, "hi", "m1")
            await wait_for(lambda: rows(db, "SELECT delivery FROM messages WHERE direction='out'") == [("failed",)])
    finally:
        await receiver.stop()
    assert rows(db, "SELECT delivery_attempts, delivery_error FROM messages WHERE direction='out'") == [
        (1, f"http://127.0.0.1:{receiver.port}/hook answered 400: nope")
    ]
    assert receiver.received == []


async def test_pending_deliveries_resume_after_a_restart(tmp_path, storage):
    receiver = Receiver(statuses=[])
    await receiver.start()
    port = receiver.port
    await receiver.stop()  # the merchant's endpoint is down while the bot answers
    config = outgoing_config(tmp_path, storage, port, max_attempts=8)
    db = config.storage.location
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        await post_message(app, "where is my order??", "m1")
        await wait_for(lambda: rows(db, "SELECT delivery_attempts > 0 FROM messages WHERE direction='out'") == [(1,)])
    assert rows(db, "SELECT delivery FROM messages WHERE direction='out'") == [("pending",)]

    await receiver.start(port)
    try:
        async with KefuApp(config, channels=["webhook"], serve_http=True):
            # Marked sent after the receiver answered: wait for the mark, not just the request, or a
            # stop in between leaves it pending (and it is delivered again at the next start).
            await wait_for(lambda: rows(db, "SELECT delivery FROM messages WHERE direction='out'") == [("sent",)])
    finally:
        await receiver.stop()
    assert len(receiver.received) == 1
    assert receiver.received[0]["reply"]["faq_ids"] == ["order-tracking"]
