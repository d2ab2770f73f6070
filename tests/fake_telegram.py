"""A fake Telegram Bot API server on 127.0.0.1, so channel tests can run python-telegram-bot for real.

It speaks the Bot API's HTTP protocol (``/bot<token>/<method>``, ``{"ok": ..., "result": ...}``),
so PTB's own request, parsing and error-mapping code is exercised instead of mocked away::

    async with FakeTelegram(token="123:ABC") as tg:
        app = (Application.builder().token(tg.token)
               .base_url(f"{tg.url}/bot").base_file_url(f"{tg.url}/file/bot").build())
        tg.push_update(tg.text_update(42, "/start"))
        await tg.wait_for_messages(42, 1)

Parameters arrive the way PTB sends them: form-encoded (multipart when files are uploaded), strings
raw and every other value JSON-dumped, so ``reply_markup`` and ``allowed_updates`` are JSON text in
a form field. Application/JSON bodies and query strings (what other clients use) work as well.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from loopback import LoopbackServer

JSONDict = dict[str, Any]

# Parameters Telegram treats as strings. PTB sends strings raw and everything else JSON-dumped, so a
# text of "123" or "true" must not be decoded as JSON; all other parameters are.
STRING_PARAMS = frozenset({
    "text", "caption", "parse_mode", "url", "secret_token", "ip_address", "action", "callback_query_id",
    "inline_message_id", "language_code", "description", "short_description", "name", "title", "query",
    "emoji", "message_effect_id", "business_connection_id", "photo", "sticker", "document", "file_id",
})
# Update types Telegram sends when allowed_updates is unset or empty.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
MAX_TEXT_CHARS = 4096
COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message")


class ApiError(Exception):
    """A Bot API error reply; raised inside method handlers and turned into ``{"ok": false, ...}``."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class ApiCall:
    """One request the bot made: the canonical method name, its decoded parameters and, if it failed,
    the error code it got (so tests can tell an attempted send from a delivered one)."""

    method: str
    params: JSONDict
    error_code: int | None = None


