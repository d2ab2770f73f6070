"""A fake WhatsApp Cloud API (Meta Graph API) on 127.0.0.1, so the WhatsApp channel runs over real HTTP.

It speaks the payloads of /work/whatsapp_reference.md in both directions:

* kefu → Meta: ``POST /{version}/{phone_number_id}/messages`` with ``Authorization: Bearer``, checked
  strictly (text, reply buttons, lists, templates, mark-as-read) so an adapter bug gets Graph's own
  error envelope instead of a silent 200. The answer is Meta's send response with a fresh ``wamid.``.
* Meta → kefu: `notify` posts signed webhook envelopes (built with the builders below) to the
  adapter's endpoint, `verify` sends the GET verification, `send_statuses` posts sent/delivered/read::

    async with FakeWhatsApp() as wa:
        wa.webhook_url = f"{kefu_url}/whatsapp/webhook"
        status, _ = await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message("16505551234", "hi")]))
        sent = await wa.wait_for_sent(1)
        await wa.send_statuses(sent[0]["id"], "sent", "delivered", "read")

The 24-hour customer-service window is emulated: `notify` opens it for each sender (from the message's
timestamp), and a non-template message outside it fails with 131047, at once (``window_errors =
"sync"``) or, as Meta mostly does, as a 200 followed by a ``failed`` status webhook (``"async"``).

Error codes for a refused body: an unexpected key, a wrong type or bad JSON is 100, a missing required
parameter 131008, a value out of range (a length, a count, a duplicate, a bad phone number) 131009.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web
from loopback import LoopbackServer, answer_slowly, json_body

JSONDict = dict[str, Any]

WABA_ID = "102290129340398"
DISPLAY_PHONE_NUMBER = "15550783881"
WINDOW_SECONDS = 24 * 3600
ERROR_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"
WINDOW_TITLE = "Re-engagement message"
WINDOW_DETAILS = ("Message failed to send because more than 24 hours have passed since the customer last "
                  "replied to this number.")
VERSION_RE = re.compile(r"^v(\d+)\.(\d+)$")
TO_RE = re.compile(r"^\+?\d{1,15}$")

# Titles as Meta's error-code table names them; the sync message is "(#<code>) <title>".
TITLES: dict[int, str] = {
    0: "AuthException", 1: "API Unknown", 2: "API Service", 4: "API Too Many Calls", 10: "API Permission Denied",
    100: "Invalid parameter", 190: "Invalid OAuth access token - Cannot parse access token",
    368: "Temporarily blocked for policies violations", 2500: "Unknown path components",
    80007: "Rate limit issues", 130429: "Rate limit hit", 130472: "User's number is part of an experiment",
    131000: "Something went wrong", 131005: "Access denied", 131008: "Required parameter is missing",
    131009: "Parameter value is not valid", 131016: "Service unavailable", 131021: "Recipient cannot be sender",
    131026: "Message Undeliverable", 131030: "Recipient phone number not in allowed list",
    131031: "Business Account locked", 131047: WINDOW_TITLE, 131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "User has stopped marketing messages", 131051: "Message type unknown",
    131052: "Media download error", 131053: "Media upload error",
    131056: "(Business Account, Consumer Account) pair rate limit hit", 131057: "Account in maintenance mode",
    131060: "This message is currently unavailable.",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation", 133004: "Server temporarily unavailable",
    133010: "Phone number not registered", 135000: "Generic user error",
}
DETAILS: dict[int, str] = {
    4: "Too many API calls to the app in a short period of time.",
    80007: "The WhatsApp Business Account has reached its rate limit.",
    130429: "Cloud API message throughput has been reached.",
    131000: "Something went wrong. Please try again later.",
    131016: "A service is temporarily unavailable.",
    131026: "Message Undeliverable.",
    131047: WINDOW_DETAILS,
    131048: "Message failed to send because there are restrictions on how many messages can be sent from "
            "this phone number. This may be because too many previous messages were blocked or flagged as spam.",
    131049: "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    131053: "Unable to upload the media used in the message.",
    131056: "Message failed to send because there were too many messages sent from this phone number to the "
            "same phone number in a short period of time.",
}
UNPREFIXED = frozenset({190})  # Graph's token errors carry the bare text, no "(#190)"


# -- records ------------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request kefu made to the Graph API and the status it got, so tests can assert calls and retries."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    at: float = 0.0


@dataclass
class Delivery:
    """One webhook the fake posted to kefu and kefu's answer (status 0 and the error text if it never got one)."""

    url: str
    payload: Any
    status: int
    text: str
    at: float


