"""HTTP webhook channel: a shop's site or app posts shopper messages and gets replies.

Translation only: JSON in → `Message`, `Reply` → JSON out (and, when configured,
each reply POSTed to the merchant's URL). Routes live on kefu's shared aiohttp app.

Auth is either `Authorization: Bearer <token>` or an HMAC-SHA256 signature over the
timestamp, method, request target and raw body (bot/signing.py has the canonical
string). Outgoing deliveries are signed the same way with the outgoing secret.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.config import Config, OutgoingWebhookConfig, WebhookConfig
from bot.errors import (
    ConversationNotFoundError,
    DeliveryError,
    HandoffConflictError,
    InvalidRequestError,
    KefuError,
    OverloadedError,
)
from bot.json_input import InvalidJson, loads_json
from bot.messages import AgentDesk, DeliveryPolicy, Gateway, HandoffState, Message, PrivacyDesk, Reply
from bot.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_timestamp, post_signed, sign

log = logging.getLogger(__name__)

CHANNEL = "webhook"
DELIVERY_HEADER = "X-Kefu-Delivery"
MAX_ID_CHARS = 200
_FIELDS = {"conversation_id", "text", "user_id", "message_id", "language", "set_language", "display_name",
           "customer_id", "customer_hash"}
AGENT_PREFIX = "/v1/agent"
MAX_AGENT_NAME_CHARS = 100
QUEUE_STATES = (HandoffState.WAITING_AGENT, HandoffState.AGENT)


class BadRequest(Exception):
    """A request the client must fix; becomes a 4xx with a JSON reason."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.error, self.detail, self.extra = status, error, detail, extra

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, "detail": self.detail, **self.extra}, status=self.status)


