"""An order told to the shopper: every fact from the order record, in localized templates.

Nothing here is generated: status, dates, carrier, tracking number and link are the record's
own, so a reply about an order cannot say more than the shop's system does.
"""

from __future__ import annotations

from datetime import datetime

from bot.texts import Texts
from commerce.orders import Order, OrderStatus


def order_reply(order: Order, texts: Texts, language: str) -> tuple[str, str]:
    """(text, language it is written in): the status line, then one line per tracked parcel, then the items."""
    shipped = [s.shipped_at for s in order.shipments if s.shipped_at]
    delivered = [s.delivered_at for s in order.shipments if s.delivered_at]
    status, written_in = texts.get(
        f"order_status_{order.status.value}", language, order=order.number,
        placed=_day(order.created_at), shipped=_day(max(shipped) if shipped else order.updated_at),
        delivered=_day(max(delivered) if delivered else order.updated_at))
    lines = [status]
    if order.status not in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        for shipment in order.shipments:
            if not shipment.tracking_number:
                continue
            line, _ = texts.get("order_tracking", written_in, carrier=shipment.carrier or "—",
                                tracking_number=shipment.tracking_number)
            lines.append(f"{line}\n{shipment.tracking_url}" if shipment.tracking_url else line)
    if order.items:
        items = ", ".join(f"{item.quantity} × {item.title}" + (f" ({item.variant})" if item.variant else "")
                          for item in order.items)
        lines.append(texts.get("order_items", written_in, items=items)[0])
    return "\n".join(lines), written_in


def _day(when: datetime | None) -> str:
    """Dates as YYYY-MM-DD: read the same way in every language the bot answers in."""
    return when.date().isoformat() if when else "—"
