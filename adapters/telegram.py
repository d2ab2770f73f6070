"""The Telegram channel (python-telegram-bot 22): shoppers chat with the shop's bot, agents work from a group.

Translation only. An update becomes one `Message` (commands, button presses, photos and
edits included) that the core stores and answers; a `Reply` becomes `sendMessage` calls.

- Nothing is lost: in polling mode an update is confirmed to Telegram (the next
  `getUpdates` offset) only after the core stored it; in webhook mode the request is
  answered 200 only after that. A redelivered update has the same external id, so the
  store answers it once. Replies go out through the core's delivery worker: a reply
  stored before a crash is sent at the next start, and Telegram's `retry_after` is honoured.
- Agents: handoffs and the shopper's later messages are posted to the agents' group with
  claim / release / close buttons; an agent answers a shopper by replying (Telegram's
  reply) to one of those posts, whatever channel the shopper uses.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import re
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from telegram import Bot, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram import Message as TgMessage
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bot.config import Config, TelegramConfig
from bot.errors import (AdapterError, ConversationNotFoundError, DeliveryError, HandoffConflictError, KefuError,
                        OverloadedError)
from bot.json_input import loads_json
from bot.messages import DeliveryPolicy, HandoffState, Link, Message, Reply
from bot.messages import split_text as split_parts

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
POLLING_ROLE = "telegram-polling"  # Telegram allows one getUpdates caller per bot: one worker polls
MEDIA_KINDS = ("photo", "sticker", "voice", "video", "video_note", "audio", "animation", "document", "location",
               "venue", "contact", "poll", "dice")
TYPING_EVERY_SECONDS = 4.5  # Telegram shows "typing…" for 5 seconds per chat action
TYPING_AT_MOST_SECONDS = 60.0
CONVERSATION_TAG = re.compile(r"#k([0-9a-f]{12})\b")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
COMMAND_MENU = {"start": "Main topics", "help": "What I can do", "human": "Talk to a person",
                "lang": "Choose my language, e.g. /lang de", "reset": "Start over",
                "bot": "Leave the queue for a person, back to the bot"}
AGENT_STATUSES = ("creator", "administrator", "member")
MEMBERSHIP_CACHE_SECONDS = 60.0


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Telegram takes at most 4096 characters per message."""
    return split_parts(text, limit)


def file_base_url(api_base_url: str) -> str:
    """Telegram serves files under /file/bot<token>/ next to /bot<token>/."""
    head, _, tail = api_base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if head else api_base_url


def conversation_tag(channel: str, conversation: str) -> str:
    """A short, stable tag for a conversation in the agents' group ("#k3f9a…"): ids of other
    channels can be long, and Telegram's button data holds at most 64 bytes."""
    return "k" + hashlib.sha256(f"{channel}:{conversation}".encode()).hexdigest()[:12]


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def retry_after_seconds(error: RetryAfter) -> float:
    # PTB 22 warns that `retry_after` will become a timedelta; both forms are handled here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return _seconds(error.retry_after)


@dataclass(frozen=True)
class AgentAction:
    action: str  # claim / release / close
    tag: str