def check_auth(settings: WebhookConfig, headers: Mapping[str, str], body: bytes, now: float, *,
               method: str = "POST", target: str = "/") -> None:
    """Raise BadRequest(401) unless the request carries the configured credentials.

    `method` and `target` (path and query as on the request line) are part of a
    version-2 signature, so a captured signature is good for that one request only.
    """
    if settings.auth == "bearer":
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise BadRequest(401, "unauthorized", "send 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(token.strip().encode(), settings.secret.encode()):
            raise BadRequest(401, "unauthorized", "the bearer token is not valid")
        return
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise BadRequest(401, "unauthorized", f"send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers")
    sent_at = parse_timestamp(timestamp)
    if sent_at is None:
        raise BadRequest(401, "unauthorized", f"{TIMESTAMP_HEADER} must be unix seconds, e.g. {int(now)}")
    if abs(now - sent_at) > settings.signature_tolerance_seconds:
        raise BadRequest(401, "unauthorized", f"{TIMESTAMP_HEADER} is more than "
                         f"{settings.signature_tolerance_seconds}s away from the server's clock")
    version = 1 if signature.startswith("sha256=") else 2
    if version < settings.signature_version:
        raise BadRequest(401, "unauthorized", f"{SIGNATURE_HEADER} must be 'v2=<hex>' over timestamp, method, "
                         "path and body (the 'sha256=' body-only form is off: webhook.signature_version = 2)")
    expected = sign(settings.secret, timestamp, body, method=method, target=target, version=version)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise BadRequest(401, "unauthorized", f"{SIGNATURE_HEADER} does not match this request "
                         "(timestamp, method, path with query, and body)")


def _optional_str(data: Mapping[str, Any], key: str, limit: int = MAX_ID_CHARS) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and key in ("message_id", "user_id", "customer_id"):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(400, "invalid_field", f"'{key}' must be a non-empty string", field=key)
    if len(value) > limit:
        raise BadRequest(400, "invalid_field", f"'{key}' is longer than {limit} characters", field=key)
    return value.strip()


def parse_message(body: bytes, max_text_chars: int, languages: tuple[str, ...] = ()) -> Message:
    """The JSON body of POST /v1/messages → a Message (or BadRequest saying what is wrong)."""
    data = _load(body)
    if not isinstance(data, dict):
        raise BadRequest(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise BadRequest(400, "unknown_field", f"unknown field '{unknown[0]}'; fields: {', '.join(sorted(_FIELDS))}",
                         field=unknown[0])
    conversation = _optional_str(data, "conversation_id")
    if conversation is None:
        raise BadRequest(400, "missing_field", "'conversation_id' is required", field="conversation_id")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(400, "missing_field", "'text' is required and must be a non-empty string", field="text")
    if len(text) > max_text_chars:
        raise BadRequest(413, "text_too_long", f"'text' has {len(text)} characters; the limit is {max_text_chars}",
                         field="text", limit=max_text_chars)
    language = _optional_str(data, "language", 16)
    choice = _optional_str(data, "set_language", 16)
    if choice is not None and choice.lower() not in languages:
        raise BadRequest(400, "invalid_field", f"'set_language' must be one of the shop's languages: "
                         f"{', '.join(languages)}", field="set_language")
    customer_id = _optional_str(data, "customer_id")
    customer_hash = _optional_str(data, "customer_hash", 128)
    if (customer_id is None) != (customer_hash is None):
        raise BadRequest(400, "missing_field", "'customer_id' and 'customer_hash' go together: the hash is the "
                         "shop's HMAC-SHA256 of the id", field="customer_hash" if customer_id else "customer_id")
    return Message(
        channel=CHANNEL,
        conversation=conversation,
        user_id=_optional_str(data, "user_id") or conversation,
        text=text.strip(),
        external_id=_optional_str(data, "message_id"),
        display_name=_optional_str(data, "display_name"),
        language_hint=language.lower() if language else None,
        language_choice=choice.lower() if choice else None,
        customer_id=customer_id,
        customer_hash=customer_hash,
    )


@dataclass
class WebhookChannel:
    """The `webhook` channel: routes on the shared HTTP app plus optional outgoing delivery."""

    settings: WebhookConfig
    gateway: Gateway
    desk: AgentDesk | None = None  # the agent API's backend; None: no agent routes
    languages: tuple[str, ...] = ()  # the shop's languages, for set_language
    name: str = CHANNEL

    def __post_init__(self) -> None:
        outgoing = self.settings.outgoing
        self.delivery = (
            DeliveryPolicy(max_attempts=outgoing.max_attempts, backoff_seconds=outgoing.backoff_seconds)
            if outgoing else None
        )
        self._session: aiohttp.ClientSession | None = None
        self._stopped = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.post_message)
        app.router.add_get("/v1/conversations/{conversation_id}", self.get_conversation)
        if self.desk is not None:
            AgentApi(self.settings, self.desk).add_routes(app)

    async def _authorized_body(self, request: web.Request) -> bytes:
        body = await request.read()  # aiohttp answers 413 above client_max_size
        check_auth(self.settings, request.headers, body, time.time(), method=request.method,
                   target=request.raw_path)
        return body

    async def post_message(self, request: web.Request) -> web.Response:
        try:
            body = await self._authorized_body(request)
            if request.content_type != "application/json":
                raise BadRequest(415, "unsupported_media_type", "send the body as application/json")
            message = parse_message(body, self.settings.max_text_chars, self.languages)
        except BadRequest as bad:
            return bad.response()
        try:
            result = await self.gateway.handle(message)
        except OverloadedError as exc:  # refused before it was stored: nothing is kept, the client sends it again
            log.info("webhook.overloaded conversation=%s retry_after=%d", message.conversation, exc.retry_after)
            return overloaded_response(exc)
        except KefuError as exc:  # the message is stored; the client retries and a redelivery reprocesses it
            log.warning("webhook.turn_failed conversation=%s error=%s", message.conversation, exc)
            return web.json_response(
                {"error": "processing_failed", "detail": str(exc), "retry": True}, status=503
            )
        return web.json_response(
            {
                "conversation_id": message.conversation,
                "message_id": message.external_id,
                "inbound_id": result.inbound_id,
                "duplicate": result.duplicate,
                # None while a person handles the conversation: their replies come by the outgoing
                # webhook, or in GET /v1/conversations/{id}.
                "reply": result.reply.to_json() if result.reply else None,
                "state": result.state.value,
            },
            dumps=_dumps,
        )

    async def get_conversation(self, request: web.Request) -> web.Response:
        try:
            await self._authorized_body(request)
        except BadRequest as bad:
            return bad.response()
        conversation = request.match_info["conversation_id"]
        transcript = await self.gateway.transcript(CHANNEL, conversation)
        if transcript is None:
            return web.json_response(
                {"error": "not_found", "detail": f"no conversation '{conversation}'"}, status=404
            )
        return web.json_response(transcript.to_json(), dumps=_dumps)

    async def start(self) -> None:
        if self.settings.outgoing is not None:
            timeout = aiohttp.ClientTimeout(total=self.settings.outgoing.timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout)

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, reply: Reply) -> None:
        """POST a reply to the merchant's URL; raise DeliveryError so the core retries."""
        outgoing: OutgoingWebhookConfig | None = self.settings.outgoing
        if outgoing is None or self._session is None:
            raise DeliveryError("outgoing webhook is not configured or not started")
        body = _dumps({"event": "reply", "reply": reply.to_json()}).encode()
        await post_signed(self._session, outgoing.url, outgoing.secret, body,
                          {DELIVERY_HEADER: str(reply.message_id)}, version=outgoing.signature_version)


