"""Shopper commands (/start, /help, /lang, /reset) and unreadable messages, answered by the core for every channel."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator

import pytest
from conftest import loopback_server, write_config
from test_webhook import post

from bot.app import KefuApp
from bot.commands import Command, parse_command
from bot.config import load_config
from bot.messages import HandoffState, Message


@pytest.mark.parametrize(("text", "command"), [
    ("/start", Command("start", "")),
    ("/start@lantern_lane_bot", Command("start", "")),
    ("  /LANG de ", Command("lang", "de")),
    ("/language zh", Command("lang", "zh")),
    ("/help", Command("help", "")),
    ("/reset", Command("reset", "")),
    ("/bot", Command("bot", "")),
    ("/bot@lantern_lane_bot", Command("bot", "")),
    ("/bottle", None),
    ("/human", None),  # a handoff trigger, the handoff policy's business
    ("/starting a return", None),
    ("how do I /start a return", None),
])
def test_parse_command(text, command):
    assert parse_command(text) == command


async def test_start_greets_with_the_top_topics_in_the_shoppers_language(app, http, url, auth):
    _, data = await post(http, url, auth, conversation_id="s1", text="/start", message_id="1")
    reply = data["reply"]
    assert reply["kind"] == "info" and reply["text"].startswith("Hi! I'm Test Shop's assistant")
    assert reply["quick_replies"] == ["How can I track my order?", "How long does shipping take?",
                                      "What is your return policy?"]
    _, data = await post(http, url, auth, conversation_id="s2", text="/start", message_id="1", language="zh")
    assert data["reply"]["language"] == "zh" and data["reply"]["text"].startswith("您好！我是Test Shop的智能客服")
    assert data["reply"]["quick_replies"][0] == "怎么查询我的订单物流？"


async def test_lang_fixes_the_reply_language_until_reset(app, http, url, auth):
    _, data = await post(http, url, auth, conversation_id="l1", text="/lang zh", message_id="1")
    assert data["reply"]["text"] == "好的，从现在起我会用中文回复您。" and data["reply"]["language"] == "zh"
    _, data = await post(http, url, auth, conversation_id="l1", text="how long does shipping take?", message_id="2")
    assert data["reply"]["language"] == "zh" and data["reply"]["faq_ids"] == ["shipping-time"]
    _, data = await post(http, url, auth, conversation_id="l1", text="/reset", message_id="3")
    assert data["reply"]["kind"] == "info" and data["reply"]["quick_replies"]
    _, data = await post(http, url, auth, conversation_id="l1", text="how long does shipping take?", message_id="4")
    assert data["reply"]["language"] == "en"
    with sqlite3.connect(app.config.storage.database) as db:
        start = db.execute("SELECT context_start_id FROM conversations WHERE key = 'webhook:l1'").fetchone()[0]
        reset_id = db.execute("SELECT id FROM messages WHERE external_id = '3'").fetchone()[0]
    assert start == reset_id  # earlier messages no longer count as context


async def test_lang_with_a_language_the_shop_does_not_speak_lists_the_choices(app, http, url, auth):
    _, data = await post(http, url, auth, conversation_id="l2", text="/lang xx", message_id="1")
    assert data["reply"]["text"] == ("I can answer in en (English), zh (Simplified Chinese). Choose one with /lang "
                                     "and its code, for example /lang zh.")


async def test_help_names_the_commands_and_languages(app, http, url, auth):
    _, data = await post(http, url, auth, conversation_id="h1", text="/help", message_id="1")
    text = data["reply"]["text"]
    assert all(part in text for part in ("/start", "/human", "/lang", "/reset", "en (English)"))


async def test_a_photo_without_text_is_stored_and_answered_politely(app):
    result = await app.handle(Message(channel="webhook", conversation="p1", user_id="u", text="", external_id="9",
                                      media="photo"))
    assert result.reply is not None and result.reply.kind.value == "info"
    assert result.reply.text.startswith("I can only read text messages")
    transcript = await app.transcript("webhook", "p1")
    assert transcript is not None and transcript.messages[0].media == "photo"
    again = await app.handle(Message(channel="webhook", conversation="p1", user_id="u", text="", external_id="9",
                                     media="photo"))
    assert again.duplicate and again.reply == result.reply


async def test_a_photo_with_a_caption_is_answered_from_the_caption(app):
    result = await app.handle(Message(channel="webhook", conversation="p2", user_id="u",
                                      text="how long does shipping take?", external_id="1", media="photo"))
    assert result.reply is not None and result.reply.faq_ids == ("shipping-time",)


# -- leaving the queue for a person -------------------------------------------------------


@pytest.fixture
async def helpdesk() -> AsyncIterator[tuple[str, list[dict]]]:
    """The merchant's helpdesk: hears of every handoff event (a real server on 127.0.0.1)."""
    events: list[dict] = []

    async def hear(request):
        from aiohttp import web

        events.append(await request.json())
        return web.Response(status=204)

    async with loopback_server({"/events": hear}) as base:
        yield f"{base}/events", events


