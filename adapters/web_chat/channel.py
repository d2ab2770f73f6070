"""The website chat widget's server side: the script, a visitor session, messages in, events out.

Routes on kefu's shared HTTP server:
- GET  /chat.js, /chat.css: the widget (plain JS and CSS, no build step), for any page.
- GET  /chat/v1/settings: the panel's title, greeting, colours and labels in the browser's language.
- POST /chat/v1/session: a signed visitor token (new, or the returning visitor's renewed) and the same;
  a conversation a signed-in shopper had is renewed only for them (tokens.py), never after sign-out.
- POST /chat/v1/messages: a shopper message (Bearer visitor token); `client_id` makes a resend
  after a network drop idempotent. Stored before it is answered; the answer arrives as an event.
- GET  /chat/v1/events: Server-Sent Events of the conversation from the store, after the last id the
  widget saw (`Last-Event-ID` or `?after=`), so a reconnect misses nothing: bot and agent replies,
  notices, and a typing indicator while the bot is answering.
Only pages from `[web_chat] allowed_origins` may call the API (CORS and `Origin` checked); a token
names one conversation only; messages and new visitors are rate-limited per visitor and address.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.web_chat.labels import RIGHT_TO_LEFT, labels_for, pick_language
from adapters.web_chat.limits import WindowLimiter
from adapters.web_chat.tokens import VisitorToken, VisitorTokens, load_or_create_secret
from bot.client_address import limit_key
from bot.config import WebChatConfig
from bot.errors import KefuError, OverloadedError
from bot.json_input import InvalidJson, loads_json
from bot.messages import DeliveryPolicy, HandoffState, Message, Reply, ReplyKind, Role, TranscriptEntry

log = logging.getLogger(__name__)

CHANNEL = "web_chat"
API = "/chat/v1"
STATIC = Path(__file__).parent / "static"
KEEPALIVE_SECONDS = 15.0  # also how often a stream re-reads, should a wake from another worker be lost
WAKE_TOPIC = "web_chat"  # what a reply's delivery tells every worker: the visitor's stream sends it
SECRET_NAME = "web_chat"  # the token key's name among the secrets several workers share
STREAM_SECONDS = 300.0  # a stream ends after this; the widget reconnects from its last id
TYPING_SECONDS = 60.0  # the indicator goes off by itself if no answer comes
MAX_TYPING = 10_000  # beyond this many indicators on, the expired ones are dropped
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
CUSTOMER_FIELD_CHARS = 200
FIELDS = {"text", "client_id", "language", "customer_id", "customer_hash"}
CORS_HEADERS = {"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Max-Age": "600",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID"}


class Refused(Exception):
    """A request the widget (or whoever sent it) must change; a 4xx with a JSON reason."""

    def __init__(self, status: int, error: str, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.retry_after = status, error, detail, retry_after


@dataclass
class _Watch:
    """A conversation's open streams wait on `changed`; it is replaced each time it fires."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)
    streams: int = 0