class AgentApi:
    """Routes for human agents under /v1/agent, with their own bearer token (webhook.agent_token_env).

    Conversations are addressed as {channel}/{conversation_id}: an agent answers Telegram
    and web shoppers alike, and replies travel back through the shopper's own channel.
    """

    def __init__(self, settings: WebhookConfig, desk: AgentDesk):
        self._settings = settings
        self._desk = desk

    def add_routes(self, app: web.Application) -> None:
        base = f"{AGENT_PREFIX}/conversations/{{channel}}/{{conversation_id}}"
        app.router.add_get(f"{AGENT_PREFIX}/handoffs", self.list_handoffs)
        app.router.add_get(base, self.view)
        app.router.add_post(f"{base}/claim", self.claim)
        app.router.add_post(f"{base}/messages", self.reply)
        app.router.add_post(f"{base}/release", self.release)
        app.router.add_post(f"{base}/close", self.close)
        if isinstance(self._desk, PrivacyDesk):
            PrivacyApi(self, self._desk).add_routes(app)

    def _check_token(self, request: web.Request) -> None:
        if not self._settings.agent_token:
            raise BadRequest(403, "agent_api_disabled", "the agent API is off: set webhook.agent_token_env "
                             "(or webhook.agent_token) in kefu.toml")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise BadRequest(401, "unauthorized", "send 'Authorization: Bearer <agent token>'")
        if not hmac.compare_digest(token.strip().encode(), self._settings.agent_token.encode()):
            raise BadRequest(401, "unauthorized", "the agent token is not valid")

    async def _body(self, request: web.Request, *fields: str) -> dict[str, str]:
        data = json_object(await request.read(), request.content_type, fields)
        values = {}
        for name in fields:
            limit = self._settings.max_text_chars if name == "text" else MAX_AGENT_NAME_CHARS
            value = _optional_str(data, name, limit)
            if value is None:
                raise BadRequest(400, "missing_field", f"'{name}' is required", field=name)
            values[name] = value
        return values

    async def _run(self, request: web.Request, action: Any) -> web.Response:
        """Auth, then the action; the core's errors become 404 / 409 with a JSON reason."""
        try:
            self._check_token(request)
            return web.json_response(await action(), dumps=_dumps)
        except BadRequest as bad:
            return bad.response()
        except ConversationNotFoundError as exc:
            return web.json_response({"error": "not_found", "detail": str(exc)}, status=404)
        except HandoffConflictError as exc:
            return web.json_response({"error": "conflict", "detail": str(exc), "state": exc.state,
                                      "agent": exc.agent}, status=409)

    async def list_handoffs(self, request: web.Request) -> web.Response:
        async def action() -> Any:
            states = QUEUE_STATES
            wanted = request.query.get("state")
            if wanted:
                try:
                    states = tuple(HandoffState(name.strip()) for name in wanted.split(",") if name.strip())
                except ValueError:
                    raise BadRequest(400, "invalid_field", "'state' takes a comma-separated list of: "
                                     + ", ".join(s.value for s in HandoffState), field="state") from None
            return {"handoffs": [item.to_json() for item in await self._desk.handoffs(states)]}
        return await self._run(request, action)

    async def view(self, request: web.Request) -> web.Response:
        async def action() -> Any:
            return (await self._desk.handoff_view(*_address(request))).to_json()
        return await self._run(request, action)

    async def claim(self, request: web.Request) -> web.Response:
        return await self._move(request, self._desk.claim)

    async def reply(self, request: web.Request) -> web.Response:
        async def action() -> Any:
            body = await self._body(request, "agent", "text")
            stored = await self._desk.agent_reply(*_address(request), body["agent"], body["text"])
            return {"message": stored.to_json()}
        return await self._run(request, action)

    async def release(self, request: web.Request) -> web.Response:
        return await self._move(request, self._desk.release)

    async def close(self, request: web.Request) -> web.Response:
        return await self._move(request, self._desk.close)

    async def _move(self, request: web.Request, move: Callable[[str, str, str], Awaitable[Any]]) -> web.Response:
        """claim / release / close: `{"agent": name}` in, the conversation's summary out."""
        async def action() -> Any:
            body = await self._body(request, "agent")
            return (await move(*_address(request), body["agent"])).to_json()
        return await self._run(request, action)


