"""An order told to the shopper: every fact from the order record, in localized templates.

Nothing here is generated: status, dates, carrier, tracking number and link are the record's
own, so a reply about an order cannot say more than the shop's system does. A reply the model
writes (`[orders] replies = "model"`) is checked against these lines (bot/responder/record.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.texts import Texts
from commerce.orders import Order, OrderStatus


@dataclass(frozen=True)
class Parcel:
    line: str  # "DHL tracking number: 0034…"
    tracking_number: str
    url: str | None


@dataclass(frozen=True)
class OrderLines:
    """The order told line by line, in the language `language`: what a written reply is checked against."""

    language: str
    status: str
    parcels: tuple[Parcel, ...]
    items: str | None
    contrary: tuple[str, ...] = ()  # the other statuses' lines for this order: what it does not say

    @property
    def text(self) -> str:
        """The template reply: the status line, then one line per tracked parcel (and its link), then the items."""
        return "\n".join([self.status, *self.tracking(), *([self.items] if self.items else [])])

    def tracking(self, told: str = "") -> list[str]:
        """The parcels' lines and links, leaving out what `told` (a written reply) already says."""
        lines: list[str] = []
        for parcel in self.parcels:
            if parcel.tracking_number not in told:
                lines.append(parcel.line)
            if parcel.url and parcel.url not in told:
                lines.append(parcel.url)
        return lines


def order_lines(order: Order, texts: Texts, language: str) -> OrderLines:
    shipped = [s.shipped_at for s in order.shipments if s.shipped_at]
    delivered = [s.delivered_at for s in order.shipments if s.delivered_at]
    values = {"order": order.number, "placed": _day(order.created_at),
              "shipped": _day(max(shipped) if shipped else order.updated_at),
              "delivered": _day(max(delivered) if delivered else order.updated_at)}
    status, written_in = texts.get(f"order_status_{order.status.value}", language, **values)
    # What this order does not say: the other statuses with its dates, and an arrival date (no shop system
    # knows one; a reply promising it would be the model's guess).
    contrary = tuple(texts.get(key, written_in, **values)[0] for key in (
        *(f"order_status_{other.value}" for other in OrderStatus if other is not order.status),
        *(["order_claim_arrival"] if order.status is not OrderStatus.DELIVERED else [])))
    parcels: list[Parcel] = []
    if order.status not in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        for shipment in order.shipments:
            if not shipment.tracking_number:
                continue
            line, _ = texts.get("order_tracking", written_in, carrier=shipment.carrier or "—",
                                tracking_number=shipment.tracking_number)
            parcels.append(Parcel(line, shipment.tracking_number, shipment.tracking_url))
    items = None
    if order.items:
        listed = ", ".join(f"{item.quantity} × {item.title}" + (f" ({item.variant})" if item.variant else "")
                           for item in order.items)
        items = texts.get("order_items", written_in, items=listed)[0]
    return OrderLines(written_in, status, tuple(parcels), items, contrary)


def _day(when: datetime | None) -> str:
    """Dates as YYYY-MM-DD: read the same way in every language the bot answers in."""
    return when.date().isoformat() if when else "—"