class WebChatChannel:
    name = CHANNEL

    def __init__(self, *, config: WebChatConfig, gateway: Any, http_app: web.Application, shop_name: str,
                 default_language: str, clock: Any = time.time):
        self._config = config
        self._gateway = gateway
        self._shop_name = shop_name
        self._default_language = default_language
        self._clock = clock
        # Replies are in the store before they are "delivered": delivering wakes the visitor's streams.
        self.delivery = DeliveryPolicy(max_attempts=3, backoff_seconds=0.5)
        self._tokens: VisitorTokens | None = None
        self._static: dict[str, bytes] = {}
        self._watches: dict[str, _Watch] = {}
        self._typing: dict[str, float] = {}  # visitor → when the indicator goes off by itself
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._visitor_messages = WindowLimiter(config.messages_per_minute, 60.0)
        self._address_messages = WindowLimiter(config.address_messages_per_minute, 60.0)
        self._address_sessions = WindowLimiter(config.address_sessions_per_hour, 3600.0)
        http_app.on_shutdown.append(self._end_streams)  # the server waits for open requests: end streams first
        router = http_app.router
        router.add_get("/chat.js", self._script)
        router.add_get("/chat.css", self._stylesheet)
        if config.demo_page:
            router.add_get("/chat/demo", self._demo)
        for path, handler, method in ((f"{API}/settings", self._settings, "GET"),
                                      (f"{API}/session", self._session, "POST"),
                                      (f"{API}/messages", self._message, "POST"),
                                      (f"{API}/events", self._events, "GET")):
            router.add_route(method, path, handler)
            router.add_route("OPTIONS", path, self._preflight)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        # The shop's own secret, else the one all workers share (several on one database), else this one's file.
        secret = (self._config.secret.encode() or await self._gateway.shared_secret(SECRET_NAME)
                  or await asyncio.to_thread(load_or_create_secret, self._config.secret_file))
        self._tokens = VisitorTokens(secret=secret, days=self._config.visitor_days)
        self._static = await asyncio.to_thread(_read_static)
        self._gateway.subscribe(WAKE_TOPIC, self._wake)  # a reply stored on any worker reaches the stream here
        log.info("web_chat.ready script=/chat.js origins=%s", ",".join(self._config.allowed_origins))

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._closing.set()
        self._stopped.set()

    async def _end_streams(self, app: web.Application) -> None:
        self._closing.set()

    async def deliver(self, reply: Reply) -> None:
        """The reply is already stored: the visitor's open streams read it now."""
        if reply.in_reply_to is not None or reply.kind in (ReplyKind.AGENT, ReplyKind.HANDOFF):
            self._typing.pop(reply.conversation, None)
        self._gateway.publish(WAKE_TOPIC, reply.conversation)  # the visitor's stream may be on another worker

    # -- static files ------------------------------------------------------------

    async def _script(self, request: web.Request) -> web.StreamResponse:
        return self._file("chat.js", "application/javascript", request)

    async def _stylesheet(self, request: web.Request) -> web.StreamResponse:
        return self._file("chat.css", "text/css", request)

    async def _demo(self, request: web.Request) -> web.StreamResponse:
        return self._file("demo.html", "text/html", request)

    def _file(self, name: str, content_type: str, request: web.Request) -> web.StreamResponse:
        body = self._static.get(name)
        if body is None:
            return _json({"error": "unavailable", "detail": "the chat widget is starting"}, status=503)
        response = web.Response(body=body, content_type=content_type, charset="utf-8", headers={
            "Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin", "Access-Control-Allow-Origin": "*"})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response

    # -- the API -----------------------------------------------------------------

    async def _preflight(self, request: web.Request) -> web.StreamResponse:
        try:
            origin = self._origin(request)
        except Refused as refused:
            return self._refusal(refused, None)
        return web.Response(status=204, headers={**CORS_HEADERS, **_allow(origin)})

    async def _session(self, request: web.Request) -> web.StreamResponse:
        origin = None
        try:
            origin = self._origin(request)
            data = _body(await request.read())
            now = self._clock()
            tokens = self._ready_tokens()
            account = tokens.account(_customer(data)[0])
            old = data.get("token")
            visitor = tokens.check(old, now) if isinstance(old, str) else None
            if visitor is not None and not visitor.may_continue_as(account):
                log.info("web_chat.session_account_changed visitor=%s: a new conversation", visitor.visitor[:6])
                visitor = None  # signed out, or someone else signed in: their conversation stays theirs
            if visitor is None:
                wait = self._address_sessions.take(limit_key(request.remote or "-"))
                if wait:
                    raise Refused(429, "too_many_visitors", "too many new chats from this address; try later", wait)
            token, issued = tokens.issue(visitor.visitor if visitor else None, now, account)
        except Refused as refused:
            return self._refusal(refused, origin)
        requested = data.get("language") if isinstance(data.get("language"), str) else None
        log.info("web_chat.session visitor=%s returning=%s", issued.visitor[:6], visitor is not None)
        return _json({"token": token, "visitor": issued.visitor,
                      "expires": issued.expires(self._config.visitor_days), **self._look(requested)},
                     headers=_allow(origin))

    async def _settings(self, request: web.Request) -> web.StreamResponse:
        """The panel's look and words before any visitor exists: the launcher is labelled on every page view,
        while a visitor (a token) is made only when someone opens the chat."""
        try:
            origin = self._origin(request)
        except Refused as refused:
            return self._refusal(refused, None)
        return _json(self._look(request.query.get("language")), headers=_allow(origin))

    def _look(self, requested: str | None) -> dict[str, Any]:
        language = pick_language(requested, self._default_language)
        greeting = self._config.greeting
        return {
            "language": language, "direction": "rtl" if language in RIGHT_TO_LEFT else "ltr",
            "title": self._config.title or self._shop_name,
            "greeting": greeting.get(language) or greeting.get("*") or labels_for(language)["greeting"],
            "colour": self._config.colour, "position": self._config.position, "labels": labels_for(language),
            "max_text_chars": self._config.max_text_chars,
        }

    async def _message(self, request: web.Request) -> web.StreamResponse:
        origin = None
        try:
            origin = self._origin(request)
            token = self._token(request)
            visitor = token.visitor
            if request.content_type != "application/json":
                raise Refused(415, "unsupported_media_type", "send the body as application/json")
            message = self._read_message(_body(await request.read()), visitor)
            if token.account != self._ready_tokens().account(message.customer_id):
                raise Refused(409, "account_changed", "the page names another account than this chat's (a sign-in "
                              "or sign-out since): open the session again with /chat/v1/session")
            for limiter, key, what in ((self._visitor_messages, visitor, "this chat"),
                                       (self._address_messages, limit_key(request.remote or "-"), "this address")):
                wait = limiter.take(key)
                if wait:
                    raise Refused(429, "too_many_messages", f"too many messages from {what}; wait a moment", wait)
        except Refused as refused:
            return self._refusal(refused, origin)
        try:
            result = await self._gateway.accept(message)
        except OverloadedError as exc:  # not stored: the widget sends it again after the wait
            return self._refusal(Refused(429, "overloaded", str(exc), exc.retry_after), origin)
        except KefuError as exc:
            log.warning("web_chat.accept_failed visitor=%s error=%s", visitor[:6], exc)
            return _json({"error": "processing_failed", "detail": str(exc), "retry": True}, status=503,
                         headers=_allow(origin))
        if not result.duplicate and result.state == HandoffState.BOT:
            now = self._clock()
            if len(self._typing) > MAX_TYPING:  # turns that ended without a delivered reply
                self._typing = {key: until for key, until in self._typing.items() if until > now}
            self._typing[visitor] = now + TYPING_SECONDS
        self._wake(visitor)
        return _json({"id": result.inbound_id, "duplicate": result.duplicate, "state": result.state.value},
                     status=202, headers=_allow(origin))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        origin = None
        try:
            origin = self._origin(request)
            visitor = self._token(request).visitor
            after = _after(request)
            watch = self._watches.setdefault(visitor, _Watch())
            if watch.streams >= self._config.streams_per_visitor:
                raise Refused(429, "too_many_streams", f"at most {self._config.streams_per_visitor} open "
                              "streams per visitor; close another tab", 5.0)
        except Refused as refused:
            return self._refusal(refused, origin)
        response = web.StreamResponse(headers={**_allow(origin), "Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        watch.streams += 1
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            await self._stream(response, visitor, watch, after)
        except ConnectionResetError:  # the visitor left or the network dropped: the widget resumes later
            pass
        finally:
            watch.streams -= 1
            if watch.streams <= 0 and self._watches.get(visitor) is watch:
                del self._watches[visitor]
        return response

    async def _stream(self, response: web.StreamResponse, visitor: str, watch: _Watch, after: int) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + STREAM_SECONDS
        typing_shown: bool | None = None
        while not self._closing.is_set() and loop.time() < ends:
            changed = watch.changed  # taken before reading, so a change during the read is not missed
            transcript = await self._gateway.transcript(CHANNEL, visitor)
            for entry in transcript.messages if transcript else ():
                if entry.id > after and _visible(entry):
                    await response.write(_frame("message", _event_of(entry), entry.id))
                    after = entry.id
            typing_until = self._typing.get(visitor, 0.0)
            typing = typing_until > self._clock()
            if typing != typing_shown:
                await response.write(_frame("typing", {"on": typing}))
                typing_shown = typing
            wait = min(KEEPALIVE_SECONDS, max(0.05, typing_until - self._clock())) if typing else KEEPALIVE_SECONDS
            closing = asyncio.ensure_future(self._closing.wait())
            woken = asyncio.ensure_future(changed.wait())
            try:
                done, _ = await asyncio.wait({closing, woken}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                woken.cancel()
            if not done:
                await response.write(b": keepalive\n\n")

    # -- helpers -----------------------------------------------------------------

    def _wake(self, visitor: str) -> None:
        watch = self._watches.get(visitor)
        if watch is not None:
            watch.changed.set()
            watch.changed = asyncio.Event()

    def _ready_tokens(self) -> VisitorTokens:
        if self._tokens is None:
            raise Refused(503, "unavailable", "the chat is starting; try again in a moment", 1.0)
        return self._tokens

    def _origin(self, request: web.Request) -> str | None:
        """The calling page's origin when it is allowed; None for a request without one (not a browser's
        cross-site call: the token still decides). A page from any other site is refused."""
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if origin.lower() not in self._config.allowed_origins:
            log.warning("web_chat.origin_refused origin=%s", origin[:100])
            raise Refused(403, "origin_not_allowed", f"pages from {origin[:100]} may not use this chat; add the "
                          "site to [web_chat] allowed_origins")
        return origin

    def _token(self, request: web.Request) -> VisitorToken:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "unauthorized", "send 'Authorization: Bearer <visitor token>' from /chat/v1/session")
        checked = self._ready_tokens().check(token.strip(), self._clock())
        if checked is None:
            raise Refused(401, "unauthorized", "the visitor token is not valid or has expired; open a new session")
        return checked

    def _read_message(self, data: dict[str, Any], visitor: str) -> Message:
        unknown = sorted(set(data) - FIELDS)
        if unknown:
            raise Refused(400, "unknown_field", f"unknown field '{unknown[0]}'; fields: {', '.join(sorted(FIELDS))}")
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Refused(400, "missing_field", "'text' is required and must be a non-empty string")
        if len(text) > self._config.max_text_chars:
            raise Refused(413, "text_too_long", f"'text' has {len(text)} characters; the limit is "
                          f"{self._config.max_text_chars}")
        client_id = data.get("client_id")
        if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
            raise Refused(400, "invalid_field", "'client_id' is required: 8 to 64 letters, digits, - or _, the "
                          "same when a message is sent again")
        language = data.get("language")
        if language is not None and (not isinstance(language, str) or not re.fullmatch(r"[A-Za-z]{2,3}", language)):
            raise Refused(400, "invalid_field", "'language' must be a language code such as 'de'")
        customer = _customer(data)
        return Message(channel=CHANNEL, conversation=visitor, user_id=visitor, text=text.strip(),
                       external_id=client_id, language_hint=language.lower() if language else None,
                       customer_id=customer[0], customer_hash=customer[1])

    def _refusal(self, refused: Refused, origin: str | None) -> web.Response:
        headers = _allow(origin)
        body: dict[str, Any] = {"error": refused.error, "detail": refused.detail}
        if refused.retry_after is not None:
            body["retry_after"] = round(refused.retry_after, 1)
            headers["Retry-After"] = str(max(1, round(refused.retry_after)))
        return _json(body, status=refused.status, headers=headers)


def _visible(entry: TranscriptEntry) -> bool:
    """What the shopper sees of their conversation: their own messages and what was sent to them."""
    if entry.direction == "in":
        return entry.role == Role.SHOPPER
    return entry.status not in ("held", "failed")


def _event_of(entry: TranscriptEntry) -> dict[str, Any]:
    event: dict[str, Any] = {"id": entry.id, "from": str(entry.role), "text": entry.text, "at": entry.created_at}
    if entry.direction == "in":
        event["client_id"] = entry.external_id
    else:
        event["kind"] = entry.kind
        event["quick_replies"] = list(entry.quick_replies)
        event["links"] = [{"title": link.title, "url": link.url} for link in entry.links
                          if link.url.startswith(("https://", "http://"))]
    return event


def _frame(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _after(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    if not re.fullmatch(r"[0-9]{1,18}", raw):  # str.isdigit() takes "²", which int() refuses
        raise Refused(400, "invalid_field", "'after' (or Last-Event-ID) must be a message id")
    return int(raw)


def _customer(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The signed-in shopper the shop's page names (its id and its HMAC of the id), or (None, None)."""
    customer = (data.get("customer_id"), data.get("customer_hash"))
    if any(value is not None and (not isinstance(value, str) or not value or len(value) > CUSTOMER_FIELD_CHARS)
           for value in customer):
        raise Refused(400, "invalid_field", "'customer_id' and 'customer_hash' must be short strings")
    if (customer[0] is None) != (customer[1] is None):
        raise Refused(400, "missing_field", "'customer_id' and 'customer_hash' go together: the hash is the "
                      "shop's HMAC-SHA256 of the id")
    return customer


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = loads_json(raw)
    except (InvalidJson, ValueError) as exc:
        raise Refused(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Refused(400, "invalid_json", "the body must be a JSON object")
    return data


def _allow(origin: str | None) -> dict[str, str]:
    if not origin:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "Retry-After", "Vary": "Origin"}


def _json(data: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store", **(headers or {})},
                             dumps=lambda value: json.dumps(value, ensure_ascii=False))


def _read_static() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in STATIC.iterdir() if path.is_file()}
