"""The merchant's rules that turn an order's facts into an action: which orders a person must see.

kefu only reads orders, so what needs doing (a parcel the carrier has not scanned for days, a
parcel marked delivered that the shopper says never came, a cancellation or a new address) goes
to a person with the verified order attached, instead of a reply that can only say "sorry".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.config import OrdersConfig
from commerce.orders import Order, OrderStatus
from commerce.recognize import OrderIntent

IN_TRANSIT = (OrderStatus.SHIPPED, OrderStatus.PARTIALLY_SHIPPED)
CHANGES = (OrderIntent.CANCEL, OrderIntent.CHANGE_ADDRESS)


@dataclass(frozen=True)
class OrderAction:
    text_key: str  # what the shopper is told (a text in bot/locales)
    detail: str  # what the agents read
    values: dict[str, str]


def order_action(order: Order, intent: OrderIntent, config: OrdersConfig, now: datetime) -> OrderAction | None:
    """The handoff an order calls for, or None when the order's status answers the shopper."""
    if intent in CHANGES and config.hand_over_changes:
        return OrderAction("order_change_request",
                           f"the shopper asks to {intent.value.replace('_', ' ')} order {order.number} "
                           f"({order.status.value})", {})
    if intent == OrderIntent.NOT_ARRIVED and order.status == OrderStatus.DELIVERED and config.hand_over_not_received:
        delivered = [s.delivered_at for s in order.shipments if s.delivered_at]
        day = (max(delivered) if delivered else order.updated_at)
        return OrderAction("order_not_received",
                           f"order {order.number} is marked delivered but the shopper has not received it",
                           {"delivered": day.date().isoformat() if day else "—"})
    if config.stuck_after_days and order.status in IN_TRANSIT:
        scans = [s.last_event_at or s.shipped_at for s in order.shipments if not s.delivered_at]
        known = [scan for scan in scans if scan is not None]
        if known and (now - max(known)).days >= config.stuck_after_days:
            days = (now - max(known)).days
            return OrderAction("order_stuck", f"order {order.number}: no carrier scan for {days} days",
                               {"days": str(days)})
    return None
