"""Sending through the WhatsApp Cloud API: `POST /{version}/{phone-number-id}/messages`, and what its errors mean.

A reply becomes a text message, or, with suggested questions, reply buttons (up to 3) or a list
(up to 10 rows); the limits are Meta's (a button title 20 characters, a row title 24, a body
1024 with buttons), so a long question is cut in the title and carried whole in the id, which
comes back when the shopper taps it. Errors are told apart by Graph's `code`: rate limits and
outages are retried later, a reply outside the 24-hour window goes the template way, the rest
(a bad token, a parameter Meta refuses, an unknown number) cannot succeed by retrying.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.errors import DeliveryError

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096
BUTTONS_BODY_LIMIT = 1024
MAX_BUTTONS = 3
BUTTON_TITLE = 20
BUTTON_ID = 256
MAX_ROWS = 10
ROW_TITLE = 24
ROW_DESCRIPTION = 72
ROW_ID = 200
LIST_BUTTON = 20
TEMPLATE_PARAMETER_LIMIT = 1024

OUTSIDE_WINDOW = 131047  # more than 24 hours since the shopper last wrote: only a template may go
# Rate limits and outages: worth trying again later (seconds to wait first; the worker's backoff after).
RETRY_LATER = {4: 60.0, 80007: 60.0, 613: 60.0, 130429: 2.0, 131056: 6.0, 131000: 5.0, 131016: 5.0, 1: 5.0,
               2: 5.0, 133004: 5.0, 131057: 60.0}


class OutsideWindow(DeliveryError):
    """Meta refused a free-form message: the shopper last wrote more than 24 hours ago."""

    def __init__(self, detail: str):
        super().__init__(f"more than 24 hours since the shopper last wrote ({detail})", permanent=True)


@dataclass(frozen=True)
class GraphSettings:
    base_url: str
    api_version: str
    phone_number_id: str
    token: str
    timeout_seconds: float = 15.0


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def text_message(to: str, body: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
            "text": {"preview_url": "http" in body, "body": body}}


def choices_message(to: str, body: str, questions: tuple[str, ...], list_label: str) -> dict[str, Any]:
    """Reply buttons for up to 3 suggested questions, else a list of up to 10; each id is the question."""
    if len(questions) <= MAX_BUTTONS:
        buttons = []
        for question in questions:
            title, n = cut(question, BUTTON_TITLE), 2
            while any(b["reply"]["title"] == title for b in buttons):  # titles must differ
                title, n = cut(question, BUTTON_TITLE - 2) + f" {n}", n + 1
            buttons.append({"type": "reply", "reply": {"id": cut(question, BUTTON_ID), "title": title}})
        interactive: dict[str, Any] = {"type": "button", "body": {"text": cut(body, BUTTONS_BODY_LIMIT)},
                                       "action": {"buttons": buttons}}
    else:
        rows = []
        for question in questions[:MAX_ROWS]:
            row = {"id": cut(question, ROW_ID), "title": cut(question, ROW_TITLE)}
            if len(question) > ROW_TITLE:
                row["description"] = cut(question, ROW_DESCRIPTION)
            rows.append(row)
        interactive = {"type": "list", "body": {"text": cut(body, TEXT_LIMIT)},
                       "action": {"button": cut(list_label, LIST_BUTTON), "sections": [{"rows": rows}]}}
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "interactive",
            "interactive": interactive}


def template_message(to: str, name: str, language: str, text: str) -> dict[str, Any]:
    """The merchant's approved template, its one body parameter carrying the reply."""
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "template",
            "template": {"name": name, "language": {"code": language},
                         "components": [{"type": "body", "parameters": [
                             {"type": "text", "text": cut(" ".join(text.split()), TEMPLATE_PARAMETER_LIMIT)}]}]}}


def typing_message(message_id: str) -> dict[str, Any]:
    """Marks the shopper's message read and shows "typing…" until the reply (or 25 s)."""
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id,
            "typing_indicator": {"type": "text"}}


class GraphClient:
    """One aiohttp session for the business number's send endpoint."""

    def __init__(self, settings: GraphSettings):
        self._settings = settings
        self._url = f"{settings.base_url}/{settings.api_version}/{settings.phone_number_id}/messages"
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, body: dict[str, Any]) -> str | None:
        """POST one message; the id Meta gives it ("wamid…"), None for a read mark. DeliveryError otherwise."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds))
        headers = {"Authorization": f"Bearer {self._settings.token}"}
        try:
            async with self._session.post(self._url, json=body, headers=headers) as response:
                status = response.status
                try:
                    data = await response.json(content_type=None)
                except (aiohttp.ContentTypeError, ValueError):
                    data = None
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise DeliveryError(f"WhatsApp Graph API unreachable: {exc!r}") from exc
        if status == 200 and isinstance(data, dict):
            messages = data.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                return str(messages[0].get("id") or "") or None
            return None
        raise graph_error(status, data, retry_after)


def graph_error(status: int, data: Any, retry_after: str | None = None) -> DeliveryError:
    """What a refused send means for the delivery: retry later, the template way, or give up."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return DeliveryError(f"WhatsApp Graph API answered HTTP {status} without an error object",
                             permanent=400 <= status < 500 and status != 429)
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
    reason = f"WhatsApp error {code}: {error.get('message') or ''}" + (f" ({details})" if details else "")
    if code == OUTSIDE_WINDOW:
        return OutsideWindow(str(details or error.get("message") or code))
    wait = RETRY_LATER.get(code) if isinstance(code, int) else None
    if wait is not None or status >= 500 or status == 429:
        try:
            wait = float(retry_after) if retry_after else wait
        except ValueError:
            pass
        return DeliveryError(reason, retry_after=wait)
    return DeliveryError(reason, permanent=True)
