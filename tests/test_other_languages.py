"""Shoppers who write in a language the shop did not enable (the sample shop serves en and zh).

They are recognised, stored and counted in their own language, answered from the FAQ in the
shop's default language with one line in theirs saying so, and a request for a person in any
language kefu knows reaches a person.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator

import aiohttp
import pytest
from conftest import TOKEN, write_config

from bot.app import KefuApp
from bot.config import load_config


@pytest.fixture
async def shop(tmp_path) -> AsyncIterator[tuple[KefuApp, aiohttp.ClientSession]]:
    config = load_config(write_config(tmp_path, handoff="enabled = true\nagent_wait_seconds = 3600"), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            yield app, http


async def say(shop: tuple[KefuApp, aiohttp.ClientSession], conversation: str, text: str) -> dict:
    app, http = shop
    async with http.post(app.http.base_url + "/v1/messages", json={"conversation_id": conversation, "text": text},
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def trace_language(app: KefuApp, reply_id: int) -> dict:
    with sqlite3.connect(app.config.storage.database) as db:
        [(meta,)] = db.execute("SELECT meta FROM messages WHERE id = ?", (reply_id,)).fetchall()
    return json.loads(meta)["language"]


@pytest.mark.parametrize("text, language, faq_id, note", [
    ("Wie lange dauert der Versand nach Deutschland?", "de", "shipping-time", "Unsere Hilfeseiten"),
    ("¿Cuánto tarda el reembolso?", "es", "refund-timing", "Nuestras páginas de ayuda"),
    ("Comment suivre ma commande ?", "fr", "order-tracking", "Nos pages d'aide"),
    ("注文をキャンセルしたい", "ja", "order-change-cancel", "ヘルプページ"),
])
async def test_a_shopper_in_a_language_not_enabled_is_answered_from_the_faq_and_told_why(shop, text, language,
                                                                                            faq_id, note):
    app, _ = shop
    data = await say(shop, f"foreign-{language}", text)
    reply = data["reply"]
    assert reply["language"] == "en"  # the FAQ's answers are in the shop's languages only
    assert reply["text"].startswith(note)  # one line in the shopper's own language says so
    assert reply["kind"] in ("answer", "not_sure") and faq_id in reply["faq_ids"], reply  # the right entry offered
    traced = trace_language(app, reply["message_id"])
    assert (traced["detected"], traced["language"], traced["enabled"]) == (language, "en", False)
    transcript = await app.transcript("webhook", f"foreign-{language}")
    assert transcript.language == language  # stored as the shopper wrote, so the dashboard can count it


async def test_the_right_answer_reaches_a_german_shopper(shop):
    data = await say(shop, "de-ship", "Wie lange dauert der Versand nach Deutschland?")
    assert (data["reply"]["kind"], data["reply"]["faq_ids"][:1]) == ("answer", ["shipping-time"])


async def test_a_german_request_for_a_person_is_handed_over_in_german(shop):
    data = await say(shop, "de-human", "Ich möchte mit einem Mitarbeiter sprechen")
    assert data["reply"]["kind"] == "handoff" and data["state"] == "waiting_agent"
    assert data["reply"]["language"] == "de"  # kefu's own texts exist in German


async def test_a_short_follow_up_keeps_the_conversations_language(shop):
    app, _ = shop
    await say(shop, "de-short", "Wie lange dauert der Versand nach Deutschland?")
    data = await say(shop, "de-short", "danke")
    assert trace_language(app, data["reply"]["message_id"])["detected"] == "de"


async def test_enabled_languages_are_answered_in_their_own_language_without_a_note(shop):
    english = (await say(shop, "en", "how long does shipping take?"))["reply"]
    chinese = (await say(shop, "zh", "运费多少钱？"))["reply"]
    assert (english["language"], chinese["language"]) == ("en", "zh")
    assert english["text"].startswith("All orders ship") and not chinese["text"].startswith("我们的帮助页面")