class PrivacyApi:
    """Shoppers' data requests on the agent API (same token): export, erase, and the audit log.

    The subject is `conversation` ("channel/id") or `user` ("channel:user_id"); `agent` names who asks,
    for the audit log. A live conversation is refused with 409 unless the erase says `"force": true`.
    """

    def __init__(self, agents: AgentApi, desk: PrivacyDesk):
        self._agents = agents
        self._desk = desk

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{AGENT_PREFIX}/privacy/export", self.export)
        app.router.add_post(f"{AGENT_PREFIX}/privacy/erase", self.erase)
        app.router.add_get(f"{AGENT_PREFIX}/audit", self.audit)

    async def export(self, request: web.Request) -> web.Response:
        async def action() -> Any:
            query = request.query
            return await _subject_call(self._desk.privacy_export, conversation=query.get("conversation"),
                                       user=query.get("user"), actor=_actor(query))
        return await self._agents._run(request, action)

    async def erase(self, request: web.Request) -> web.Response:
        async def action() -> Any:
            data = json_object(await request.read(), request.content_type, ("agent", "conversation", "user", "force"))
            agent = _actor(data)
            force = data.get("force", False)
            if not isinstance(force, bool):
                raise BadRequest(400, "invalid_field", "'force' must be true or false", field="force")
            return await _subject_call(self._desk.privacy_erase, conversation=_optional_str(data, "conversation"),
                                       user=_optional_str(data, "user"), actor=agent, force=force)
        return await self._agents._run(request, action)

    async def audit(self, request: web.Request) -> web.Response:
        async def action() -> Any:
            query = request.query
            limit, before = _int_query(query, "limit", 100), _int_query(query, "before", None)
            return await _subject_call(self._desk.audit_log, limit=limit, conversation=query.get("conversation"),
                                       user=query.get("user"), before=before)
        return await self._agents._run(request, action)


def _actor(values: Mapping[str, Any]) -> str:
    """Who asks for a shopper's data: required, for the audit log."""
    agent = _optional_str(values, "agent", MAX_AGENT_NAME_CHARS)
    if agent is None:
        raise BadRequest(400, "missing_field", "'agent' is required: who asks, for the audit log", field="agent")
    return agent


async def _subject_call(call: Callable[..., Awaitable[Any]], **arguments: Any) -> Any:
    """The core's refusal of a malformed subject becomes a 400 naming the field."""
    try:
        return await call(**arguments)
    except InvalidRequestError as exc:
        raise BadRequest(400, "invalid_field", str(exc), field=exc.field) from None


def _int_query(query: Mapping[str, str], key: str, default: int | None) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000_000:
        raise BadRequest(400, "invalid_field", f"'{key}' must be a positive whole number", field=key)
    return int(value)


def json_object(body: bytes, content_type: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object body with only `fields`: a typo'd field is refused, never silently ignored."""
    if content_type != "application/json":
        raise BadRequest(415, "unsupported_media_type", "send the body as application/json")
    data = _load(body)
    if not isinstance(data, dict):
        raise BadRequest(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadRequest(400, "unknown_field", f"unknown field '{unknown[0]}'; fields: {', '.join(fields)}",
                         field=unknown[0])
    return data


def _load(body: bytes) -> Any:
    try:
        return loads_json(body)
    except InvalidJson as bad:
        raise BadRequest(400, bad.error, bad.detail) from None


def _address(request: web.Request) -> tuple[str, str]:
    return request.match_info["channel"], request.match_info["conversation_id"]


def overloaded_response(exc: OverloadedError) -> web.Response:
    """429 with Retry-After and a JSON reason: the message was not stored, send it again after that long."""
    return web.json_response({"error": "overloaded", "detail": str(exc), "retry_after": exc.retry_after},
                             status=429, headers={"Retry-After": str(exc.retry_after)})


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def create_adapter(*, config: Config, gateway: Gateway, http_app: web.Application | None = None) -> WebhookChannel:
    if http_app is None:
        raise ValueError("the webhook channel needs kefu's HTTP server (run it with `kefu serve`)")
    desk = gateway if isinstance(gateway, AgentDesk) else None
    channel = WebhookChannel(settings=config.webhook, gateway=gateway, desk=desk, languages=config.shop.languages)
    channel.add_routes(http_app)
    return channel
