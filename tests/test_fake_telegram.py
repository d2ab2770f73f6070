"""python-telegram-bot 22 against tests/fake_telegram.py: proof the fake speaks the Bot API well enough
that channel tests built on it exercise PTB's real request, parsing and error-mapping code."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator

import aiohttp
import pytest
from fake_telegram import FakeTelegram
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

TOKEN = "123456:FAKE-token_abc"
CHAT = 42
AGENTS_GROUP = -1001234567890


def make_bot(tg: FakeTelegram, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot")


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN, group_members={7}) as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with make_bot(tg) as running:  # initialize() calls getMe
        yield running


async def test_get_me_and_wrong_token(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "kefu_test_bot", True)
    assert tg.sent[0].method == "getMe"
    with pytest.raises(InvalidToken):
        async with make_bot(tg, token="123456:wrong"):
            pass
    assert tg.sent[-1].error_code == 401


async def test_send_message_with_inline_keyboard_round_trip(tg: FakeTelegram, bot: Bot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="handoff:yes"),
                                    InlineKeyboardButton("Help", url="https://shop.example/help")]])
    first = await bot.send_message(CHAT, "Talk to a person?", reply_markup=markup)
    second = await bot.send_message(CHAT, "123")  # a numeric text must stay a string
    assert first.reply_markup == markup
    assert first.from_user.id == tg.bot_user["id"] and first.chat.id == CHAT
    assert second.message_id == first.message_id + 1
    sent = tg.messages_to(CHAT)
    assert sent[0]["chat_id"] == CHAT and sent[1]["text"] == "123"
    assert sent[0]["reply_markup"] == {"inline_keyboard": [[
        {"text": "Yes", "callback_data": "handoff:yes"}, {"text": "Help", "url": "https://shop.example/help"}]]}

    # The shopper presses the button: the callback arrives, gets answered once, the keyboard goes.
    pushed = tg.push_update(tg.callback_update(CHAT, CHAT, "handoff:yes", tg.bot_messages(CHAT)[0]))
    (update,) = await bot.get_updates(timeout=0)
    query = update.callback_query
    assert (update.update_id, query.data, query.message.message_id) == (pushed["update_id"], "handoff:yes",
                                                                         first.message_id)
    assert await bot.answer_callback_query(query.id, text="OK")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query.id)
    edited = await bot.edit_message_reply_markup(CHAT, first.message_id, reply_markup=None)
    assert edited.reply_markup is None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(CHAT, first.message_id, reply_markup=None)
    edited = await bot.edit_message_text("A person will reply soon.", chat_id=CHAT, message_id=first.message_id)
    assert edited.text == "A person will reply soon." and edited.edit_date is not None
    assert await bot.send_chat_action(CHAT, "typing")


async def test_get_updates_long_polls_and_confirms_by_offset(tg: FakeTelegram, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done(), "getUpdates must wait for an update"
    pushed = tg.push_update(tg.text_update(CHAT, "where is my order?", language_code="zh"))
    (update,) = await asyncio.wait_for(poll, 2)
    assert loop.time() - started < 2
    assert update.update_id == pushed["update_id"]
    assert update.message.text == "where is my order?" and update.effective_user.language_code == "zh"
    assert tg.calls("getUpdates")[0] == {"timeout": 5}

    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [pushed["update_id"]], "not confirmed yet"
    assert await bot.get_updates(offset=pushed["update_id"] + 1, timeout=0) == ()
    assert (await bot.get_webhook_info()).pending_update_count == 0

    started = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= loop.time() - started < 2.5


async def test_get_updates_honours_limit_and_allowed_updates(tg: FakeTelegram, bot: Bot) -> None:
    tg.push_update(tg.text_update(CHAT, "hi"))
    message = (await bot.send_message(CHAT, "Hello!")).to_dict()
    callback = tg.push_update(tg.callback_update(CHAT, CHAT, "x", message))
    tg.push_update(tg.text_update(CHAT, "again"))
    assert len(await bot.get_updates(limit=2, timeout=0)) == 2
    (only,) = await bot.get_updates(allowed_updates=["callback_query"], timeout=0)
    assert only.update_id == callback["update_id"]
    assert tg.calls("getUpdates")[-1]["allowed_updates"] == ["callback_query"]


async def test_media_and_edited_updates_parse_in_ptb(tg: FakeTelegram, bot: Bot) -> None:
    photo = tg.push_update(tg.photo_update(CHAT, caption="broken item"))
    tg.push_update(tg.sticker_update(CHAT))
    tg.push_update(tg.edited_text_update(CHAT, photo["message"]["message_id"], "edited"))
    group = tg.push_update(tg.text_update(AGENTS_GROUP, "/claim@kefu_test_bot 5", user_id=7, chat_type="supergroup"))
    photo_u, sticker_u, edited_u, group_u = await bot.get_updates(timeout=0)
    assert photo_u.message.photo[-1].width == 800 and photo_u.message.caption == "broken item"
    assert sticker_u.message.sticker.emoji == "👍"
    assert sticker_u.message.message_id == photo_u.message.message_id + 1
    assert edited_u.edited_message.text == "edited"
    assert group_u.message.chat.type == "supergroup" and group_u.message.from_user.id == 7
    assert group["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 20}]


async def test_application_polling_runs_command_and_text_handlers(tg: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(f"Hello {update.effective_user.first_name}!")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(f"You said: {update.message.text}")

    application = (Application.builder().token(TOKEN)
                   .base_url(f"{tg.url}/bot").base_file_url(f"{tg.url}/file/bot").build())
    application.add_handler(CommandHandler("start", start))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    await application.initialize()
    await application.start()
    await application.updater.start_polling(poll_interval=0, timeout=1)
    try:
        tg.push_update(tg.text_update(CHAT, "/start", first_name="Mei"))
        last = tg.push_update(tg.text_update(CHAT, "where is my parcel?"))
        sent = await tg.wait_for_messages(CHAT, 2, timeout=5)
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()
    assert [m["text"] for m in sent] == ["Hello Mei!", "You said: where is my parcel?"]
    assert tg.sent[1].method == "deleteWebhook", "polling bootstrap removes any webhook first"
    assert tg.calls("getUpdates")[-1]["offset"] == last["update_id"] + 1, "shutdown confirms what it fetched"
    assert tg.pending_updates == []


async def test_scripted_429_raises_retry_after_for_that_chat_only(tg: FakeTelegram, bot: Bot,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # retry_after as timedelta, without PTB's deprecation warning
    tg.fail_next("sendMessage", chat_id=CHAT, retry_after=3, description="Too Many Requests: retry after 3")
    await bot.send_message(CHAT + 1, "other chats are unaffected")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=3)
    await bot.send_message(CHAT, "hi again")
    assert [m["text"] for m in tg.messages_to(CHAT)] == ["hi again"]
    assert [c.error_code for c in tg.sent if c.method == "sendMessage"] == [None, 429, None]


async def test_scripted_403_and_5xx(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")
    tg.fail_next("sendMessage", error_code=502, description="Bad Gateway", times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(CHAT, "hi")
    tg.fail_next("getChatMember", error_code=500, description="Internal Server Error")
    with pytest.raises(NetworkError):
        await bot.get_chat_member(AGENTS_GROUP, 7)
    assert (await bot.get_chat_member(AGENTS_GROUP, 7)).status == "member"
    assert (await bot.get_chat_member(AGENTS_GROUP, 8)).status == "left"
    assert tg.messages_to(CHAT) == []


async def test_set_webhook_and_get_webhook_info_round_trip(tg: FakeTelegram, bot: Bot) -> None:
    tg.push_update(tg.text_update(CHAT, "stale"))
    assert await bot.set_webhook("https://shop.example/telegram", secret_token="s3cret-Token_1",
                                 allowed_updates=["message", "callback_query"], drop_pending_updates=True)
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.allowed_updates) == (
        "https://shop.example/telegram", 0, ("message", "callback_query"))
    assert tg.webhook.secret_token == "s3cret-Token_1"  # Telegram never echoes it back
    assert tg.calls("setWebhook")[0]["drop_pending_updates"] is True
    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates(timeout=0)
    with pytest.raises(BadRequest, match="(?i)https url"):
        await bot.set_webhook("http://127.0.0.1:8080/telegram")
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


async def test_commands_chat_and_raw_protocol(tg: FakeTelegram, bot: Bot) -> None:
    assert await bot.set_my_commands([("start", "Start over"), ("human", "Talk to a person")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "human"]
    assert await bot.delete_my_commands() and await bot.get_my_commands() == ()
    with pytest.raises(BadRequest):
        await bot.get_chat(CHAT)
    tg.push_update(tg.text_update(CHAT, "hi", first_name="Mei"))
    assert (await bot.get_chat(CHAT)).first_name == "Mei"
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("frobnicate")
    assert await bot.close() and await bot.log_out()

    async with aiohttp.ClientSession() as http:  # other clients send JSON bodies
        async with http.post(f"{tg.url}/bot{TOKEN}/sendMessage", json={"chat_id": CHAT, "text": "raw"}) as r:
            assert r.status == 200
            body = await r.json()
        async with http.get(f"{tg.url}/bot{TOKEN}/noSuchMethod") as r:
            assert (r.status, await r.json()) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert body["ok"] is True and body["result"]["text"] == "raw"


async def test_stopping_the_server_releases_long_polls() -> None:
    fake = FakeTelegram(token=TOKEN)
    await fake.start()
    bot = make_bot(fake)
    await bot.initialize()
    try:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        await fake.stop()
        assert await asyncio.wait_for(poll, 3) == ()
        assert asyncio.get_running_loop().time() - started < 3
    finally:
        await bot.shutdown()