class TelegramChannel:
    name = CHANNEL

    def __init__(self, *, config: TelegramConfig, gateway: Any, http_app: web.Application | None,
                 shop_name: str):
        self._config = config
        self._gateway = gateway
        self._shop = shop_name
        self.delivery = DeliveryPolicy(max_attempts=config.max_attempts, backoff_seconds=config.backoff_seconds)
        self.bot = Bot(
            config.token, base_url=config.api_base_url,
            base_file_url=file_base_url(config.api_base_url),
            request=HTTPXRequest(connection_pool_size=16, read_timeout=15.0),
            get_updates_request=HTTPXRequest(read_timeout=config.poll_timeout_seconds + 15.0),
        )
        self.agent_notifier = TelegramAgentNotifier(self) if config.agents_chat_id is not None else None
        self._poller: asyncio.Task[None] | None = None
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._members: dict[int, tuple[bool, float]] = {}  # user id -> (in the agents' group, checked at)
        self._stopping = asyncio.Event()
        self.ready = False  # the bot is initialized: the core's workers may send
        if config.mode == "webhook":
            if http_app is None:
                raise AdapterError("Telegram webhook mode needs kefu's HTTP server (kefu serve)")
            http_app.router.add_post(config.webhook_path, self._on_webhook)

    @property
    def agents_chat_id(self) -> int | None:
        return self._config.agents_chat_id

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.bot.initialize()  # getMe: a wrong token fails here, not at the first shopper
        except InvalidToken as exc:
            raise AdapterError(f"Telegram rejected the bot token (telegram.token_env): {exc}") from exc
        except TelegramError as exc:
            raise AdapterError(f"cannot reach the Telegram Bot API at {self._config.api_base_url}: {exc}") from exc
        self.ready = True
        config = self._config
        try:  # the command menu Telegram shows next to the text box
            await self.bot.set_my_commands(list(COMMAND_MENU.items()))
        except TelegramError as exc:
            log.warning("telegram.commands_not_set error=%s", exc)
        if config.mode == "webhook":
            await self.bot.set_webhook(config.webhook_url, secret_token=config.secret_token,
                                       drop_pending_updates=config.drop_pending_updates,
                                       allowed_updates=ALLOWED_UPDATES)
            log.info("telegram.webhook_set url=%s bot=@%s", config.webhook_url, self.bot.username)
        else:
            await self.bot.delete_webhook(drop_pending_updates=config.drop_pending_updates)
            self._poller = asyncio.create_task(self._poll(), name="kefu-telegram-poll")
            log.info("telegram.polling bot=@%s", self.bot.username)

    async def wait(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        self._stopping.set()
        self.ready = False
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in self._typing.values():
            task.cancel()
        await asyncio.gather(*self._typing.values(), return_exceptions=True)
        await self.bot.shutdown()

    # -- receiving ---------------------------------------------------------------

    async def _poll(self) -> None:
        """Long polling; an offset confirms updates, so it moves only past updates the core has stored."""
        offset: int | None = None
        failures = 0
        while not self._stopping.is_set():
            if not self._gateway.leads(POLLING_ROLE):  # several workers: one polls, the others wait their turn
                log.info("telegram.poll_waiting_to_lead (one worker polls for all)")
                await self._gateway.wait_to_lead(POLLING_ROLE)
                log.info("telegram.polling_here bot=@%s", self.bot.username)
                offset = None  # start from what Telegram has not had confirmed, whoever polled before
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=self._config.poll_timeout_seconds,
                                                     allowed_updates=ALLOWED_UPDATES)
            except RetryAfter as exc:
                await asyncio.sleep(retry_after_seconds(exc))
                continue
            except InvalidToken:
                log.error("telegram.poll_stopped reason=the token was revoked")
                self._stopping.set()
                return
            except (NetworkError, TelegramError) as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("telegram.poll_failed error=%s retry_in=%.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for update in updates:
                try:
                    await self._receive_until_stored(update)
                except (TelegramError, ValueError, AttributeError, TypeError):
                    # A bug or an update kefu cannot translate must not stop the bot for everyone.
                    log.exception("telegram.update_failed update=%d (skipped)", update.update_id)
                offset = update.update_id + 1

    async def _receive_until_stored(self, update: Update) -> None:
        """Store one update, retrying while the core is busy: an unstored update must not be confirmed."""
        delay = 0.5
        while True:
            try:
                await self.receive(update)
                return
            except OverloadedError as exc:  # not stored: wait as kefu asks, the offset stays put
                if self._stopping.is_set():
                    raise asyncio.CancelledError from exc
                log.info("telegram.overloaded update=%d retry_in=%ds", update.update_id, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except KefuError as exc:
                if self._stopping.is_set():
                    raise asyncio.CancelledError from exc
                log.warning("telegram.store_failed update=%d error=%s retry_in=%.1fs", update.update_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._config.secret_token.encode()):
            log.warning("telegram.webhook_rejected reason=wrong or missing %s from %s", SECRET_HEADER,
                        request.remote)
            return web.json_response({"error": "unauthorized", "detail": f"missing or wrong {SECRET_HEADER}"},
                                     status=401)
        try:
            data = loads_json(await request.read())
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("expected a JSON object with an integer update_id")
            # PTB maps a malformed field ("message": "x") to whatever its constructors raise.
            update = Update.de_json(data, self.bot)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # InvalidJson is a ValueError
            return web.json_response({"error": "invalid_update", "detail": f"not a Telegram update: {exc}"},
                                     status=400)
        try:
            await self.receive(update)
        except OverloadedError as exc:  # not stored; Telegram sends the update again later
            log.info("telegram.webhook_overloaded update=%d retry_after=%d", update.update_id, exc.retry_after)
            return web.json_response({"error": "overloaded", "reason": str(exc), "retry_after": exc.retry_after},
                                     status=429, headers={"Retry-After": str(exc.retry_after)})
        except KefuError as exc:  # Telegram retries a failed webhook call: nothing is lost
            log.warning("telegram.webhook_store_failed update=%d error=%s", update.update_id, exc)
            return web.json_response({"error": "unavailable", "detail": str(exc)}, status=503)
        return web.json_response({"ok": True})

    async def receive(self, update: Update) -> None:
        """One update from Telegram, by polling or webhook; returns once the core has stored it."""
        if update.callback_query is not None:
            await self._on_button(update.callback_query)
            return
        message = update.message or update.edited_message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return
        if self._config.agents_chat_id is not None and message.chat_id == self._config.agents_chat_id:
            await self._on_agent_message(message)
            return
        if message.chat.type != "private":
            return  # shoppers talk to the bot in private; other groups are not kefu's business
        edited = update.edited_message is not None
        await self._accept(self._shopper_message(message, edited))

    def _shopper_message(self, message: TgMessage, edited: bool) -> Message:
        user = message.from_user
        assert user is not None
        external = f"{message.chat_id}:{message.message_id}"
        if edited and message.edit_date is not None:
            external += f":edit:{int(message.edit_date.timestamp())}"  # a corrected question is asked anew
        media = next((kind for kind in MEDIA_KINDS if getattr(message, kind, None)), None)
        return Message(channel=CHANNEL, conversation=str(message.chat_id), user_id=str(user.id),
                       text=message.text or message.caption or "", external_id=external,
                       display_name=user.full_name, language_hint=user.language_code, media=media,
                       timestamp=message.date)

    async def _accept(self, message: Message) -> None:
        result = await self._gateway.accept(message)
        if not result.duplicate and result.state in (HandoffState.BOT, HandoffState.CLOSED):
            self._show_typing(message.conversation)

    async def _on_button(self, query: CallbackQuery) -> None:
        data = query.data or ""
        message = query.message
        if data.startswith("a:"):
            await self._on_agent_button(query, data)
            return
        if not data.startswith("q:") or not isinstance(message, TgMessage) or query.from_user is None:
            await self._answer_query(query)
            return
        # The button's label is the question: pressing it asks that question.
        buttons = [b for row in (message.reply_markup.inline_keyboard if message.reply_markup else ()) for b in row]
        text = next((b.text for b in buttons if b.callback_data == data), None)
        await self._answer_query(query)
        if text is None:
            return
        user = query.from_user
        await self._accept(Message(channel=CHANNEL, conversation=str(message.chat_id), user_id=str(user.id),
                                   text=text, external_id=f"button:{query.id}", display_name=user.full_name,
                                   language_hint=user.language_code))

    async def _answer_query(self, query: CallbackQuery, text: str | None = None) -> None:
        try:
            await query.answer(text)
        except TelegramError as exc:  # an old button (queries expire): the press itself was handled
            log.info("telegram.callback_answer_failed error=%s", exc)

    # -- typing indicator --------------------------------------------------------

    def _show_typing(self, chat: str) -> None:
        if chat in self._typing:
            return
        self._typing[chat] = asyncio.create_task(self._keep_typing(chat), name=f"kefu-telegram-typing-{chat}")

    async def _keep_typing(self, chat: str) -> None:
        try:
            async with asyncio.timeout(TYPING_AT_MOST_SECONDS):
                while True:
                    await self.bot.send_chat_action(int(chat), ChatAction.TYPING)
                    await asyncio.sleep(TYPING_EVERY_SECONDS)
        except (TelegramError, TimeoutError) as exc:
            log.debug("telegram.typing_stopped chat=%s reason=%s", chat, exc)
        finally:
            self._typing.pop(chat, None)

    def _stop_typing(self, chat: str) -> None:
        task = self._typing.pop(chat, None)
        if task is not None:
            task.cancel()

    # -- sending -----------------------------------------------------------------

    async def deliver(self, reply: Reply) -> None:
        """Called by the core's delivery worker until it succeeds (DeliveryError says when to retry)."""
        self._stop_typing(reply.conversation)
        if reply.channel != CHANNEL:
            raise DeliveryError(f"not a Telegram reply: {reply.channel}", permanent=True)
        parts = split_text(reply.text) or ["…"]
        keyboard = quick_reply_keyboard(reply.quick_replies, reply.links)
        for index in range(min(reply.parts_sent, len(parts) - 1), len(parts)):  # a retry sends the rest
            last = index == len(parts) - 1
            await self.send(int(reply.conversation), parts[index], keyboard if last else None)
            if not last and reply.message_id is not None:  # the last: delivered, recorded by the core
                await self._gateway.record_parts_sent(reply.message_id, index + 1)

    async def send(self, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None = None,
                   *, html_text: bool = False, reply_to: int | None = None) -> TgMessage:
        if not self.ready:  # the workers start before the channel: they retry shortly
            raise DeliveryError("the Telegram channel is not running")
        try:
            return await self.bot.send_message(chat_id, text, reply_markup=keyboard,
                                               parse_mode="HTML" if html_text else None,
                                               reply_to_message_id=reply_to)
        except RetryAfter as exc:
            seconds = retry_after_seconds(exc)
            raise DeliveryError(f"Telegram flood control: retry in {seconds:g}s", retry_after=seconds) from exc
        except Forbidden as exc:  # the shopper blocked the bot or deleted the chat: retrying cannot help
            log.warning("telegram.blocked chat=%s error=%s", chat_id, exc)
            raise DeliveryError(f"the user blocked the bot or left the chat: {exc}", permanent=True) from exc
        except BadRequest as exc:
            raise DeliveryError(f"Telegram refused the message: {exc}", permanent=True) from exc
        except TelegramError as exc:  # network errors and Telegram's 5xx: the worker retries with backoff
            raise DeliveryError(f"Telegram send failed: {exc}") from exc

    # -- agents ------------------------------------------------------------------

    async def _is_agent(self, user_id: int | None) -> bool:
        """Configured agent ids when given, else whoever is a member of the agents' group right now."""
        if user_id is None:
            return False
        if self._config.agent_user_ids:
            return user_id in self._config.agent_user_ids
        chat = self._config.agents_chat_id
        if chat is None:
            return False
        now = asyncio.get_running_loop().time()
        cached = self._members.get(user_id)
        if cached is not None and now - cached[1] < MEMBERSHIP_CACHE_SECONDS:
            return cached[0]
        try:
            member = await self.bot.get_chat_member(chat, user_id)
        except TelegramError as exc:
            log.warning("telegram.membership_check_failed user=%s error=%s", user_id, exc)
            return False
        allowed = member.status in AGENT_STATUSES
        self._members[user_id] = (allowed, now)
        return allowed

    async def _find(self, tag: str) -> tuple[str, str] | None:
        """The conversation behind a tag, among those agents handle (or handled)."""
        everything = (HandoffState.WAITING_AGENT, HandoffState.AGENT, HandoffState.CLOSED, HandoffState.BOT)
        for summary in await self._gateway.handoffs(everything):
            if conversation_tag(summary.channel, summary.conversation) == tag:
                return summary.channel, summary.conversation
        return None

    async def _on_agent_button(self, query: CallbackQuery, data: str) -> None:
        parts = data.split(":")
        message = query.message
        user = query.from_user
        if len(parts) != 3 or user is None or not await self._is_agent(user.id):
            await self._answer_query(query, "Only the shop's agents can do this.")
            return
        action, tag = parts[1], parts[2]
        found = await self._find(tag)
        if found is None:
            await self._answer_query(query, "This conversation is no longer in the queue.")
            return
        agent = agent_name(user)
        try:
            summary = await getattr(self._gateway, {"c": "claim", "r": "release", "x": "close"}[action])(
                found[0], found[1], agent)
        except (HandoffConflictError, ConversationNotFoundError, KeyError) as exc:
            await self._answer_query(query, str(exc)[:190])
            return
        await self._answer_query(query, f"Done: {summary.state.value}")
        if message is not None:
            await self.send(message.chat.id, html.escape(f"{agent}: {summary.state.value} · "
                                                         f"{found[0]}:{found[1]}") + f" #{tag}",
                            agent_keyboard(tag, summary.state), html_text=True)

    async def _on_agent_message(self, message: TgMessage) -> None:
        """An agent's reply to a post about a conversation goes to that conversation's shopper."""
        user = message.from_user
        replied = message.reply_to_message
        if user is None or replied is None or not message.text or not await self._is_agent(user.id):
            return
        found_tag = CONVERSATION_TAG.search(replied.text or "")
        if found_tag is None:
            return
        found = await self._find("k" + found_tag.group(1))
        if found is None:
            await self._agent_feedback(message, "This conversation is no longer in the queue.")
            return
        agent = agent_name(user)
        try:
            await self._gateway.agent_reply(found[0], found[1], agent, message.text)
        except HandoffConflictError:
            try:  # answering a waiting shopper is claiming them
                await self._gateway.claim(found[0], found[1], agent)
                await self._gateway.agent_reply(found[0], found[1], agent, message.text)
            except (HandoffConflictError, ConversationNotFoundError) as exc:
                await self._agent_feedback(message, f"Not sent: {exc}")
        except ConversationNotFoundError as exc:
            await self._agent_feedback(message, f"Not sent: {exc}")

    async def _agent_feedback(self, message: TgMessage, text: str) -> None:
        try:
            await self.send(message.chat_id, text, reply_to=message.message_id)
        except DeliveryError as exc:
            log.warning("telegram.agent_feedback_failed error=%s", exc)


def agent_name(user: Any) -> str:
    return user.full_name or (f"@{user.username}" if user.username else str(user.id))


def quick_reply_keyboard(questions: tuple[str, ...], links: tuple[Link, ...] = ()) -> InlineKeyboardMarkup | None:
    """One button per suggested question (the data is only an index: Telegram allows 64 bytes), then one
    URL button per offered link (a product page)."""
    if not questions and not links:
        return None
    rows = [[InlineKeyboardButton(q[:60], callback_data=f"q:{i}")] for i, q in enumerate(questions)]
    rows += [[InlineKeyboardButton(link.title[:60], url=link.url)] for link in links]
    return InlineKeyboardMarkup(rows)


def agent_keyboard(tag: str, state: HandoffState) -> InlineKeyboardMarkup | None:
    buttons = {
        HandoffState.WAITING_AGENT: [("Claim", "c"), ("Close", "x")],
        HandoffState.AGENT: [("Release to bot", "r"), ("Close", "x")],
    }.get(state, [])
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=f"a:{code}:{tag}")
                                  for label, code in buttons]])