@pytest.fixture
async def desk_app(tmp_path, helpdesk) -> AsyncIterator[KefuApp]:
    notify = f'\n[handoff.notify]\nurl = "{helpdesk[0]}"\nsecret = "notify-secret-123"\nbackoff_seconds = 0.05\n'
    path = write_config(tmp_path, handoff="enabled = true\nagent_wait_seconds = 3600" + notify)
    async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=True) as running:
        yield running


def transitions(app: KefuApp, key: str) -> list[tuple]:
    with sqlite3.connect(app.config.storage.database) as db:
        return db.execute("SELECT from_state, to_state, reason, actor FROM handoff_transitions "
                          "WHERE conversation_key = ? ORDER BY id", [key]).fetchall()


async def test_bot_leaves_the_queue_and_the_bot_answers_again(desk_app, http, auth, helpdesk):
    url = lambda path: desk_app.http.base_url + path  # noqa: E731
    _, data = await post(http, url, auth, conversation_id="q1", text="/human", message_id="1")
    assert data["state"] == "waiting_agent"
    _, data = await post(http, url, auth, conversation_id="q1", text="how long does shipping take?", message_id="2")
    assert data["reply"] is None  # queued: the bot stays quiet, the agents get it
    _, data = await post(http, url, auth, conversation_id="q1", text="/bot", message_id="3")
    assert data["state"] == "bot" and data["reply"]["kind"] == "info"
    assert data["reply"]["text"].startswith("OK, you've left the queue for a person")
    assert transitions(desk_app, "webhook:q1")[-1] == ("waiting_agent", "bot", "shopper_left", "shopper")
    _, data = await post(http, url, auth, conversation_id="q1", text="how long does shipping take?", message_id="4")
    assert data["reply"]["faq_ids"] == ["shipping-time"]
    assert (await desk_app.handoffs((HandoffState.WAITING_AGENT, HandoffState.AGENT))) == []
    events = helpdesk[1]

    async def told() -> dict:
        while not any(e["event"] == "handoff.left" for e in events):
            await asyncio.sleep(0.02)
        return next(e for e in events if e["event"] == "handoff.left")

    left = await asyncio.wait_for(told(), 10)
    assert left["conversation_id"] == "q1" and left["state"] == "bot" and left["detail"] == "the shopper sent /bot"


async def test_reset_while_an_agent_holds_the_conversation_starts_over_with_the_bot(desk_app, http, auth):
    url = lambda path: desk_app.http.base_url + path  # noqa: E731
    await post(http, url, auth, conversation_id="q2", text="I want to talk to a human please", message_id="1")
    await desk_app.claim("webhook", "q2", "alice")
    _, data = await post(http, url, auth, conversation_id="q2", text="/reset", message_id="2")
    assert data["state"] == "bot" and data["reply"]["text"] == "Let's start over. What can I help you with?"
    assert transitions(desk_app, "webhook:q2")[-1] == ("agent", "bot", "shopper_left", "shopper")
    with sqlite3.connect(desk_app.config.storage.database) as db:
        start = db.execute("SELECT context_start_id FROM conversations WHERE key = 'webhook:q2'").fetchone()[0]
        reset_id = db.execute("SELECT id FROM messages WHERE conversation_key = 'webhook:q2' AND external_id = '2' "
                              "AND direction = 'in'").fetchone()[0]
    assert start == reset_id


async def test_bot_while_the_bot_answers_greets_with_the_top_topics(desk_app, http, auth):
    url = lambda path: desk_app.http.base_url + path  # noqa: E731
    _, data = await post(http, url, auth, conversation_id="q3", text="/bot", message_id="1")
    assert data["reply"]["text"].startswith("Hi! I'm Test Shop's assistant") and data["reply"]["quick_replies"]
    assert transitions(desk_app, "webhook:q3") == []
