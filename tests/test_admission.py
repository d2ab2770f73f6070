"""Backpressure: beyond [pipeline] max_queued_messages a new message is refused before it is stored.

The end-to-end test floods a real kefu on 127.0.0.1 whose turns are held inside a real (loopback)
model server, so exactly the admitted messages are in flight while the flood arrives.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import TOKEN, loopback_server, wait_for, write_config

from bot.admission import Admission
from bot.app import KefuApp
from bot.config import load_config
from bot.dispatcher import TurnDispatcher, TurnOutcome
from bot.errors import ConfigError, OverloadedError
from bot.messages import HandoffState, Message, Reply, ReplyKind
from bot.store import Store, StoredInbound

GROUNDED = ("Standard delivery takes 3-5 business days to the EU and UK. Orders placed before 14:00 CET on a "
            "business day are dispatched the same day.")


def rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


# -- the counter ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_message_beyond_the_bound_is_refused_until_a_turn_ends():
    admission = Admission(2, fallback_seconds=30)
    for inbound_id in (1, 2):
        admission.admit()
        admission.stored(inbound_id)
    with pytest.raises(OverloadedError, match="2 messages waiting") as refused:
        admission.admit()
    assert refused.value.retry_after == 30  # nothing finished yet: a queued turn ends by its timeout
    admission.finished(1)
    admission.admit()  # a place came free
    assert admission.queued == 2


def test_retry_after_follows_recent_throughput_and_is_at_least_one_second():
    clock = Clock()
    admission = Admission(4, fallback_seconds=30, clock=clock)
    for inbound_id in range(1, 5):
        admission.admit()
        admission.stored(inbound_id)
    for inbound_id in (1, 2):  # two turns ended within 4 s: 0.5 turns per second
        clock.now += 2.0
        admission.finished(inbound_id)
        admission.admit()
        admission.stored(10 + inbound_id)
    assert admission.queued == 4
    assert admission.retry_after() == 8  # 4 queued at 0.5 per second
    for inbound_id in (3, 4, 11, 12):  # a burst of fast turns
        admission.finished(inbound_id)
    assert admission.retry_after() == 1
    clock.now += 120  # what finished long ago says nothing about now
    admission.admit()
    assert admission.retry_after() == 30


def test_the_bound_is_validated_like_every_key(tmp_path):
    path = write_config(tmp_path, "[pipeline]\nmax_queued_messages = 0\n")
    line = path.read_text().splitlines().index("max_queued_messages = 0") + 1
    with pytest.raises(ConfigError, match=rf"kefu.toml:{line}: key 'pipeline.max_queued_messages': 0 is out of range"):
        load_config(path, environ={})
    assert load_config(write_config(tmp_path), environ={}).pipeline.max_queued_messages == 256


# -- the dispatcher --------------------------------------------------------------------


def held_dispatcher(store: Store, release: asyncio.Event, limit: int) -> TurnDispatcher:
    """Every turn waits for `release`, then answers with an echo."""
    async def run_turn(inbound: StoredInbound) -> TurnOutcome:
        await release.wait()
        reply = Reply(channel=inbound.channel, conversation=inbound.conversation, user_id=inbound.user_id,
                      text=f"echo {inbound.text}", language="en", kind=ReplyKind.ANSWER, in_reply_to=inbound.id)
        return TurnOutcome(await store.record_reply(inbound.id, reply, latency_ms=1.0, deliver=False, meta={}),
                           HandoffState.BOT)

    async def fail_turn(inbound: StoredInbound, reason: str, elapsed_ms: float) -> TurnOutcome:
        raise AssertionError(f"no turn fails here: {reason}")

    return TurnDispatcher(store=store, run_turn=run_turn, fail_turn=fail_turn, on_reply=lambda reply: None,
                          turn_timeout=30, admission=Admission(limit, fallback_seconds=30))


def message(conversation: str, external_id: str | None = None, text: str = "hi") -> Message:
    return Message(channel="test", conversation=conversation, user_id="u", text=text, external_id=external_id)


async def test_refused_messages_are_not_stored_and_a_redelivery_is_never_refused(store, tmp_path):
    release = asyncio.Event()
    dispatcher = held_dispatcher(store, release, limit=2)
    first = asyncio.create_task(dispatcher.submit(message("a", "1")))
    second = asyncio.create_task(dispatcher.accept(message("b", "1")))
    await second  # accept returns once stored; its turn is held
    await wait_for(lambda: len(rows(tmp_path / "kefu.db", "SELECT id FROM messages")) == 2)
    with pytest.raises(OverloadedError) as refused:
        await dispatcher.submit(message("c", "1"))
    assert refused.value.retry_after >= 1
    with pytest.raises(OverloadedError):
        await dispatcher.accept(message("d"))
    assert rows(tmp_path / "kefu.db", "SELECT conversation_key FROM messages ORDER BY id") == [("test:a",), ("test:b",)]
    again = asyncio.create_task(dispatcher.submit(message("a", "1")))  # the shopper's app resends: not refused
    release.set()
    done, redelivered = await first, await again
    assert redelivered.duplicate and redelivered.reply.message_id == done.reply.message_id
    await wait_for(lambda: rows(tmp_path / "kefu.db", "SELECT COUNT(*) FROM messages WHERE direction = 'out'")
                   == [(2,)])
    later = await dispatcher.submit(message("c", "1"))  # room again
    assert later.reply.text == "echo hi"


async def test_the_backlog_recovered_after_a_crash_does_not_shut_out_new_shoppers(store, tmp_path):
    for number in range(5):  # left unanswered by a crash
        await store.record_inbound(message(f"old-{number}", "1"))
    release = asyncio.Event()
    dispatcher = held_dispatcher(store, release, limit=2)
    assert await dispatcher.recover() == 5
    admitted = await dispatcher.accept(message("new", "1"))  # 5 recovered turns are held, yet there is room
    assert admitted.duplicate is False
    release.set()
    await wait_for(lambda: rows(tmp_path / "kefu.db", "SELECT COUNT(*) FROM messages WHERE direction = 'in' "
                                                      "AND status = 'answered'") == [(6,)])


# -- end to end ----------------------------------------------------------------------------


class HeldModel:
    """An OpenAI-compatible server on 127.0.0.1 that holds every completion until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.base_url = ""

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.release.wait()
        return web.json_response({
            "id": "cmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": GROUNDED}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })


@pytest.fixture
async def held() -> AsyncIterator[HeldModel]:
    model = HeldModel()
    async with loopback_server({"/v1/chat/completions": model.completions}) as base_url:
        model.base_url = f"{base_url}/v1"
        yield model
        model.release.set()


@pytest.fixture
async def busy_shop(tmp_path, held) -> AsyncIterator[KefuApp]:
    path = write_config(tmp_path, extra=f"""
[pipeline]
max_queued_messages = 3
turn_timeout_seconds = 120

[responder]
backend = "openai"
deadline_seconds = 60
max_waiting = 8

[responder.openai]
base_url = "{held.base_url}"
model = "qwen2.5:1.5b-instruct"
api_key = "sk-test-123"
timeout_seconds = 60
""")
    async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=True) as running:
        yield running


async def post(session: aiohttp.ClientSession, app: KefuApp, conversation: str, message_id: str
               ) -> tuple[int, dict, str | None]:
    body = {"conversation_id": conversation, "text": "how long does shipping take?", "message_id": message_id}
    async with session.post(f"{app.http.base_url}/v1/messages", json=body,
                            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return response.status, await response.json(), response.headers.get("Retry-After")


async def test_a_flood_gets_429_with_retry_after_and_the_admitted_messages_are_all_answered(busy_shop, held):
    db = busy_shop.config.storage.database
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        admitted = [asyncio.create_task(post(session, busy_shop, f"in-{n}", "m1")) for n in range(3)]
        await wait_for(lambda: len(rows(db, "SELECT id FROM messages WHERE direction = 'in'")) == 3)
        assert not any(task.done() for task in admitted)  # their turns are held inside the model server

        flood = await asyncio.gather(*(post(session, busy_shop, f"flood-{n}", "m1") for n in range(6)))
        for status, body, retry_after in flood:
            assert status == 429
            assert body["error"] == "overloaded" and "limit is 3" in body["detail"]
            assert isinstance(body["retry_after"], int) and body["retry_after"] >= 1
            assert retry_after == str(body["retry_after"])
        assert rows(db, "SELECT COUNT(*) FROM conversations WHERE key LIKE 'webhook:flood-%'") == [(0,)]
        assert len(rows(db, "SELECT id FROM messages WHERE direction = 'in'")) == 3  # nothing half-done is left

        resent = asyncio.create_task(post(session, busy_shop, "in-0", "m1"))  # a redelivery is never refused
        held.release.set()
        answers = [await task for task in admitted]
        assert [status for status, _, _ in answers] == [200, 200, 200]
        assert all(body["reply"]["faq_ids"] == ["shipping-time"] for _, body, _ in answers)
        status, body, _ = await resent
        assert status == 200 and body["duplicate"] is True
        assert body["reply"]["message_id"] == answers[0][1]["reply"]["message_id"]

        status, body, _ = await post(session, busy_shop, "flood-0", "m1")  # after the flood: accepted again
        assert status == 200 and body["duplicate"] is False and body["reply"]["faq_ids"] == ["shipping-time"]
    assert rows(db, "SELECT COUNT(*) FROM messages WHERE direction = 'in' AND status = 'answered'") == [(4,)]


# -- Telegram ---------------------------------------------------------------------------------


def held_telegram_config(tmp_path: Path, tg, held: HeldModel, mode: str) -> Path:
    from test_telegram import telegram_config

    return telegram_config(tmp_path, tg, mode=mode, extra=f"""
[pipeline]
max_queued_messages = 1
turn_timeout_seconds = 5

[responder]
backend = "openai"
deadline_seconds = 4
max_waiting = 8

[responder.openai]
base_url = "{held.base_url}"
model = "qwen2.5:1.5b-instruct"
api_key = "sk-test-123"
""")


@pytest.fixture
async def tg():
    from fake_telegram import FakeTelegram
    from test_telegram import TOKEN as TG_TOKEN

    async with FakeTelegram(TG_TOKEN, group_members=[]) as server:
        yield server


def telegram_app(path: Path) -> KefuApp:
    from test_telegram import TOKEN as TG_TOKEN

    return KefuApp(load_config(path, environ={"TEST_TG_TOKEN": TG_TOKEN}), channels=["telegram"], serve_http=True)


async def test_telegrams_webhook_gets_429_and_nothing_is_stored_while_kefu_is_full(tmp_path, tg, held):
    async with telegram_app(held_telegram_config(tmp_path, tg, held, "webhook")) as app:
        secret = tg.calls("setWebhook")[0]["secret_token"]
        url, headers = app.http.base_url + "/telegram/webhook", {"X-Telegram-Bot-Api-Secret-Token": secret}
        first, second = tg.text_update(2001, "how long does shipping take?"), tg.text_update(2002, "hello?")
        first["update_id"], second["update_id"] = 1, 2
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=first, headers=headers) as response:
                assert response.status == 200  # stored; its turn is held inside the model server
            async with http.post(url, json=second, headers=headers) as response:
                assert response.status == 429
                body = await response.json()
                assert body["error"] == "overloaded" and response.headers["Retry-After"] == str(body["retry_after"])
            db = app.config.storage.database
            assert rows(db, "SELECT conversation FROM messages WHERE direction = 'in'") == [("2001",)]
            held.release.set()
            await tg.wait_for_messages(2001, 1)
            async with http.post(url, json=second, headers=headers) as response:  # Telegram sends it again
                assert response.status == 200
        await tg.wait_for_messages(2002, 1)


async def test_telegram_polling_waits_and_confirms_an_update_only_once_it_is_stored(tmp_path, tg, held, caplog):
    caplog.set_level("INFO", logger="adapters.telegram")
    async with telegram_app(held_telegram_config(tmp_path, tg, held, "polling")) as app:
        tg.push_update(tg.text_update(2001, "how long does shipping take?"))
        waiting = tg.push_update(tg.text_update(2002, "hello?"))
        await wait_for(lambda: any(r.getMessage().startswith("telegram.overloaded") for r in caplog.records))
        db = app.config.storage.database
        assert rows(db, "SELECT conversation FROM messages WHERE direction = 'in'") == [("2001",)]
        assert waiting["update_id"] in [u["update_id"] for u in tg.pending_updates]  # not confirmed to Telegram
        held.release.set()
        await tg.wait_for_messages(2001, 1)
        await tg.wait_for_messages(2002, 1, timeout=30)  # stored and answered once kefu had room
        await wait_for(lambda: tg.pending_updates == [])  # confirmed by the next getUpdates
