"""The WhatsApp channel: the Cloud API webhook in, the Graph send endpoint out.

Translation only, as reliable as Telegram's:
- Meta's GET verification is answered with the challenge when the verify token matches.
- Every POST's `X-Hub-Signature-256` is checked against the app secret (401, nothing stored, when
  it does not match); it is answered 200 only after every message in it is stored, so a message
  Meta sends again (it does, for up to 7 days, on anything but 200) is stored and answered once:
  its "wamid" is the message's external id. Receipts (sent, delivered, read, failed) are recorded
  on the reply they are about.
- Replies go out through the core's delivery worker, in order per conversation, retried with
  backoff on rate limits and outages. Within 24 hours of the shopper's last message any reply
  goes as it is; after that (an agent answering late) WhatsApp takes only an approved template:
  the configured one carries the reply, or, without one, the reply is held (shown so, with the
  reason, in the console) and sent when the shopper writes again; never an error loop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import timedelta
from typing import Any

from aiohttp import web

from adapters.whatsapp.graph import (BUTTONS_BODY_LIMIT, OUTSIDE_WINDOW, RETRY_LATER, TEXT_LIMIT, GraphClient,
                                     GraphSettings, OutsideWindow, choices_message, template_message, text_message,
                                     typing_message)
from adapters.whatsapp.notifications import (SIGNATURE_HEADER, Inbound, NotificationError, StatusUpdate,
                                             read_notification, signature_matches)
from bot.config import WhatsAppConfig
from bot.errors import DeliveryError, KefuError, OverloadedError
from bot.json_input import loads_json
from bot.messages import BODY_LIMITS, RAW_BODY, DeliveryPolicy, HandoffState, Message, Reply, split_text, utc_now

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
WINDOW = timedelta(hours=24)
MAX_NOTIFICATION_BYTES = 3 * 1024 * 1024 + 64 * 1024  # Meta sends batches of up to 3 MB
WINDOW_MARGIN = timedelta(minutes=2)  # a reply sent at 23:59 may reach Meta after 24:00
HELD_REASON = ("held: more than 24 hours since the shopper last wrote, and WhatsApp then takes only an approved "
               "template; it goes out when the shopper writes again")
# The label of the button that opens a list of suggested questions (at most 20 characters).
LIST_LABELS = {"en": "Choose a topic", "zh": "选择问题", "de": "Thema wählen", "fr": "Choisir un sujet",
               "es": "Elegir un tema", "it": "Scegli un tema", "nl": "Kies een onderwerp", "pt": "Escolher tema",
               "ja": "トピックを選ぶ", "ko": "주제 선택", "ru": "Выбрать тему", "pl": "Wybierz temat",
               "tr": "Konu seçin", "ar": "اختر موضوعًا", "id": "Pilih topik", "th": "เลือกหัวข้อ",
               "vi": "Chọn chủ đề"}


class WhatsAppChannel:
    name = CHANNEL

    def __init__(self, *, config: WhatsAppConfig, gateway: Any, http_app: web.Application | None):
        if http_app is None:
            raise KefuError("the WhatsApp channel needs kefu's HTTP server (kefu serve): Meta posts to it")
        self._config = config
        self._gateway = gateway
        self.delivery = DeliveryPolicy(max_attempts=config.max_attempts, backoff_seconds=config.backoff_seconds)
        self._graph = GraphClient(GraphSettings(config.api_base_url, config.api_version, config.phone_number_id,
                                                config.token))
        self._running = False
        self._stopped = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()  # read marks: the webhook's 200 never waits for them
        self._template_only: set[str] = set()  # chats Meta said are past the window (late 131047), until they write
        # kefu's own limit for shops' requests ([http] max_body_bytes, 64 KB) would refuse a batch of updates,
        # and Meta would send it again for a week.
        http_app[BODY_LIMITS][config.webhook_path] = MAX_NOTIFICATION_BYTES
        http_app.router.add_get(config.webhook_path, self._on_verify)
        http_app.router.add_post(config.webhook_path, self._on_notification)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        # The verify token only proves to Meta's dashboard that this URL is yours: logged whole, for the setup.
        log.info("whatsapp.ready phone_number_id=%s webhook_path=%s verify_token=%s (set the callback URL and "
                 "this verify token in Meta's app dashboard)", self._config.phone_number_id,
                 self._config.webhook_path, self._config.verify_token)

    async def wait(self) -> None:
        """A server channel never ends by itself."""
        await self._stopped.wait()

    async def stop(self) -> None:
        self._running = False
        self._stopped.set()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._graph.close()

    # -- receiving ---------------------------------------------------------------

    async def _on_verify(self, request: web.Request) -> web.Response:
        """Meta's subscription check: echo hub.challenge when the verify token matches."""
        mode = request.query.get("hub.mode", "")
        token = request.query.get("hub.verify_token", "")
        challenge = request.query.get("hub.challenge", "")
        if mode == "subscribe" and challenge and hmac.compare_digest(token.encode(),
                                                                     self._config.verify_token.encode()):
            log.info("whatsapp.webhook_verified")
            return web.Response(text=challenge, content_type="text/plain")
        log.warning("whatsapp.verify_rejected mode=%s from=%s", mode or "-", request.remote)
        return web.json_response({"error": "forbidden", "detail": "hub.mode must be subscribe and "
                                  "hub.verify_token must match [whatsapp] verify_token"}, status=403)

    async def _on_notification(self, request: web.Request) -> web.Response:
        raw = request.get(RAW_BODY, b"")  # read whole, up to Meta's 3 MB, by kefu's HTTP server
        if not signature_matches(raw, request.headers.get(SIGNATURE_HEADER), self._config.app_secret):
            log.warning("whatsapp.signature_rejected from=%s (check [whatsapp] app_secret)", request.remote)
            return web.json_response({"error": "unauthorized", "detail": f"missing or wrong {SIGNATURE_HEADER}"},
                                     status=401)
        try:
            # one shopper's broken emoji must not refuse the batch: everyone's messages in it would wait forever
            notification = read_notification(loads_json(raw, repair_text=True), self._config.phone_number_id)
        except (NotificationError, ValueError) as exc:
            return web.json_response({"error": "invalid_notification", "detail": str(exc)}, status=400)
        if notification.skipped:
            log.info("whatsapp.updates_skipped count=%d (other fields, numbers or message types)", notification.skipped)
        try:
            # Receipts first: a late refusal must be settled before a new message of the same chat releases
            # what waits for it.
            for update in notification.statuses:
                await self._receipt(update)
            for inbound in notification.messages:
                await self._accept(inbound)
        except OverloadedError as exc:  # not stored: Meta sends the POST again later, nothing is lost
            log.info("whatsapp.overloaded retry_after=%d", exc.retry_after)
            return web.json_response({"error": "overloaded", "detail": str(exc), "retry_after": exc.retry_after},
                                     status=503, headers={"Retry-After": str(exc.retry_after)})
        except KefuError as exc:
            log.warning("whatsapp.store_failed error=%s (Meta retries the notification)", exc)
            return web.json_response({"error": "unavailable", "detail": str(exc)}, status=503)
        return web.json_response({"ok": True})

    async def _receipt(self, update: StatusUpdate) -> None:
        if not await self._gateway.record_receipt(CHANNEL, update.message_id, update.receipt):
            log.info("whatsapp.receipt_unknown message=%s status=%s", update.message_id, update.receipt.status)
            return
        if update.error_code == OUTSIDE_WINDOW:  # Meta took it, then refused it: the 24 hours had passed
            if self._config.template_name and update.recipient:
                self._template_only.add(update.recipient)  # sent again, as the template
                await self._gateway.resend_sent_reply(CHANNEL, update.message_id, "refused after 24 hours: sent "
                                                      "again as the template", hold=False)
            else:
                await self._gateway.resend_sent_reply(CHANNEL, update.message_id, HELD_REASON, hold=True)
        elif update.error_code in RETRY_LATER:  # an outage Meta reported late: try again
            await self._gateway.resend_sent_reply(CHANNEL, update.message_id, update.receipt.error or "failed",
                                                  hold=False)

    async def _accept(self, inbound: Inbound) -> None:
        message = Message(channel=CHANNEL, conversation=inbound.sender, user_id=inbound.sender, text=inbound.text,
                          external_id=inbound.message_id, display_name=inbound.name, media=inbound.media,
                          timestamp=inbound.timestamp)
        result = await self._gateway.accept(message)
        if result.duplicate:
            return
        self._template_only.discard(inbound.sender)
        await self._gateway.release_held(CHANNEL, inbound.sender)  # the window is open again
        if result.state in (HandoffState.BOT, HandoffState.CLOSED):
            task = asyncio.create_task(self._typing(inbound.message_id), name="kefu-whatsapp-typing")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _typing(self, message_id: str) -> None:
        """"typing…" while the bot answers; a failure here loses nothing."""
        try:
            await self._graph.send(typing_message(message_id))
        except DeliveryError as exc:
            log.info("whatsapp.typing_failed message=%s error=%s", message_id, exc)

    # -- sending -----------------------------------------------------------------

    async def deliver(self, reply: Reply) -> None:
        """Called by the core's delivery worker until it succeeds (DeliveryError says when to retry)."""
        if reply.channel != CHANNEL:
            raise DeliveryError(f"not a WhatsApp reply: {reply.channel}", permanent=True)
        if not self._running:
            raise DeliveryError("the WhatsApp channel is not running")
        last = await self._gateway.last_shopper_message_at(CHANNEL, reply.conversation)
        if last is None or utc_now() - last > WINDOW - WINDOW_MARGIN:
            await self._outside_window(reply, "kefu's own count")
            return
        if reply.conversation in self._template_only:
            await self._outside_window(reply, "Meta refused a reply after 24 hours")
            return
        try:
            await self._send_reply(reply)
        except OutsideWindow as exc:  # Meta counts otherwise (a clock, a lost message): its word wins
            await self._outside_window(reply, str(exc))

    async def _send_reply(self, reply: Reply) -> None:
        to = f"+{reply.conversation}"
        text = reply.text.strip() or "…"
        bodies: list[dict[str, Any]]
        if reply.quick_replies:
            parts = split_text(text, TEXT_LIMIT)
            if len(parts[-1]) > BUTTONS_BODY_LIMIT and len(reply.quick_replies) <= 3:
                parts = parts[:-1] + split_text(parts[-1], BUTTONS_BODY_LIMIT)
            label = LIST_LABELS.get(reply.language, LIST_LABELS["en"])
            bodies = [*(text_message(to, part) for part in parts[:-1]),
                      choices_message(to, parts[-1], reply.quick_replies, label)]
        else:
            bodies = [text_message(to, part) for part in split_text(text, TEXT_LIMIT)]
        for index in range(min(reply.parts_sent, len(bodies) - 1), len(bodies)):  # a retry sends the rest
            await self._sent(reply, bodies[index])
            if index < len(bodies) - 1 and reply.message_id is not None:  # the last: delivered, by the core
                await self._gateway.record_parts_sent(reply.message_id, index + 1)

    async def _sent(self, reply: Reply, body: dict[str, Any]) -> None:
        message_id = await self._graph.send(body)
        if message_id and reply.message_id is not None:
            await self._gateway.record_channel_message_id(reply.message_id, message_id)

    async def _outside_window(self, reply: Reply, why: str) -> None:
        """After 24 hours only an approved template may go: the merchant's carries the reply, else it is held."""
        template = self._config.template_name
        if not template:
            log.warning("whatsapp.held conversation=…%s message=%s reason=outside the 24-hour window (%s), no "
                        "[whatsapp] template_name", reply.conversation[-4:], reply.message_id, why)
            raise DeliveryError(HELD_REASON + " ([whatsapp] template_name is not set)", held=True)
        log.info("whatsapp.template conversation=…%s message=%s template=%s reason=%s", reply.conversation[-4:],
                 reply.message_id, template, why)
        await self._sent(reply, template_message(f"+{reply.conversation}", template,
                                                 self._config.template_language, reply.text))


def create_adapter(*, config: Any, gateway: Any, http_app: web.Application | None = None) -> WhatsAppChannel:
    if not config.whatsapp.enabled:
        raise KefuError("the WhatsApp channel is off: set [whatsapp] enabled = true")
    return WhatsAppChannel(config=config.whatsapp, gateway=gateway, http_app=http_app)
