"""Masking at rest and in logs, with the same patterns the LLM prompt's masker uses (bot/responder/pii.py).

At rest the placeholders are plain (`[EMAIL]`, `[PHONE]`, `[ADDRESS]`, `[CARD …1111]`): nothing
is restored later, and an agent still sees what kind of thing the shopper sent and a card's last
four digits. Card numbers are always masked before they are stored: a number counts as a card
only when it passes the Luhn check and is written like one (in one run, or in groups of four, or
4-6-5 / 4-6-4), so an order number such as 123-4567890-1234567 stays readable. With
`mask_stored` the rest is masked too, except numbers that follow "order", "#", "订单" and the
like: agents need order numbers verbatim, and the bot finds answers without them (it replaces
numbers before searching anyway).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from bot.messages import Message
from bot.responder.pii import ADDRESS, CARD, DATE, EMAIL, PHONE, mask_pii

ORDER_CONTEXT = re.compile(
    r"(?i)(?:#|\b(?:order|bestell|auftrag|commande|pedido|ordine|zamówienie|заказ|sipariş|tracking|sendung)"
    r"\w*(?:\s*(?:no\.?|nr\.?|number|nummer|num[eé]ro|id|code))?|订单号?|訂單號?|单号|單號|注文番号?|주문번호?)\s*[:：#]?\s*$"
)
_CONTEXT_CHARS = 40


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_like(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return False
    groups = [len(group) for group in re.split(r"[ -]", value) if group]
    return len(groups) == 1 or groups in ([4, 6, 5], [4, 6, 4]) or (
        all(size == 4 for size in groups[:-1]) and 1 <= groups[-1] <= 7)


def mask_cards(text: str) -> str:
    """Card numbers → `[CARD …1234]` (always applied before a shopper's text is stored)."""
    def swap(found: re.Match[str]) -> str:
        value = found.group(0)
        return f"[CARD …{re.sub(r'[^0-9]', '', value)[-4:]}]" if _card_like(value) else value
    return CARD.sub(swap, text)


def _after_order_word(text: str, start: int) -> bool:
    return ORDER_CONTEXT.search(text[max(0, start - _CONTEXT_CHARS):start]) is not None


def mask_stored_text(text: str) -> str:
    """Cards, emails, phone numbers and street addresses → plain placeholders; order numbers stay."""
    masked = mask_cards(text)
    masked = EMAIL.sub("[EMAIL]", masked)

    def phone(found: re.Match[str]) -> str:
        value = found.group(0)
        if DATE.fullmatch(value) or _after_order_word(found.string, found.start()):
            return value
        return "[PHONE]"

    masked = PHONE.sub(phone, masked)
    return ADDRESS.sub("[ADDRESS]", masked)


@dataclasses.dataclass(frozen=True)
class AtRestMasker:
    """What a shopper's message looks like when it is written to the store."""

    mask_stored: bool = False

    def text(self, text: str) -> str:
        return mask_stored_text(text) if self.mask_stored else mask_cards(text)

    def message(self, message: Message) -> Message:
        masked = self.text(message.text)
        return message if masked == message.text else dataclasses.replace(message, text=masked)


class PiiLogFilter(logging.Filter):
    """Masks personal data in every record that reaches a handler: the message, its arguments, a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format string: leave it to the formatter to report
            return True
        record.msg = mask_pii(message).text
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text).text
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of `logger` (the root logger: where kefu's lines are written)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(existing, PiiLogFilter) for existing in handler.filters):
            handler.addFilter(PiiLogFilter())
