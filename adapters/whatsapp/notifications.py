"""WhatsApp webhook notifications: the signature on every POST, and the envelope read into messages and receipts.

Meta signs the raw body (HMAC-SHA256 with the app secret, `X-Hub-Signature-256: sha256=<hex>`),
with non-ASCII written as \\uXXXX: the check runs on the bytes as they came, never on re-encoded
JSON. One POST may carry many updates (entry × change × messages/statuses), in no guaranteed
order; anything kefu does not read (other fields, reactions, system notices) is skipped, and the
POST is still answered 200 so Meta does not send it again for a week.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.messages import Receipt

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker", "location", "contacts")
RECEIPTS = ("sent", "delivered", "read", "played", "failed")


def signature_matches(raw: bytes, header: str | None, app_secret: str) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest().encode()
    # As bytes: compare_digest refuses a str with non-ASCII characters (a forged header), which would be a 500.
    given = header.removeprefix("sha256=").strip().lower().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class Inbound:
    """One shopper message, as kefu's core reads it."""

    message_id: str  # "wamid.…": a redelivery carries the same id
    sender: str  # the shopper's WhatsApp id (digits): the conversation
    name: str | None
    text: str
    media: str | None
    timestamp: datetime


@dataclass(frozen=True)
class StatusUpdate:
    message_id: str
    receipt: Receipt
    error_code: int | None = None  # the first error's code on a failed one (131047: the 24-hour window)
    recipient: str | None = None  # the shopper's WhatsApp id: the conversation


@dataclass(frozen=True)
class Notification:
    messages: tuple[Inbound, ...]
    statuses: tuple[StatusUpdate, ...]
    skipped: int  # updates kefu does not read (logged, answered 200)


class NotificationError(ValueError):
    """The body is not a WhatsApp Business Account notification at all."""


def _dict(value: Any) -> dict[str, Any]:
    """`value` when it is an object, else an empty one: a field of the wrong shape reads as absent."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def read_notification(data: Any, phone_number_id: str) -> Notification:
    """The messages (oldest first) and receipts for this business number; others' are skipped."""
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        raise NotificationError('expected {"object": "whatsapp_business_account", "entry": [...]}')
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise NotificationError("'entry' must be a list")
    messages: list[Inbound] = []
    statuses: list[StatusUpdate] = []
    skipped = 0
    for entry in entries:
        for change in _list(_dict(entry).get("changes")):
            value = _dict(change).get("value")
            if not isinstance(value, dict) or _dict(change).get("field") != "messages":
                skipped += 1
                continue
            number = _dict(value.get("metadata")).get("phone_number_id")
            if str(number) != phone_number_id:
                log.warning("whatsapp.other_number phone_number_id=%s (this kefu serves %s): skipped", number,
                            phone_number_id)
                skipped += 1
                continue
            names = _names(value.get("contacts"))
            for raw in _list(value.get("messages")):
                inbound = _inbound(raw, names)
                if inbound is None:
                    skipped += 1
                else:
                    messages.append(inbound)
            for raw in _list(value.get("statuses")):
                update = _status(raw)
                if update is None:
                    skipped += 1
                else:
                    statuses.append(update)
    messages.sort(key=lambda m: m.timestamp)  # a batch is in no guaranteed order; the core keeps arrival order
    return Notification(tuple(messages), tuple(statuses), skipped)


def _names(contacts: Any) -> dict[str, str]:
    names = {}
    for contact in _list(contacts):
        if isinstance(contact, dict) and contact.get("wa_id"):
            name = _dict(contact.get("profile")).get("name")
            if isinstance(name, str) and name:
                names[str(contact["wa_id"])] = name
    return names


def _timestamp(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(timezone.utc)


def _inbound(raw: Any, names: dict[str, str]) -> Inbound | None:
    """A message the core can answer: text, a button or list choice, media (with its caption)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        return None
    sender = raw.get("from")
    kind = raw.get("type")
    if not isinstance(sender, str) or not sender:
        # Users with a username may come with a business-scoped id only (2026): not a number to answer yet.
        log.warning("whatsapp.no_sender message=%s type=%s: skipped", raw.get("id"), kind)
        return None
    text, media = "", None
    if kind == "text":
        text = str(_dict(raw.get("text")).get("body") or "")
    elif kind == "interactive":
        choice = _dict(raw.get("interactive"))
        reply = _dict(choice.get("button_reply")) or _dict(choice.get("list_reply"))
        # The id carries the whole suggested question (a button's title is cut to 20 characters).
        text = str(reply.get("id") or reply.get("title") or "")
    elif kind == "button":  # a template's quick-reply button
        button = _dict(raw.get("button"))
        text = str(button.get("text") or button.get("payload") or "")
    elif kind in MEDIA_TYPES:
        media = {"image": "photo", "audio": "voice" if _dict(raw.get("audio")).get("voice") else "audio"}.get(
            kind, kind)
        text = str(_dict(raw.get(kind)).get("caption") or "")
    elif kind == "unsupported":
        media = "unsupported"
    else:  # reaction, system, order, request_welcome…: nothing to answer
        log.info("whatsapp.message_skipped message=%s type=%s", raw["id"], kind)
        return None
    return Inbound(message_id=raw["id"], sender=sender, name=names.get(sender), text=text, media=media,
                   timestamp=_timestamp(raw.get("timestamp")))


def _status(raw: Any) -> StatusUpdate | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or raw.get("status") not in RECEIPTS:
        return None
    error, code = None, None
    errors = raw.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = first.get("code") if isinstance(first.get("code"), int) else None
        details = _dict(first.get("error_data")).get("details")
        error = f"{first.get('code')}: {first.get('title') or first.get('message') or ''}" + (
            f" ({details})" if details else "")
    recipient = raw.get("recipient_id")
    return StatusUpdate(raw["id"], Receipt(status=raw["status"], at=_timestamp(raw.get("timestamp")), error=error),
                        code, recipient if isinstance(recipient, str) and recipient else None)