class GraphError(Exception):
    """A refusal, turned into Graph's ``{"error": {...}}`` envelope with its HTTP status."""

    def __init__(self, code: int, details: str, *, http_status: int = 400, title: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.http_status = http_status
        self.title = title or TITLES.get(code, "Error")
        self.headers = dict(headers or {})


@dataclass
class _Scripted:
    """A failure `fail`, `rate_limit` or `fail_async` queued for the next `times` sends."""

    times: int
    error: GraphError
    asynchronous: bool = False
    reads: bool = False
    after: int = 0  # sends served normally first


class _Correct:
    """The default of `notify(signature=...)`: sign the body with the app secret."""

    def __repr__(self) -> str:
        return "CORRECT"


CORRECT = _Correct()


def error_envelope(code: int, details: str, *, title: str | None = None) -> JSONDict:
    """Graph's synchronous error body (§5.1): message "(#code) title", details under error_data."""
    title = title or TITLES.get(code, "Error")
    return {"error": {"message": title if code in UNPREFIXED else f"(#{code}) {title}", "type": "OAuthException",
                      "code": code, "error_data": {"messaging_product": "whatsapp", "details": details},
                      "fbtrace_id": "A" + secrets.token_urlsafe(16)[:22]}}


def async_error(code: int, details: str | None = None, *, title: str | None = None) -> JSONDict:
    """The webhook error shape (no "error" wrapper): code, title, message (= title), error_data, href."""
    title = title or TITLES.get(code, "Error")
    return {"code": code, "title": title, "message": title,
            "error_data": {"details": details or DETAILS.get(code, title)}, "href": ERROR_HREF}


# -- builders: inbound messages and statuses, shaped as Meta posts them ------------------------------------

_counter = itertools.count(1)


def new_wamid(wa_id: str = "") -> str:
    """A unique message id in Meta's style: "wamid." + base64 of an opaque token (may end in "=")."""
    token = f"\x18\x0b{wa_id}\x15\x02\x00\x12\x18\x14{next(_counter):020X}\x00".encode()
    return "wamid." + base64.b64encode(token).decode()


def _timestamp(timestamp: float | str | None) -> str:
    """Meta's timestamps are strings of Unix seconds."""
    return str(int(float(timestamp))) if timestamp is not None else str(int(time.time()))


def _inbound(wa_id: str, kind: str, content: JSONDict, *, message_id: str | None, timestamp: float | str | None,
             context: JSONDict | None = None) -> JSONDict:
    message: JSONDict = {}
    if context is not None:
        message["context"] = context
    message.update({"from": wa_id, "id": message_id or new_wamid(wa_id), "timestamp": _timestamp(timestamp),
                    "type": kind})
    message.update(content)
    return message


def _context(context_id: str | None, business_number: str) -> JSONDict:
    """The context of a reply: the quoted (or tapped) message and the business number it came from."""
    return {"from": business_number, "id": context_id or new_wamid(business_number)}


def text_message(wa_id: str, body: str, *, message_id: str | None = None, timestamp: float | str | None = None,
                 context_id: str | None = None, business_number: str = DISPLAY_PHONE_NUMBER) -> JSONDict:
    """An inbound text; `context_id` makes it a quote-reply to that wamid."""
    context = _context(context_id, business_number) if context_id else None
    return _inbound(wa_id, "text", {"text": {"body": body}}, message_id=message_id, timestamp=timestamp,
                    context=context)


def button_reply(wa_id: str, button_id: str, title: str, *, context_id: str | None = None,
                 message_id: str | None = None, timestamp: float | str | None = None,
                 business_number: str = DISPLAY_PHONE_NUMBER) -> JSONDict:
    """A tapped reply button; the context is the interactive message it sat under (a fresh wamid if None)."""
    content = {"interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}}
    return _inbound(wa_id, "interactive", content, message_id=message_id, timestamp=timestamp,
                    context=_context(context_id, business_number))


def list_reply(wa_id: str, row_id: str, title: str, description: str | None = None, *,
               context_id: str | None = None, message_id: str | None = None,
               timestamp: float | str | None = None, business_number: str = DISPLAY_PHONE_NUMBER) -> JSONDict:
    """A chosen list row; "description" is present only when the row had one, as on Meta."""
    reply: JSONDict = {"id": row_id, "title": title}
    if description is not None:
        reply["description"] = description
    content = {"interactive": {"type": "list_reply", "list_reply": reply}}
    return _inbound(wa_id, "interactive", content, message_id=message_id, timestamp=timestamp,
                    context=_context(context_id, business_number))


def template_button(wa_id: str, payload: str, text: str, *, context_id: str | None = None,
                    message_id: str | None = None, timestamp: float | str | None = None,
                    business_number: str = DISPLAY_PHONE_NUMBER) -> JSONDict:
    """A template quick-reply tap: type "button" (not "interactive") with the payload the template set."""
    return _inbound(wa_id, "button", {"button": {"payload": payload, "text": text}}, message_id=message_id,
                    timestamp=timestamp, context=_context(context_id, business_number))


MEDIA_KINDS: dict[str, JSONDict] = {
    "image": {"mime_type": "image/jpeg"},
    "video": {"mime_type": "video/mp4"},
    "audio": {"mime_type": "audio/ogg; codecs=opus", "voice": True},
    "document": {"filename": "invoice.pdf", "mime_type": "application/pdf"},
    "sticker": {"mime_type": "image/webp", "animated": False},
}


def media_message(wa_id: str, kind: str = "image", caption: str | None = None, *, media_id: str | None = None,
                  with_url: bool = True, message_id: str | None = None,
                  timestamp: float | str | None = None) -> JSONDict:
    """An inbound image/video/audio/document/sticker: mime_type, sha256 and a media id (plus a url, as newer
    payloads carry). Audio and stickers take no caption."""
    if kind not in MEDIA_KINDS:
        raise ValueError(f"media kind {kind!r}; use one of {sorted(MEDIA_KINDS)}")
    if caption is not None and kind in ("audio", "sticker"):
        raise ValueError(f"WhatsApp {kind} messages have no caption")
    media_id = media_id or str(next(_counter) + 1_200_000_000_000_000)
    media: JSONDict = {"caption": caption} if caption is not None else {}
    media.update(MEDIA_KINDS[kind])
    media["sha256"] = base64.b64encode(hashlib.sha256(media_id.encode()).digest()).decode()
    media["id"] = media_id
    if with_url:
        media["url"] = f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={media_id}&ext=1"
    return _inbound(wa_id, kind, {kind: media}, message_id=message_id, timestamp=timestamp)


def location_message(wa_id: str, latitude: float = 37.4611978, longitude: float = -122.2164385, *,
                     name: str | None = None, address: str | None = None, url: str | None = None,
                     message_id: str | None = None, timestamp: float | str | None = None) -> JSONDict:
    """A shared location pin; name, address and url are optional, as on Meta."""
    location: JSONDict = {"latitude": latitude, "longitude": longitude}
    location.update({key: value for key, value in (("name", name), ("address", address), ("url", url))
                     if value is not None})
    return _inbound(wa_id, "location", {"location": location}, message_id=message_id, timestamp=timestamp)


def reaction_message(wa_id: str, reacted_id: str, emoji: str | None = "👍", *, message_id: str | None = None,
                     timestamp: float | str | None = None) -> JSONDict:
    """A reaction to `reacted_id`; emoji "" or None (key absent) means the reaction was removed."""
    reaction: JSONDict = {"message_id": reacted_id}
    if emoji is not None:
        reaction["emoji"] = emoji
    return _inbound(wa_id, "reaction", {"reaction": reaction}, message_id=message_id, timestamp=timestamp)


def unsupported_message(wa_id: str, kind: str = "edit", *, code: int = 131051, message_id: str | None = None,
                        timestamp: float | str | None = None) -> JSONDict:
    """A message type Cloud API cannot pass on: type "unsupported" with errors[] (131051, or 131060)."""
    details = ("This message is currently unavailable." if code == 131060
               else "Message type is currently not supported.")
    error = {"code": code, "title": TITLES.get(code, "Error"), "message": TITLES.get(code, "Error"),
             "error_data": {"details": details}}
    return _inbound(wa_id, "unsupported", {"errors": [error], "unsupported": {"type": kind}},
                    message_id=message_id, timestamp=timestamp)


def status(message_id: str, status: str, recipient_id: str, *, errors: Sequence[JSONDict] | None = None,
           timestamp: float | str | None = None, pricing: JSONDict | None = None,
           conversation: JSONDict | None = None) -> JSONDict:
    """A statuses[] item (sent/delivered/read/failed/played); pricing and conversation only when given
    (v24.0+ omits conversation), errors only on failed."""
    item: JSONDict = {"id": message_id, "status": status, "timestamp": _timestamp(timestamp),
                      "recipient_id": recipient_id}
    if conversation is not None:
        item["conversation"] = conversation
    if pricing is not None:
        item["pricing"] = pricing
    if errors:
        item["errors"] = list(errors)
    return item


def contact(wa_id: str | None, name: str | None = None, *, user_id: str | None = None) -> JSONDict:
    """A contacts[] item; the default profile name is "Shopper <last 4 digits>"."""
    item: JSONDict = {"profile": {"name": name or f"Shopper {(wa_id or user_id or '')[-4:]}"}}
    if wa_id is not None:
        item["wa_id"] = wa_id
    if user_id is not None:
        item["user_id"] = user_id
    return item


def batch(*payloads: JSONDict) -> JSONDict:
    """Several envelopes as one delivery (Meta batches entries), so adapters must iterate every entry."""
    return {"object": "whatsapp_business_account",
            "entry": [entry for payload in payloads for entry in payload["entry"]]}


def _digits(to: str) -> str:
    return "".join(ch for ch in to if ch.isdigit())


def _api_major(version: str) -> int:
    match = VERSION_RE.match(version)
    return int(match.group(1)) if match else 0


# -- validating what kefu sends ----------------------------------------------------------------------------


def _keys(value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> JSONDict:
    """`value` as an object with only `allowed` keys and every `required` one, else Graph's refusal."""
    if not isinstance(value, dict):
        raise GraphError(100, f"Param {path or 'body'} must be a JSON object.")
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise GraphError(100, f'Unexpected key "{key}" on param "{path}".' if path
                             else f'Unexpected key "{key}" in the request body.')
    for key in required:
        if key not in value:
            raise GraphError(131008, f"The parameter {path}.{key} is required." if path
                             else f"The parameter {key} is required.")
    return value


def _text(value: Any, path: str, max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str):
        raise GraphError(100, f"Param {path} must be a string.")
    if not min_len <= len(value) <= max_len:
        raise GraphError(131009, f"{path}: length must be between {min_len} and {max_len} characters, "
                                 f"got {len(value)}.")
    return value


def _list(value: Any, path: str, min_len: int, max_len: int, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise GraphError(100, f"Param {path} must be an array.")
    if not min_len <= len(value) <= max_len:
        raise GraphError(131009, f"{path}: {min_len} to {max_len} {what} are allowed, got {len(value)}.")
    return value


def _unique(values: list[str], path: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise GraphError(131009, f"{path} must be unique; {value!r} appears more than once.")
        seen.add(value)


def _check_text_message(text: Any) -> None:
    _keys(text, "text", ("body", "preview_url"), ("body",))
    _text(text["body"], "text.body", 4096)
    if "preview_url" in text and not isinstance(text["preview_url"], bool):
        raise GraphError(100, "Param text.preview_url must be a boolean.")


def _check_header(header: Any, path: str, media: bool) -> None:
    header = _keys(header, path, ("type", "text", "image", "video", "document"), ("type",))
    kinds = ("text", "image", "video", "document") if media else ("text",)
    if header["type"] not in kinds:
        raise GraphError(131009, f"{path}.type must be one of {', '.join(kinds)}.")
    if header["type"] == "text":
        _keys(header, path, ("type", "text"), ("text",))
        _text(header["text"], f"{path}.text", 60)
    else:
        kind = header["type"]
        _keys(header, path, ("type", kind), (kind,))
        source = _keys(header[kind], f"{path}.{kind}", ("id", "link", "filename"))
        if not ("id" in source) ^ ("link" in source):
            raise GraphError(131009, f"{path}.{kind} needs exactly one of id or link.")


def _check_body_footer(interactive: JSONDict, body_max: int) -> None:
    body = _keys(interactive["body"], "interactive.body", ("text",), ("text",))
    _text(body["text"], "interactive.body.text", body_max)
    if "footer" in interactive:
        footer = _keys(interactive["footer"], "interactive.footer", ("text",), ("text",))
        _text(footer["text"], "interactive.footer.text", 60)


def _check_buttons(interactive: JSONDict) -> None:
    if "header" in interactive:
        _check_header(interactive["header"], "interactive.header", media=True)
    _check_body_footer(interactive, 1024)
    action = _keys(interactive["action"], "interactive.action", ("buttons",), ("buttons",))
    buttons = _list(action["buttons"], "interactive.action.buttons", 1, 3, "buttons")
    ids, titles = [], []
    for i, button in enumerate(buttons):
        path = f"interactive.action.buttons[{i}]"
        button = _keys(button, path, ("type", "reply"), ("type", "reply"))
        if button["type"] != "reply":
            raise GraphError(131009, f"{path}.type must be reply.")
        reply = _keys(button["reply"], f"{path}.reply", ("id", "title"), ("id", "title"))
        ids.append(_text(reply["id"], f"{path}.reply.id", 256))
        titles.append(_text(reply["title"], f"{path}.reply.title", 20))
    _unique(ids, "interactive.action.buttons[].reply.id")
    _unique(titles, "interactive.action.buttons[].reply.title")


def _check_list(interactive: JSONDict) -> None:
    if "header" in interactive:
        _check_header(interactive["header"], "interactive.header", media=False)
    _check_body_footer(interactive, 4096)
    action = _keys(interactive["action"], "interactive.action", ("button", "sections"), ("button", "sections"))
    _text(action["button"], "interactive.action.button", 20)
    sections = _list(action["sections"], "interactive.action.sections", 1, 10, "sections")
    row_ids: list[str] = []
    for i, section in enumerate(sections):
        path = f"interactive.action.sections[{i}]"
        section = _keys(section, path, ("title", "rows"), ("title", "rows") if len(sections) > 1 else ("rows",))
        if "title" in section:
            _text(section["title"], f"{path}.title", 24)
        rows = _list(section["rows"], f"{path}.rows", 1, 10, "rows")
        for j, row in enumerate(rows):
            row_path = f"{path}.rows[{j}]"
            row = _keys(row, row_path, ("id", "title", "description"), ("id", "title"))
            row_ids.append(_text(row["id"], f"{row_path}.id", 200))
            _text(row["title"], f"{row_path}.title", 24)
            if "description" in row:
                _text(row["description"], f"{row_path}.description", 72)
    if len(row_ids) > 10:
        raise GraphError(131009, f"interactive.action.sections: at most 10 rows in total are allowed, "
                                 f"got {len(row_ids)}.")
    _unique(row_ids, "interactive.action.sections[].rows[].id")


def _check_interactive(interactive: Any) -> None:
    interactive = _keys(interactive, "interactive", ("type", "header", "body", "footer", "action"),
                        ("type", "body", "action"))
    kind = interactive["type"]
    if kind == "button":
        _check_buttons(interactive)
    elif kind == "list":
        _check_list(interactive)
    else:
        raise GraphError(100, f"interactive.type {kind!r}: the fake serves only button and list messages.")


def _check_parameters(parameters: Any, path: str, payloads: bool = False) -> int:
    parameters = _list(parameters, path, 0, 100, "parameters")
    for i, parameter in enumerate(parameters):
        item = f"{path}[{i}]"
        parameter = _keys(parameter, item, ("type", "text", "payload", "parameter_name"), ("type",))
        kind = parameter["type"]
        if payloads and kind == "payload":
            _keys(parameter, item, ("type", "payload"), ("payload",))
            _text(parameter["payload"], f"{item}.payload", 1000)
        elif kind == "text":
            _keys(parameter, item, ("type", "text", "parameter_name"), ("text",))
            if not isinstance(parameter["text"], str) or not parameter["text"].strip():
                raise GraphError(131009, f"{item}.text must be a non-empty string.")
        else:
            raise GraphError(131009, f"{item}.type {kind!r} is not valid here; use text.")
    return len(parameters)


def _check_template(template: Any, templates: Mapping[str, Mapping[str, int]]) -> None:
    """The template body's shape, then (as Graph does) that it exists in that language with that many params."""
    template = _keys(template, "template", ("name", "language", "components"), ("name", "language"))
    name = _text(template["name"], "template.name", 512)
    language = _keys(template["language"], "template.language", ("code", "policy"), ("code",))
    code = _text(language["code"], "template.language.code", 15)
    if "policy" in language and language["policy"] != "deterministic":
        raise GraphError(131009, "template.language.policy must be deterministic.")
    body_params: int | None = None
    for i, component in enumerate(_list(template.get("components", []), "template.components", 0, 20,
                                        "components")):
        path = f"template.components[{i}]"
        component = _keys(component, path, ("type", "sub_type", "index", "parameters"), ("type",))
        kind = component["type"]
        if kind == "body":
            if body_params is not None:
                raise GraphError(131009, "template.components: only one body component is allowed.")
            body_params = _check_parameters(component.get("parameters", []), f"{path}.parameters")
        elif kind == "button":
            _keys(component, path, ("type", "sub_type", "index", "parameters"), ("sub_type", "index"))
            if component["sub_type"] not in ("quick_reply", "url"):
                raise GraphError(131009, f"{path}.sub_type must be quick_reply or url.")
            _check_parameters(component.get("parameters", []), f"{path}.parameters", payloads=True)
        elif kind == "header":
            _check_parameters(component.get("parameters", []), f"{path}.parameters")
        else:
            raise GraphError(131009, f"{path}.type must be header, body or button.")
    languages = templates.get(name)
    if languages is None or code not in languages:
        raise GraphError(132001, f"template name ({name}) does not exist in {code}", http_status=404)
    expected = languages[code]
    if (body_params or 0) != expected:
        raise GraphError(132000, f"body: number of localizable_params ({body_params or 0}) does not match the "
                                 f"expected number of params ({expected})")


# -- the server ---------------------------------------------------------------------------------------------

Followup = Callable[[], Awaitable[Any]]


class FakeWhatsApp(LoopbackServer):
    """A per-test Graph API for one business number: its sends, read marks, windows and scripted failures."""

    def __init__(self, token: str = "EAAG-test-token-0123456789", *, app_secret: str = "app-secret-0123456789abcdef",
                 phone_number_id: str = "106540352242922", api_version: str = "v25.0",
                 display_phone_number: str = DISPLAY_PHONE_NUMBER) -> None:
        self.token = token
        self.app_secret = app_secret
        self.phone_number_id = phone_number_id
        self.api_version = api_version
        self.display_phone_number = display_phone_number
        self.waba_id = WABA_ID
        self.templates: dict[str, dict[str, int]] = {}  # name -> {language code -> number of body params}
        self.webhook_url: str | None = None  # where statuses go (async window failures, send_statuses)
        self.window_errors: Literal["sync", "async"] = "sync"
        self.clock: Callable[[], float] = time.time
        self.last_inbound: dict[str, float] = {}  # wa_id -> unix time of the customer's last message
        self.sent: list[JSONDict] = []  # accepted message bodies, each with the returned wamid under "id"
        self.read_marks: list[JSONDict] = []
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[Delivery] = []  # webhooks posted to kefu, in order
        self.async_failed: list[str] = []  # wamids answered 200 whose failed status was posted afterwards
        self.delay_seconds = 0.0
        self.status_delay = 0.05  # between a 200 and its async failed status, as Meta's come later
        self._scripted: list[_Scripted] = []
        self._by_id: dict[str, JSONDict] = {}
        self._closing = asyncio.Event()
        self._sent_event = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{version}/{phone_number_id}/messages", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._unknown_path)

    def release_waiters(self) -> None:
        """Release slow answers and wait_for_sent first, so stopping never waits out a delay."""
        self._closing.set()
        self._sent_event.set()

    async def start(self) -> None:
        self._closing.clear()
        self._sent_event = asyncio.Event()
        await super().start()

    async def stop(self) -> None:
        """Stop background webhooks and close the client session too, so no test leaks a task or socket."""
        self.release_waiters()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        await super().stop()

    # -- switches --------------------------------------------------------------------------------------------

    def fail(self, times: int = 1, *, code: int = 131000, http_status: int = 500, details: str | None = None,
             reads: bool = False, after: int = 0) -> None:
        """The next `times` sends, once `after` were served, get this Graph error; `reads=True` lets
        mark-as-read requests take it too."""
        error = GraphError(code, details or DETAILS.get(code, TITLES.get(code, "Error")), http_status=http_status)
        self._scripted.append(_Scripted(times, error, reads=reads, after=after))

    def stop_failing(self) -> None:
        """Serve every request again (the outage is over)."""
        self._scripted.clear()

    def rate_limit(self, times: int = 1, code: int = 130429, *, http_status: int = 400,
                   retry_after: str | None = None, reads: bool = False) -> None:
        """The next `times` sends are rate limited: HTTP 400 per Meta's table, no Retry-After unless given."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        error = GraphError(code, DETAILS.get(code, TITLES.get(code, "Rate limit hit")), http_status=http_status,
                           headers=headers)
        self._scripted.append(_Scripted(times, error, reads=reads))

    def fail_async(self, times: int = 1, *, code: int = 131026, details: str | None = None) -> None:
        """The next `times` sends get a 200 and a wamid, then a "failed" status webhook with this error."""
        error = GraphError(code, details or DETAILS.get(code, TITLES.get(code, "Error")))
        self._scripted.append(_Scripted(times, error, asynchronous=True))

    def delay(self, seconds: float) -> None:
        """Answer every Graph request `seconds` late (released on stop), to test kefu's timeouts."""
        self.delay_seconds = seconds

    def open_window(self, wa_id: str, at: float | None = None) -> None:
        """Mark `wa_id` as having written at `at` (now), for tests that send without an inbound message."""
        self.last_inbound[wa_id] = self.clock() if at is None else at

    # -- inspection ------------------------------------------------------------------------------------------

    def messages_to(self, wa_id: str) -> list[JSONDict]:
        """The accepted messages for `wa_id` (the `to` of each compared by its digits), in order."""
        return [message for message in self.sent if _digits(message.get("to", "")) == _digits(wa_id)]

    async def wait_for_sent(self, count: int, timeout: float = 10.0, *, wa_id: str | None = None) -> list[JSONDict]:
        """Wait until `count` messages (to `wa_id`, if given) were accepted; fail with what came if they never do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = self.sent if wa_id is None else self.messages_to(wa_id)
            if len(got) >= count:
                return list(got)
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing.is_set():
                refused = [(r.status, r.body) for r in self.requests if r.status != 200][-5:]
                raise AssertionError(f"expected {count} accepted message(s) within {timeout}s, got {len(got)}: "
                                     f"{got!r}; last refused requests: {refused!r}")
            try:
                await asyncio.wait_for(self._sent_event.wait(), remaining)
            except TimeoutError:
                pass

    async def settle(self) -> None:
        """Wait for the webhooks the fake posts in the background (async failures) to be delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- posting to kefu -------------------------------------------------------------------------------------

    def envelope(self, *, messages: Iterable[JSONDict] = (), statuses: Iterable[JSONDict] = (),
                 contacts: Iterable[JSONDict] | None = None) -> JSONDict:
        """The full webhook body for this number; contacts default to one per distinct sender and every
        empty list is left out, as Meta does."""
        messages, statuses = list(messages), list(statuses)
        if contacts is None:
            senders: dict[str, JSONDict] = {}
            for message in messages:
                wa_id, user_id = message.get("from"), message.get("from_user_id")
                key = wa_id or user_id
                if key and key not in senders:
                    senders[key] = contact(wa_id, user_id=user_id)
            contacts = list(senders.values())
        contacts = list(contacts)
        value: JSONDict = {"messaging_product": "whatsapp",
                           "metadata": {"display_phone_number": self.display_phone_number,
                                        "phone_number_id": self.phone_number_id}}
        for key, items in (("contacts", contacts), ("messages", messages), ("statuses", statuses)):
            if items:
                value[key] = items
        return {"object": "whatsapp_business_account",
                "entry": [{"id": self.waba_id, "changes": [{"value": value, "field": "messages"}]}]}

    def sign(self, raw: bytes) -> str:
        """The X-Hub-Signature-256 value Meta sends: HMAC-SHA256 of the raw body keyed by the app secret."""
        return "sha256=" + hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()

    async def notify(self, url: str, payload: Any, *, signature: str | None | _Correct = CORRECT,
                     raw: bytes | None = None) -> tuple[int, str]:
        """Post `payload` as Meta does (ASCII-escaped JSON, signed) and return kefu's (status, body).

        Every inbound message in it opens its sender's 24-hour window at the message's timestamp.
        `signature="bad"` sends a wrong one, None none at all, another string verbatim; `raw` replaces
        the serialised body (and is what gets signed).
        """
        self._note_inbound(payload)
        return await self._post(url, payload, signature=signature, raw=raw)

    async def verify(self, url: str, *, mode: str = "subscribe", token: str,
                     challenge: str = "1158201444") -> tuple[int, str]:
        """The GET Meta sends when the callback URL is saved; kefu must answer 200 with the challenge."""
        params = {"hub.mode": mode, "hub.challenge": challenge, "hub.verify_token": token}
        async with self._client().get(url, params=params) as response:
            return response.status, await response.text()

    async def send_statuses(self, message_id: str, *statuses: str | JSONDict,
                            url: str | None = None) -> list[tuple[int, str]]:
        """Post one signed statuses webhook per status (default sent, delivered, read) for a sent wamid."""
        target = url or self.webhook_url
        if target is None:
            raise RuntimeError("set FakeWhatsApp.webhook_url (or pass url=) before send_statuses")
        answers = []
        for item in statuses or ("sent", "delivered", "read"):
            built = self.status_for(message_id, item) if isinstance(item, str) else item
            answers.append(await self._post(target, self.envelope(statuses=[built])))
        return answers

    def status_for(self, message_id: str, name: str, *, errors: Sequence[JSONDict] | None = None) -> JSONDict:
        """A status for a message this fake accepted: its recipient, and pricing on sent and delivered
        (conversation too before v24.0)."""
        sent = self._by_id.get(message_id)
        if sent is None:
            raise KeyError(f"{message_id} was not sent through this fake; build it with status() instead")
        recipient = _digits(sent["to"])
        template = sent.get("type") == "template"
        category = "utility" if template else "service"
        pricing = conversation = None
        if name in ("sent", "delivered"):
            pricing = {"billable": template, "pricing_model": "PMP",
                       "type": "regular" if template else "free_customer_service", "category": category}
            if _api_major(self.api_version) < 24:
                conversation = {"id": hashlib.sha256(recipient.encode()).hexdigest()[:32], "origin": {"type": category}}
                if name == "sent":
                    conversation["expiration_timestamp"] = str(int(self.clock()) + WINDOW_SECONDS)
        return status(message_id, name, recipient, errors=errors, timestamp=self.clock(), pricing=pricing,
                      conversation=conversation)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    def _note_inbound(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        for entry in payload.get("entry") or []:
            for change in entry.get("changes") or []:
                for message in (change.get("value") or {}).get("messages") or []:
                    wa_id = message.get("from")
                    if not wa_id:
                        continue
                    try:
                        at = float(message["timestamp"])
                    except (KeyError, TypeError, ValueError):
                        at = self.clock()
                    self.last_inbound[wa_id] = max(at, self.last_inbound.get(wa_id, at))

    async def _post(self, url: str, payload: Any, *, signature: str | None | _Correct = CORRECT,
                    raw: bytes | None = None) -> tuple[int, str]:
        body = raw if raw is not None else json.dumps(payload, ensure_ascii=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if isinstance(signature, _Correct):
            headers["X-Hub-Signature-256"] = self.sign(body)
        elif signature == "bad":
            headers["X-Hub-Signature-256"] = self.sign(body + b"tampered")
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                answer = (response.status, await response.text())
        except aiohttp.ClientError as error:
            self.deliveries.append(Delivery(url, payload, 0, repr(error), time.time()))
            raise
        self.deliveries.append(Delivery(url, payload, answer[0], answer[1], time.time()))
        return answer

    def _spawn(self, followup: Followup) -> None:
        async def run() -> None:
            await asyncio.sleep(self.status_delay)
            try:
                await followup()
            except (aiohttp.ClientError, TimeoutError):
                pass  # recorded in deliveries; Meta would retry, a test reads the record

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _unknown_path(self, request: web.Request) -> web.Response:
        record = self._record(request, await self._body(request))
        record.status = 400
        path = request.path
        return web.json_response(error_envelope(2500, f"Unknown path components: {path}"), status=400)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        record = self._record(request, body)
        followup: Followup | None = None
        try:
            response, followup = self._answer(request, body)
        except GraphError as error:
            headers = dict(error.headers)
            if error.code == 190:
                headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{error.title}"'
            response = web.json_response(error_envelope(error.code, error.details, title=error.title),
                                         status=error.http_status, headers=headers)
        record.status = response.status
        await answer_slowly(self._closing, self.delay_seconds)
        if followup is not None:  # the 200 goes out before the failed status is posted, as on Meta
            await response.prepare(request)
            await response.write_eof()
            self._spawn(followup)
        return response

    def _answer(self, request: web.Request, body: Any) -> tuple[web.Response, Followup | None]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise GraphError(190, "The access token is missing, malformed or not this app's.", http_status=401)
        version, number = request.match_info["version"], request.match_info["phone_number_id"]
        if version != self.api_version:
            raise GraphError(100, f"Unsupported version {version!r} in the path; this Graph serves "
                                  f"{self.api_version}.")
        if number != self.phone_number_id:
            raise GraphError(100, f"Unsupported post request. Object with ID '{number}' does not exist, cannot be "
                                  "loaded due to missing permissions, or does not support this operation.")
        if request.method != "POST":
            raise GraphError(100, f"Unsupported {request.method.lower()} request on /messages.")
        if not isinstance(body, dict):
            raise GraphError(100, "The request body must be a JSON object.")
        if "status" in body:
            return self._mark_read(body), None
        return self._send(body)

    def _mark_read(self, body: JSONDict) -> web.Response:
        _keys(body, "", ("messaging_product", "status", "message_id", "typing_indicator"),
              ("messaging_product", "status", "message_id"))
        self._check_product(body)
        if body["status"] != "read":
            raise GraphError(131009, "status must be read.")
        _text(body["message_id"], "message_id", 512)
        if "typing_indicator" in body and body["typing_indicator"] != {"type": "text"}:
            raise GraphError(131009, 'typing_indicator must be {"type": "text"}.')
        scripted = self._next_scripted(read=True)
        if scripted is not None:
            raise scripted.error
        self.read_marks.append(body)
        return web.json_response({"success": True})

    def _send(self, body: JSONDict) -> tuple[web.Response, Followup | None]:
        kind = body.get("type", "text")
        if kind not in ("text", "interactive", "template"):
            raise GraphError(100, f"type {kind!r}: the fake serves only text, interactive and template messages.")
        _keys(body, "", ("messaging_product", "recipient_type", "to", "type", "context",
                             "biz_opaque_callback_data", kind), ("messaging_product", "to", kind))
        self._check_product(body)
        if "recipient_type" in body and body["recipient_type"] != "individual":
            raise GraphError(131009, "recipient_type must be individual.")
        to = body["to"]
        if not isinstance(to, str) or not TO_RE.match(to):
            raise GraphError(131009, f"to: {to!r} is not a phone number (digits, optionally a leading +).")
        if "context" in body:
            context = _keys(body["context"], "context", ("message_id",), ("message_id",))
            _text(context["message_id"], "context.message_id", 512)
        if "biz_opaque_callback_data" in body:
            _text(body["biz_opaque_callback_data"], "biz_opaque_callback_data", 512)
        if kind == "text":
            _check_text_message(body["text"])
        elif kind == "interactive":
            _check_interactive(body["interactive"])
        else:
            _check_template(body["template"], self.templates)
        scripted = self._next_scripted(read=False)
        if scripted is not None and not scripted.asynchronous:
            raise scripted.error
        wa_id = _digits(to)
        window_error: GraphError | None = None
        if kind != "template" and not self._window_open(wa_id):
            window_error = GraphError(131047, WINDOW_DETAILS)
            if self.window_errors == "sync":
                raise window_error
        wamid = new_wamid(wa_id)
        record = {**body, "id": wamid}
        self.sent.append(record)
        self._by_id[wamid] = record
        self._sent_event.set()
        self._sent_event = asyncio.Event()
        followup: Followup | None = None
        failure = scripted.error if scripted is not None else window_error
        if failure is not None:
            self.async_failed.append(wamid)
            followup = self._failed_status_poster(wamid, failure)
        answer = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": wa_id}],
                  "messages": [{"id": wamid}]}
        return web.json_response(answer), followup

    def _failed_status_poster(self, wamid: str, failure: GraphError) -> Followup | None:
        url = self.webhook_url
        if url is None:
            return None
        item = self.status_for(wamid, "failed", errors=[async_error(failure.code, failure.details,
                                                                    title=failure.title)])

        async def post() -> None:
            await self._post(url, self.envelope(statuses=[item]))

        return post

    def _window_open(self, wa_id: str) -> bool:
        last = self.last_inbound.get(wa_id)
        return last is not None and self.clock() - last <= WINDOW_SECONDS

    @staticmethod
    def _check_product(body: JSONDict) -> None:
        if body["messaging_product"] != "whatsapp":
            raise GraphError(131009, f"messaging_product must be whatsapp, got {body['messaging_product']!r}.")

    def _next_scripted(self, *, read: bool) -> _Scripted | None:
        """The queued failure for this request, if it takes one (mark-as-read only takes `reads=True` ones)."""
        if not self._scripted or (read and not self._scripted[0].reads):
            return None
        scripted = self._scripted[0]
        if read and scripted.asynchronous:
            return None
        if scripted.after > 0:
            if not read:
                scripted.after -= 1
            return None
        scripted.times -= 1
        if scripted.times <= 0:
            self._scripted.pop(0)
        return scripted

    @staticmethod
    async def _body(request: web.Request) -> Any:
        return await json_body(request)

    def _record(self, request: web.Request, body: Any) -> RecordedRequest:
        record = RecordedRequest(method=request.method, path=request.path, headers=dict(request.headers),
                                 body=body, at=time.time())
        self.requests.append(record)
        return record