@dataclass
class UploadedFile:
    """A file part of a multipart request, kept so tests can check what was uploaded."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass
class ScriptedFailure:
    """A failure `fail_next` queued: matching calls get this error instead of being served."""

    method: str
    chat_id: int | str | None
    error: ApiError
    times: int
    after: int = 0  # matching calls served normally first


@dataclass
class WebhookState:
    """What setWebhook stored. `secret_token` is kept here because getWebhookInfo (like Telegram's)
    never reveals it."""

    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    ip_address: str | None = None
    has_custom_certificate: bool = False


@dataclass
class _Counters:
    """Id sequences; message ids are per chat, as Telegram numbers private-chat messages."""

    update_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    callback_id: itertools.count[int] = field(default_factory=lambda: itertools.count(7_000_000_001))
    file_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    message_ids: dict[int, int] = field(default_factory=dict)


def _decode(name: str, value: str) -> Any:
    if name in STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _update_type(update: JSONDict) -> str:
    return next((key for key in update if key != "update_id"), "")


def _same_chat(a: Any, b: Any) -> bool:
    return str(a) == str(b)


class FakeTelegram(LoopbackServer):
    """A per-test Bot API server; every instance owns its queue, records and scripted failures."""

    def __init__(self, token: str = "123456:TEST-TOKEN", *, bot_username: str = "kefu_test_bot",
                 bot_first_name: str = "Kefu Test Bot", group_members: Iterable[int] = (),
                 shutdown_timeout: float = 5.0) -> None:
        bot_id = token.split(":", 1)[0]
        self.token = token
        self.bot_user: JSONDict = {
            "id": int(bot_id) if bot_id.isdigit() else 123456, "is_bot": True,
            "first_name": bot_first_name, "username": bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        self.group_members: set[int] = set(group_members)
        self.sent: list[ApiCall] = []
        self.webhook = WebhookState()
        self.commands: dict[str, list[JSONDict]] = {}
        self.allowed_updates: list[str] = []
        self.shutdown_timeout = shutdown_timeout
        self._pending: list[JSONDict] = []
        self._failures: list[ScriptedFailure] = []
        self._ids = _Counters()
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._chats: dict[int, JSONDict] = {}
        self._users: dict[int, JSONDict] = {}
        self._open_callbacks: set[str] = set()
        self._poll_generation = 0
        self.poll_conflicts = 0  # getUpdates calls ended by a newer one: two bots polling one token
        self._closing = False
        self._pulse_event = asyncio.Event()
        self._methods: dict[str, tuple[str, Callable[[JSONDict], Awaitable[Any]]]] = {
            name.lower(): (name, handler) for name, handler in {
                "getMe": self._get_me, "getUpdates": self._get_updates, "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook, "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message, "sendChatAction": self._send_chat_action,
                "answerCallbackQuery": self._answer_callback_query,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "editMessageText": self._edit_message_text, "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands, "deleteMyCommands": self._delete_my_commands,
                "getChat": self._get_chat, "getChatMember": self._get_chat_member,
                "close": self._true, "logOut": self._true,
            }.items()
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    def release_waiters(self) -> None:
        """Release every long poll first, so shutting down never waits out a poll's timeout."""
        self._closing = True
        self._pulse()

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._pending)

    # -- updates -----------------------------------------------------------------------------------

    def push_update(self, update: JSONDict) -> JSONDict:
        """Queue `update` for getUpdates (assigning update_id if missing) and return it."""
        if "update_id" not in update:
            update["update_id"] = next(self._ids.update_id)
        self._learn(update)
        self._pending.append(update)
        self._pulse()
        return update

    def text_update(self, chat_id: int, text: str, *, user_id: int | None = None, first_name: str = "Ann",
                    language_code: str = "en", chat_type: str = "private", message_id: int | None = None,
                    reply_to_message: JSONDict | None = None) -> JSONDict:
        """A `message` update; a leading /command gets the bot_command entity CommandHandler needs."""
        content: JSONDict = {"text": text}
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if reply_to_message is not None:
            content["reply_to_message"] = reply_to_message
        return self._message_update("message", chat_id, user_id, first_name, language_code, chat_type,
                                    message_id, content)

    def edited_text_update(self, chat_id: int, message_id: int, text: str, *, user_id: int | None = None,
                           first_name: str = "Ann", language_code: str = "en",
                           chat_type: str = "private") -> JSONDict:
        """An `edited_message` update for a message the user sent earlier."""
        update = self._message_update("edited_message", chat_id, user_id, first_name, language_code,
                                      chat_type, message_id, {"text": text, "edit_date": int(time.time())})
        original = self._messages.get((chat_id, message_id))
        if original is not None:  # an edit keeps the message's original date
            update["edited_message"]["date"] = original["date"]
        return update

    def photo_update(self, chat_id: int, *, caption: str | None = None, user_id: int | None = None,
                     first_name: str = "Ann", language_code: str = "en", chat_type: str = "private",
                     message_id: int | None = None) -> JSONDict:
        """A `message` update carrying a photo (two sizes, as Telegram sends), optionally captioned."""
        n = next(self._ids.file_id)
        content: JSONDict = {"photo": [
            {"file_id": f"photo-small-{n}", "file_unique_id": f"ps{n}", "width": 90, "height": 67, "file_size": 1200},
            {"file_id": f"photo-{n}", "file_unique_id": f"p{n}", "width": 800, "height": 600, "file_size": 54000},
        ]}
        if caption is not None:
            content["caption"] = caption
        return self._message_update("message", chat_id, user_id, first_name, language_code, chat_type,
                                    message_id, content)

    def sticker_update(self, chat_id: int, *, emoji: str = "👍", user_id: int | None = None,
                       first_name: str = "Ann", language_code: str = "en", chat_type: str = "private",
                       message_id: int | None = None) -> JSONDict:
        """A `message` update carrying a regular sticker."""
        n = next(self._ids.file_id)
        content: JSONDict = {"sticker": {
            "file_id": f"sticker-{n}", "file_unique_id": f"s{n}", "type": "regular", "width": 512,
            "height": 512, "is_animated": False, "is_video": False, "emoji": emoji,
        }}
        return self._message_update("message", chat_id, user_id, first_name, language_code, chat_type,
                                    message_id, content)

    def callback_update(self, chat_id: int, user_id: int, data: str, message: JSONDict, *,
                        first_name: str = "Ann", language_code: str = "en") -> JSONDict:
        """A `callback_query` update: `user_id` pressed a button with `data` under `message`."""
        return {"callback_query": {
            "id": str(next(self._ids.callback_id)),
            "from": self._user(user_id, first_name, language_code),
            "message": message, "chat_instance": f"ci{chat_id}", "data": data,
        }}

    # -- inspection --------------------------------------------------------------------------------

    def calls(self, method: str) -> list[JSONDict]:
        """Parameters of every call to `method` (successful or not), in order."""
        return [call.params for call in self.sent if call.method.lower() == method.lower()]

    def messages_to(self, chat_id: int | str) -> list[JSONDict]:
        """sendMessage parameters for `chat_id` that Telegram accepted, in order."""
        return [call.params for call in self.sent
                if call.method == "sendMessage" and call.error_code is None
                and _same_chat(call.params.get("chat_id"), chat_id)]

    def bot_messages(self, chat_id: int) -> list[JSONDict]:
        """The Message objects the bot has in `chat_id` as they are now (after any edits)."""
        return [message for (chat, _), message in self._messages.items()
                if chat == chat_id and message.get("from", {}).get("id") == self.bot_user["id"]]

    async def wait_for_messages(self, chat_id: int | str, count: int, timeout: float = 10.0) -> list[JSONDict]:
        """Wait until `count` messages were sent to `chat_id`; fail with what was sent if they never come."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages_to(chat_id)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                texts = [params.get("text") for params in self.messages_to(chat_id)]
                others = [(call.method, call.params, call.error_code) for call in self.sent
                          if call.method != "getUpdates"][-10:]
                raise AssertionError(
                    f"expected {count} message(s) to chat {chat_id} within {timeout}s, got {len(texts)}: "
                    f"{texts!r}; last non-polling calls: {others!r}")
            event = self._pulse_event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass
        return self.messages_to(chat_id)

    # -- failure scripting -------------------------------------------------------------------------

    def fail_next(self, method: str, *, chat_id: int | str | None = None, error_code: int = 429,
                  description: str = "Too Many Requests: retry after 1", retry_after: int | None = 1,
                  times: int = 1, after: int = 0) -> None:
        """Make the next `times` calls of `method` (for `chat_id`, if given) fail like Telegram would, once
        `after` of them were served (the second part of a long reply: after=1).

        `retry_after` is only sent with a 429: PTB raises RetryAfter for *any* reply carrying it.
        """
        error = ApiError(error_code, description, retry_after if error_code == 429 else None)
        self._failures.append(ScriptedFailure(method.lower(), chat_id, error, times, after))

    def stop_failing(self) -> None:
        """Serve every call again (the outage is over)."""
        self._failures.clear()

    # -- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            self.sent.append(ApiCall(name, {}, exc.error_code))
            return web.json_response(exc.body(), status=exc.error_code)
        if request.match_info["token"] != self.token:
            return self._fail(ApiCall(name, params), ApiError(401, "Unauthorized"))
        entry = self._methods.get(name.lower())
        if entry is None:
            return self._fail(ApiCall(name, params), ApiError(404, "Not Found"))
        canonical, handler = entry
        call = ApiCall(canonical, params)
        self.sent.append(call)
        try:
            self._scripted_failure(canonical, params)
            result = await handler(params)
        except ApiError as exc:
            call.error_code = exc.error_code
            self._pulse()
            return web.json_response(exc.body(), status=exc.error_code)
        self._pulse()
        return web.json_response({"ok": True, "result": result})

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(ApiError(404, "Not Found").body(), status=404)

    def _fail(self, call: ApiCall, exc: ApiError) -> web.Response:
        call.error_code = exc.error_code
        self.sent.append(call)
        self._pulse()
        return web.json_response(exc.body(), status=exc.error_code)

    async def _read_params(self, request: web.Request) -> JSONDict:
        params: JSONDict = {key: _decode(key, value) for key, value in request.query.items()}
        if request.content_type == "application/json" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError(400, "Bad Request: can't parse JSON object") from exc
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: can't parse JSON object")
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    params[key] = UploadedFile(value.filename, value.content_type, value.file.read())
                else:
                    params[key] = _decode(key, value)
        return params

    def _scripted_failure(self, method: str, params: JSONDict) -> None:
        for failure in self._failures:
            if failure.method != method.lower():
                continue
            if failure.chat_id is not None and not _same_chat(params.get("chat_id"), failure.chat_id):
                continue
            if failure.after > 0:
                failure.after -= 1
                return
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            raise failure.error

    def _pulse(self) -> None:
        """Wake long polls and waiters; they re-check their condition."""
        self._pulse_event.set()
        self._pulse_event = asyncio.Event()

    # -- state helpers -----------------------------------------------------------------------------

    def _next_message_id(self, chat_id: int, wanted: int | None = None) -> int:
        current = self._ids.message_ids.get(chat_id, 0)
        message_id = wanted if wanted is not None else current + 1
        self._ids.message_ids[chat_id] = max(current, message_id)
        return message_id

    def _user(self, user_id: int, first_name: str, language_code: str) -> JSONDict:
        user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        self._users[user_id] = user
        return user

    def _chat(self, chat_id: int, chat_type: str, first_name: str) -> JSONDict:
        if chat_type == "private":
            chat: JSONDict = {"id": chat_id, "type": "private", "first_name": first_name}
        elif chat_type in ("group", "supergroup"):
            chat = {"id": chat_id, "type": chat_type, "title": f"Group {chat_id}"}
        else:
            raise ValueError(f"unsupported chat_type {chat_type!r}; use private, group or supergroup")
        self._chats[chat_id] = chat
        return chat

    def _message_update(self, kind: str, chat_id: int, user_id: int | None, first_name: str,
                        language_code: str, chat_type: str, message_id: int | None,
                        content: JSONDict) -> JSONDict:
        if user_id is None:
            if chat_type != "private":
                raise ValueError("user_id is required for group chats")
            user_id = chat_id
        message: JSONDict = {
            "message_id": self._next_message_id(chat_id, message_id),
            "from": self._user(user_id, first_name, language_code),
            "chat": self._chat(chat_id, chat_type, first_name),
            "date": int(time.time()),
            **content,
        }
        return {kind: message}

    def _learn(self, update: JSONDict) -> None:
        """Remember chats, users, messages and callback ids so later API calls can refer to them."""
        callback = update.get("callback_query")
        if callback:
            self._open_callbacks.add(str(callback["id"]))
            self._users.setdefault(callback["from"]["id"], callback["from"])
        for key in ("message", "edited_message"):
            message = update.get(key)
            if message and "chat" in message:
                chat_id = message["chat"]["id"]
                self._chats.setdefault(chat_id, message["chat"])
                self._next_message_id(chat_id, message["message_id"])
                self._messages[(chat_id, message["message_id"])] = message
                if "from" in message:
                    self._users.setdefault(message["from"]["id"], message["from"])

    def _chat_for(self, chat_id: int) -> JSONDict:
        known = self._chats.get(chat_id)
        if known is not None:
            return known
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        kind = "supergroup" if chat_id < -1_000_000_000_000 else "group"
        return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}

    @staticmethod
    def _chat_id(params: JSONDict) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    @staticmethod
    def _inline_markup(params: JSONDict) -> JSONDict | None:
        """The reply_markup a Message would echo: Telegram only echoes inline keyboards."""
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        return markup if "inline_keyboard" in markup else None

    def _editable(self, params: JSONDict) -> JSONDict | None:
        """The stored bot message an edit targets; None for inline messages (Telegram returns True)."""
        if params.get("inline_message_id"):
            return None
        chat_id, message_id = self._chat_id(params), params.get("message_id")
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    @staticmethod
    def _check_text(text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise ApiError(400, "Bad Request: message is too long")
        return text

    # -- Bot API methods ---------------------------------------------------------------------------

    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return self.bot_user

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        """Long polling as Telegram does it: confirm by offset, then wait up to `timeout` for updates."""
        if self.webhook.url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset, limit, timeout = params.get("offset", 0), params.get("limit", 100), params.get("timeout", 0)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (offset, limit, timeout)):
            raise ApiError(400, "Bad Request: wrong parameter in getUpdates")
        if "allowed_updates" in params:
            if not isinstance(params["allowed_updates"], list):
                raise ApiError(400, "Bad Request: can't parse allowed updates")
            self.allowed_updates = list(params["allowed_updates"])
        limit = min(max(int(limit), 1), 100)
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[int(offset):]
        self._poll_generation += 1
        generation = self._poll_generation
        self._pulse()  # an older poll still waiting is now terminated, as on Telegram
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(float(timeout), 0.0)
        while True:
            if generation != self._poll_generation:
                self.poll_conflicts += 1
                raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                    "make sure that only one bot instance is running")
            wanted = set(self.allowed_updates) if self.allowed_updates else None
            self._pending = [u for u in self._pending
                             if (_update_type(u) in wanted if wanted else _update_type(u) not in OPT_IN_UPDATES)]
            remaining = deadline - loop.time()
            if self._pending or self._closing or remaining <= 0:
                return self._pending[:limit]
            event = self._pulse_event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url", "")
        if url and not str(url).startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not SECRET_RE.match(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        self.webhook = WebhookState(
            url=url, secret_token=secret, max_connections=params.get("max_connections", 40),
            allowed_updates=allowed if isinstance(allowed, list) else None,
            ip_address=params.get("ip_address"), has_custom_certificate="certificate" in params,
        )
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook = WebhookState()
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self._pulse()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {"url": self.webhook.url, "has_custom_certificate": self.webhook.has_custom_certificate,
                          "pending_update_count": len(self._pending)}
        if self.webhook.url:
            info["max_connections"] = self.webhook.max_connections
            if self.webhook.ip_address:
                info["ip_address"] = self.webhook.ip_address
            if self.webhook.allowed_updates:
                info["allowed_updates"] = self.webhook.allowed_updates
        return info

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        text = self._check_text(params.get("text"))
        markup = self._inline_markup(params)
        message: JSONDict = {"message_id": self._next_message_id(chat_id), "from": self.bot_user,
                             "chat": self._chat_for(chat_id), "date": int(time.time()), "text": text}
        if isinstance(params.get("entities"), list):
            message["entities"] = params["entities"]
        reply = params.get("reply_parameters")
        reply_id = reply.get("message_id") if isinstance(reply, dict) else params.get("reply_to_message_id")
        if reply_id is not None:
            replied = self._messages.get((chat_id, reply_id))
            if replied is not None:
                message["reply_to_message"] = replied
            elif not (isinstance(reply, dict) and reply.get("allow_sending_without_reply")):
                raise ApiError(400, "Bad Request: message to be replied not found")
        if markup is not None:
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = message
        return message

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._chat_id(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._open_callbacks:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self._open_callbacks.discard(query_id)
        return True

    async def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        text = self._check_text(params.get("text"))
        markup = self._inline_markup(params)
        message = self._editable(params)
        if message is None:
            return True
        if message.get("text") == text and message.get("reply_markup") == markup:
            raise ApiError(400, NOT_MODIFIED)
        message["text"] = text
        message["edit_date"] = int(time.time())
        # Like Telegram: an edit without reply_markup removes the inline keyboard.
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        return message

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        markup = self._inline_markup(params)
        message = self._editable(params)
        if message is None:
            return True
        if message.get("reply_markup") == markup:
            raise ApiError(400, NOT_MODIFIED)
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return message

    @staticmethod
    def _commands_key(params: JSONDict) -> str:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps([scope, params.get("language_code", "")], sort_keys=True)

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not COMMAND_RE.match(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _get_chat(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        gifts = {"unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                 "premium_subscription": False, "gifts_from_channels": False}
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}

    async def _get_chat_member(self, params: JSONDict) -> JSONDict:
        self._chat_id(params)
        user_id = params.get("user_id")
        if isinstance(user_id, bool) or not isinstance(user_id, int):
            raise ApiError(400, "Bad Request: invalid user_id specified")
        user = self._users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": "User"}
        return {"status": "member" if user_id in self.group_members else "left", "user": user}
