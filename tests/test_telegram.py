"""The Telegram channel end to end: python-telegram-bot against a fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import queue_reply, wait_for, write_config
from fake_telegram import FakeTelegram

from adapters.telegram import conversation_tag, file_base_url, split_text
from bot.app import KefuApp
from bot.config import load_config
from bot.errors import AdapterError, ConfigError
from bot.messages import Reply, ReplyKind

TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
AGENTS = -100500
AGENT = 777
SHOPPER = 1001


def telegram_config(tmp_path: Path, tg: FakeTelegram, *, mode: str = "polling", extra: str = "",
                    handoff: str = "enabled = false") -> Path:
    return write_config(tmp_path, handoff=handoff, extra=f"""
[telegram]
enabled = true
token_env = "TEST_TG_TOKEN"
mode = "{mode}"
webhook_url = "https://shop.example/telegram/webhook"
api_base_url = "{tg.url}/bot"
poll_timeout_seconds = 1
backoff_seconds = 0.2
agents_chat_id = {AGENTS}
{extra}
""")


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN, group_members=[AGENT]) as server:
        yield server


def start_app(path: Path, *, channels: tuple[str, ...] = ("telegram",)) -> KefuApp:
    config = load_config(path, environ={"TEST_TG_TOKEN": TOKEN})
    return KefuApp(config, channels=list(channels), serve_http=True)


@pytest.fixture
async def polling(tmp_path: Path, tg: FakeTelegram) -> AsyncIterator[KefuApp]:
    async with start_app(telegram_config(tmp_path, tg)) as app:
        yield app


def stored(app: KefuApp, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(app.config.storage.database) as db:
        return db.execute(sql, args).fetchall()


async def test_a_shopper_is_answered_by_long_polling_with_a_typing_indicator(polling, tg):
    tg.push_update(tg.text_update(SHOPPER, "how long does shipping take?", first_name="Mia", language_code="en"))
    [reply] = await tg.wait_for_messages(SHOPPER, 1)
    assert reply["text"].startswith("All orders ship from our warehouse in Rotterdam")
    assert "parse_mode" not in reply  # plain text: nothing in an FAQ answer can break Telegram's markup
    assert any(c.get("action") == "typing" and str(c["chat_id"]) == str(SHOPPER) for c in tg.calls("sendChatAction"))
    [(name, hint)] = stored(polling, "SELECT c.display_name, m.language_hint FROM conversations c JOIN messages m "
                                     "ON m.conversation_key = c.key WHERE c.key = ? AND m.direction = 'in'",
                            f"telegram:{SHOPPER}")
    assert (name, hint) == ("Mia", "en")
    assert tg.webhook.url in ("", None)  # polling removed any webhook first
    [menu] = tg.calls("setMyCommands")
    assert [c["command"] for c in menu["commands"]] == ["start", "help", "human", "lang", "reset", "bot"]


async def test_start_shows_topics_as_buttons_and_a_button_asks_its_question(polling, tg):
    tg.push_update(tg.text_update(SHOPPER, "/start"))
    [welcome] = await tg.wait_for_messages(SHOPPER, 1)
    assert welcome["text"].startswith("Hi! I'm Test Shop's assistant")
    buttons = [row[0] for row in welcome["reply_markup"]["inline_keyboard"]]
    assert [b["text"] for b in buttons] == ["How can I track my order?", "How long does shipping take?",
                                            "What is your return policy?"]
    message = tg.bot_messages(SHOPPER)[-1]
    tg.push_update(tg.callback_update(SHOPPER, SHOPPER, buttons[1]["callback_data"], message))
    replies = await tg.wait_for_messages(SHOPPER, 2)
    assert replies[1]["text"].startswith("All orders ship from our warehouse")
    assert len(tg.calls("answerCallbackQuery")) == 1


async def test_the_same_telegram_message_delivered_twice_is_answered_once(polling, tg):
    update = tg.text_update(SHOPPER, "what is your return policy?", message_id=41)
    tg.push_update(update)
    await tg.wait_for_messages(SHOPPER, 1)
    again = dict(update)
    del again["update_id"]  # Telegram resends the message under a new update after a lost confirmation
    tg.push_update(again)
    tg.push_update(tg.text_update(SHOPPER, "thanks!"))
    replies = await tg.wait_for_messages(SHOPPER, 2)
    await asyncio.sleep(0.5)
    assert len(tg.messages_to(SHOPPER)) == 2 and "return" in replies[0]["text"].lower()
    assert stored(polling, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == [(2,)]


async def test_twenty_chats_at_once_keep_their_own_order(polling, tg):
    questions = ["how long does shipping take?", "what is your return policy?", "which payment methods do you accept?"]
    for round_ in range(3):
        for chat in range(2000, 2020):
            tg.push_update(tg.text_update(chat, questions[round_], user_id=chat))
    for chat in range(2000, 2020):
        replies = await tg.wait_for_messages(chat, 3, timeout=60)
        assert replies[0]["text"].startswith("All orders ship")
        assert "return" in replies[1]["text"].lower()
        assert "Visa" in replies[2]["text"]


async def test_flood_control_is_waited_out_for_that_chat(polling, tg):
    tg.fail_next("sendMessage", chat_id=SHOPPER, error_code=429, retry_after=1)
    started = asyncio.get_running_loop().time()
    tg.push_update(tg.text_update(SHOPPER, "how long does shipping take?"))
    await tg.wait_for_messages(SHOPPER, 1, timeout=15)
    assert asyncio.get_running_loop().time() - started >= 1.0
    sends = [c for c in tg.sent if c.method == "sendMessage" and str(c.params["chat_id"]) == str(SHOPPER)]
    assert [c.error_code for c in sends] == [429, None]


async def test_a_shopper_who_blocked_the_bot_is_not_retried(polling, tg):
    tg.fail_next("sendMessage", chat_id=SHOPPER, error_code=403, description="Forbidden: bot was blocked by the user")
    tg.push_update(tg.text_update(SHOPPER, "how long does shipping take?"))
    deadline = asyncio.get_running_loop().time() + 120  # an event to wait for, not a time: a busy CI is slow
    while True:
        rows = stored(polling, "SELECT delivery, delivery_error FROM messages WHERE direction = 'out'")
        if (rows and rows[0][0] == "failed") or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert rows and rows[0][0] == "failed" and "blocked" in rows[0][1]  # delivery_error: why it was given up
    await asyncio.sleep(0.5)
    assert len([c for c in tg.sent if c.method == "sendMessage"]) == 1


def test_the_file_url_sits_next_to_the_api_url():
    assert file_base_url("https://api.telegram.org/bot") == "https://api.telegram.org/file/bot"
    assert file_base_url("https://botapi.example/tg/bot") == "https://botapi.example/tg/file/bot"


def test_a_long_reply_is_split_at_paragraphs():
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 150 for i in range(10))
    parts = split_text(text)
    assert len(parts) > 1 and all(len(p) <= 4096 for p in parts)
    assert all(p.startswith("Paragraph") for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(text.split())


async def test_a_long_reply_arrives_in_parts_with_the_buttons_on_the_last(polling, tg):
    channel = polling.channels["telegram"]
    text = "\n\n".join(f"Part {i}. " + "x" * 1500 for i in range(4))
    await channel.deliver(Reply(channel="telegram", conversation=str(SHOPPER), user_id=str(SHOPPER), text=text,
                                language="en", kind=ReplyKind.ANSWER, quick_replies=("How long does shipping take?",)))
    sent = tg.messages_to(SHOPPER)
    assert len(sent) == 2 and all(len(m["text"]) <= 4096 for m in sent)
    assert "reply_markup" not in sent[0] and sent[1]["reply_markup"]["inline_keyboard"]


async def test_a_long_reply_cut_off_by_a_restart_sends_only_the_parts_that_did_not_go(tmp_path, tg):
    """Part 1 of 3 went, then Telegram failed and kefu stopped: the next start must not send part 1 again."""
    path = telegram_config(tmp_path, tg)
    text = "\n\n".join(f"Part {n}. " + "x" * 3000 for n in range(3))
    reply_id = await queue_reply(tmp_path / "data" / "kefu.db", "telegram", str(SHOPPER), text)
    tg.fail_next("sendMessage", chat_id=SHOPPER, error_code=500, description="Internal Server Error",
                 retry_after=None, times=10**6, after=1)
    async with start_app(path) as app:
        await wait_for(lambda: stored(app, "SELECT delivery_parts FROM messages WHERE id = ?", reply_id) == [(1,)])
    tg.stop_failing()
    async with start_app(path) as app:
        await tg.wait_for_messages(SHOPPER, 3)
        await wait_for(lambda: stored(app, "SELECT delivery FROM messages WHERE id = ?", reply_id) == [("sent",)])
    assert [message["text"][:6] for message in tg.messages_to(SHOPPER)] == ["Part 0", "Part 1", "Part 2"]


async def test_a_photo_is_stored_and_answered_politely_and_an_edit_is_asked_anew(polling, tg):
    tg.push_update(tg.photo_update(SHOPPER))
    [reply] = await tg.wait_for_messages(SHOPPER, 1)
    assert reply["text"].startswith("I can only read text messages")
    assert stored(polling, "SELECT media FROM messages WHERE direction = 'in'") == [("photo",)]
    tg.push_update(tg.text_update(SHOPPER, "how long does shiping tak", message_id=90))
    await tg.wait_for_messages(SHOPPER, 2)
    tg.push_update(tg.edited_text_update(SHOPPER, 90, "what is your return policy?"))
    replies = await tg.wait_for_messages(SHOPPER, 3)
    assert "return" in replies[2]["text"].lower()


async def test_the_whole_handoff_runs_through_the_agents_group(tmp_path, tg):
    async with start_app(telegram_config(tmp_path, tg, handoff="enabled = true")) as app:
        tg.push_update(tg.text_update(SHOPPER, "/human", first_name="Mia"))
        [notice] = await tg.wait_for_messages(SHOPPER, 1)
        assert "passing this conversation" in notice["text"]
        [post] = await tg.wait_for_messages(AGENTS, 1)
        tag = conversation_tag("telegram", str(SHOPPER))
        assert post["text"].startswith("<b>Handoff</b>: Mia") and post["text"].endswith(f"#{tag}")
        assert post["parse_mode"] == "HTML"
        claim = post["reply_markup"]["inline_keyboard"][0][0]
        assert claim["text"] == "Claim"
        group_post = tg.bot_messages(AGENTS)[-1]

        # Somebody outside the team cannot act; an agent can.
        tg.push_update(tg.callback_update(AGENTS, 999, claim["callback_data"], group_post))
        tg.push_update(tg.callback_update(AGENTS, AGENT, claim["callback_data"], group_post, first_name="Lea"))
        joined = await tg.wait_for_messages(SHOPPER, 2)
        assert joined[1]["text"].startswith("Lea from the Test Shop team")
        for _ in range(100):  # the button is answered right after the claim; the notice may overtake it
            answers = [c.get("text") for c in tg.calls("answerCallbackQuery")]
            if len(answers) == 2:
                break
            await asyncio.sleep(0.05)
        assert answers[0] == "Only the shop's agents can do this." and answers[1] == "Done: agent"

        tg.push_update(tg.text_update(AGENTS, "Hi Mia, I'm looking at it now.", user_id=AGENT, first_name="Lea",
                                      chat_type="supergroup", reply_to_message=group_post))
        replies = await tg.wait_for_messages(SHOPPER, 3)
        assert replies[2]["text"] == "Hi Mia, I'm looking at it now."

        tg.push_update(tg.text_update(SHOPPER, "thank you, it's order 4711"))
        posts = await tg.wait_for_messages(AGENTS, 3)
        forwarded = [p for p in posts if "order 4711" in p["text"]]
        assert forwarded and forwarded[0]["text"].endswith(f"#{tag}")
        release = next(b for row in posts[-1]["reply_markup"]["inline_keyboard"] for b in row
                       if b["text"] == "Release to bot")
        tg.push_update(tg.callback_update(AGENTS, AGENT, release["callback_data"], tg.bot_messages(AGENTS)[-1],
                                          first_name="Lea"))
        back = await tg.wait_for_messages(SHOPPER, 4)
        assert back[3]["text"].startswith("You're chatting with Test Shop's assistant again")
        tg.push_update(tg.text_update(SHOPPER, "how long does shipping take?"))
        final = await tg.wait_for_messages(SHOPPER, 5)
        assert final[4]["text"].startswith("All orders ship")
        transcript = await app.transcript("telegram", str(SHOPPER))
        assert transcript is not None and [m.role.value for m in transcript.messages].count("agent") >= 1


async def test_a_webhook_shoppers_handoff_is_worked_from_telegram(tmp_path, tg):
    async with start_app(telegram_config(tmp_path, tg, handoff="enabled = true"),
                         channels=("webhook", "telegram")) as app:
        from test_webhook import post
        headers = {"Authorization": "Bearer test-token-0123456789"}
        async with aiohttp.ClientSession() as http:
            status, _ = await post(http, lambda p: app.http.base_url + p, headers, conversation_id="web-7",
                                   text="I want to talk to a human", message_id="1")
        assert status == 200
        [post_] = await tg.wait_for_messages(AGENTS, 1)
        assert "webhook:web-7" in post_["text"]
        tg.push_update(tg.text_update(AGENTS, "Hello from the team", user_id=AGENT, first_name="Lea",
                                      chat_type="supergroup", reply_to_message=tg.bot_messages(AGENTS)[-1]))
        for _ in range(100):
            transcript = await app.transcript("webhook", "web-7")
            if transcript and any(m.text == "Hello from the team" for m in transcript.messages):
                break
            await asyncio.sleep(0.1)
        assert any(m.text == "Hello from the team" and m.role.value == "agent" for m in transcript.messages)


async def test_webhook_mode_checks_the_secret_and_answers_once(tmp_path, tg):
    async with start_app(telegram_config(tmp_path, tg, mode="webhook")) as app:
        [registered] = tg.calls("setWebhook")
        secret = registered["secret_token"]
        assert registered["url"] == "https://shop.example/telegram/webhook" and len(secret) >= 32
        update = tg.text_update(SHOPPER, "how long does shipping take?")
        update["update_id"] = 5
        url = app.http.base_url + "/telegram/webhook"
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 401
                    assert "X-Telegram-Bot-Api-Secret-Token" in (await response.json())["detail"]
            assert stored(app, "SELECT COUNT(*) FROM messages") == [(0,)]
            good = {"X-Telegram-Bot-Api-Secret-Token": secret}
            for _ in range(2):  # Telegram redelivers when it did not see our 200
                async with http.post(url, json=update, headers=good) as response:
                    assert response.status == 200
            hostile = [b"{not json", b'{"update_id":7,"message":"x"}', b'{"update_id":8,"message":{"x":1}}',
                       b'{"update_id":9,"callback_query":[1]}', b"[" * 1000 + b"]" * 1000,
                       b'{"update_id":10,"message":{"text":"\\ud800"}}']
            for body in hostile:
                async with http.post(url, data=body, headers={**good, "Content-Type": "application/json"}) as response:
                    assert response.status == 400, body[:40]
                    assert (await response.json())["error"] in ("invalid_update", "invalid_json", "invalid_text")
        await tg.wait_for_messages(SHOPPER, 1)
        await asyncio.sleep(0.5)
        assert len(tg.messages_to(SHOPPER)) == 1
    assert len(tg.calls("setWebhook")) == 1 and not tg.calls("getUpdates")


async def test_a_reply_stored_before_a_crash_is_sent_exactly_once_after_restart(tmp_path, tg):
    path = telegram_config(tmp_path, tg, extra="max_attempts = 50")
    tg.fail_next("sendMessage", chat_id=SHOPPER, error_code=502, description="Bad Gateway", times=1000)
    async with start_app(path) as app:
        tg.push_update(tg.text_update(SHOPPER, "how long does shipping take?"))
        for _ in range(100):
            if stored(app, "SELECT COUNT(*) FROM messages WHERE direction = 'out'") == [(1,)]:
                break
            await asyncio.sleep(0.1)
    assert stored(app, "SELECT delivery FROM messages WHERE direction = 'out'") == [("pending",)]
    assert not tg.pending_updates  # the update was confirmed: it was stored before
    tg._failures.clear()
    async with start_app(path) as again:
        [reply] = await tg.wait_for_messages(SHOPPER, 1)
        assert reply["text"].startswith("All orders ship")
        await asyncio.sleep(0.5)
        assert len(tg.messages_to(SHOPPER)) == 1
        assert stored(again, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == [(1,)]


def test_a_missing_or_malformed_token_is_a_config_error(tmp_path, tg):
    path = telegram_config(tmp_path, tg)
    with pytest.raises(ConfigError, match="TEST_TG_TOKEN is not set"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="not a Telegram bot token"):
        load_config(path, environ={"TEST_TG_TOKEN": "hello"})


async def test_a_token_telegram_rejects_stops_the_start_with_a_clear_error(tmp_path, tg):
    path = telegram_config(tmp_path, tg)
    config = load_config(path, environ={"TEST_TG_TOKEN": "999999:ZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"})
    with pytest.raises(AdapterError, match="Telegram rejected the bot token"):
        async with KefuApp(config, channels=["telegram"], serve_http=True):
            pass
