"""Short follow-up questions are understood with the conversation's previous question."""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_webhook import post

from bot.pipeline import is_short


@pytest.mark.parametrize(("text", "short"), [
    ("why?", True), ("and for shoes?", True), ("how long does shipping take?", False),
    ("那退货呢？", True), ("请问从中国寄到美国的国际运费是多少钱", False),
])
def test_is_short(text, short):
    assert is_short(text, 3) is short


async def test_a_vague_follow_up_is_answered_in_the_context_of_the_previous_question(app, http, url, auth):
    first = await post(http, url, auth, conversation_id="f", text="my payment failed", message_id="1")
    assert first[1]["reply"]["faq_ids"] == ["payment-failed"]
    status, data = await post(http, url, auth, conversation_id="f", text="why?", message_id="2")
    assert status == 200
    assert data["reply"]["faq_ids"] == ["payment-failed"]
    with sqlite3.connect(app.config.storage.database) as conn:
        meta = json.loads(conn.execute("SELECT meta FROM messages WHERE id = ?",
                                       (data["reply"]["message_id"],)).fetchone()[0])
    assert meta["context"]["previous"] == "my payment failed"


async def test_the_same_follow_up_alone_is_not_answered_with_that_entry(app, http, url, auth):
    _, data = await post(http, url, auth, conversation_id="g", text="why?", message_id="1")
    assert data["reply"]["faq_ids"] != ["payment-failed"]


async def test_a_short_message_that_stands_alone_ignores_the_previous_question(app, http, url, auth):
    await post(http, url, auth, conversation_id="h", text="how long does shipping take?", message_id="1")
    _, data = await post(http, url, auth, conversation_id="h", text="thanks!", message_id="2")
    assert data["reply"]["faq_ids"] == ["thanks-goodbye"]
