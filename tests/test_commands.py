"""Shopper commands (/start, /help, /lang, /reset) and unreadable messages, answered by the core for every channel."""

from __future__ import annotations

import sqlite3

import pytest
from test_webhook import post

from bot.commands import Command, parse_command
from bot.messages import Message


@pytest.mark.parametrize(("text", "command"), [
    ("/start", Command("start", "")),
    ("/start@lantern_lane_bot", Command("start", "")),
    ("  /LANG de ", Command("lang", "de")),
    ("/language zh", Command("lang", "zh")),
    ("/help", Command("help", "")),
    ("/reset", Command("reset", "")),
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