class TelegramAgentNotifier:
    """Posts handoffs and the shopper's later messages to the agents' group (a core `Notifier`)."""

    name = "telegram"

    def __init__(self, channel: TelegramChannel):
        self._channel = channel
        self.policy = channel.delivery

    async def start(self) -> None:
        """The channel owns the bot; it is started with the channel."""

    async def stop(self) -> None:
        """See start."""

    async def send(self, notification_id: int, event: str, payload: dict[str, Any]) -> None:
        chat = self._channel.agents_chat_id
        assert chat is not None
        tag = conversation_tag(payload["channel"], payload["conversation_id"])
        who = html.escape(payload.get("display_name") or payload.get("user_id") or "shopper")
        where = html.escape(f"{payload['channel']}:{payload['conversation_id']}")
        if event == "handoff.requested":
            lines = [f"<b>Handoff</b>: {who} ({where}) · reason: {html.escape(str(payload.get('reason')))}"]
            if payload.get("detail"):
                lines.append(html.escape(str(payload["detail"])))
            if payload.get("mood") is not None:
                lines.append(f"mood {payload['mood']:+.2f}")
            for entry in payload.get("last_messages", [])[-6:]:
                lines.append(f"<i>{html.escape(str(entry.get('role')))}</i>: {html.escape(str(entry.get('text')))}")
            lines.append("Reply to this message to answer the shopper.")
            state = HandoffState.WAITING_AGENT
        elif event == "handoff.shopper_message":
            lines = [f"<b>{who}</b> ({where}): {html.escape(str(payload.get('text') or '(no text)'))}"]
            state = HandoffState(payload.get("state", "waiting_agent"))
        else:
            lines = [f"{html.escape(event)}: {who} ({where})"]
            state = HandoffState(payload.get("state", "bot"))
        text = "\n".join(lines)
        footer = f"\n#{tag}"
        body = split_text(text, MessageLimit.MAX_TEXT_LENGTH - len(footer))
        for index, part in enumerate(body):
            last = index == len(body) - 1
            await self._channel.send(chat, part + footer, agent_keyboard(tag, state) if last else None,
                                     html_text=True)


def create_adapter(*, config: Config, gateway: Any, http_app: web.Application | None = None) -> TelegramChannel:
    if not config.telegram.enabled:
        raise AdapterError("the Telegram channel is off: set [telegram] enabled = true")
    return TelegramChannel(config=config.telegram, gateway=gateway, http_app=http_app, shop_name=config.shop.name)
