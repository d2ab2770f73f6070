"""An order as kefu sees it: read from the shop's system on demand, never written back.

Every source (Shopify, WooCommerce, a merchant's file or endpoint) maps its own record to
these dataclasses, so recognition, the identity check, the rules and the reply templates
know one shape. The contact fields (`email`, `phone`, `postcode`, `customer_id`) are only
for the identity check: they are never put in a reply, a log line or the lookup record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol


class OrderStatus(str, Enum):
    """Where the order stands for the shopper, from the source's financial and fulfillment states."""

    PENDING_PAYMENT = "pending_payment"  # placed, not paid yet (bank transfer, failed card)
    PROCESSING = "processing"  # paid, being packed: nothing has shipped
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"  # every item handed to a carrier
    DELIVERED = "delivered"  # the carrier reported delivery
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    ON_HOLD = "on_hold"


@dataclass(frozen=True)
class LineItem:
    title: str
    quantity: int
    variant: str = ""  # "M / Black"
    sku: str = ""


@dataclass(frozen=True)
class Shipment:
    """One parcel: who carries it and where to follow it."""

    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    last_event_at: datetime | None = None  # the carrier's latest scan, when the source knows it
    status: str = ""  # the source's own word for the parcel ("in_transit", "delivered"), shown to agents


@dataclass(frozen=True)
class Order:
    number: str  # as the shop shows it to the shopper: "#1001", "LL-123456"
    status: OrderStatus
    created_at: datetime | None = None
    updated_at: datetime | None = None
    cancelled_at: datetime | None = None
    total: str = ""  # "59.90", in `currency`
    currency: str = ""
    items: tuple[LineItem, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    source_status: str = ""  # the source's own states ("PAID / UNFULFILLED"), for agents
    # The identity check's fields, never shown or logged:
    email: str = field(default="", repr=False)
    phone: str = field(default="", repr=False)
    postcode: str = field(default="", repr=False)
    customer_id: str = field(default="", repr=False)

    def summary(self) -> dict[str, Any]:
        """What agents and the stored trace see: the order without the shopper's contact data."""
        return {
            "number": self.number,
            "status": self.status.value,
            "source_status": self.source_status,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "total": self.total,
            "currency": self.currency,
            "items": [{"title": item.title, "quantity": item.quantity, "variant": item.variant} for item in self.items],
            "shipments": [
                {"carrier": s.carrier, "tracking_number": s.tracking_number, "tracking_url": s.tracking_url,
                 "status": s.status,
                 "shipped_at": s.shipped_at.isoformat() if s.shipped_at else None,
                 "delivered_at": s.delivered_at.isoformat() if s.delivered_at else None,
                 "last_event_at": s.last_event_at.isoformat() if s.last_event_at else None}
                for s in self.shipments
            ],
        }


def normalise_number(number: str) -> str:
    """"#1001", " 1001 " and "ll-123456" name the same order as "1001" and "LL-123456": the one key every
    lookup, cache and file index uses."""
    return number.strip().lstrip("#").upper()


class ShopUnavailable(Exception):
    """The shop's system could not answer (down, timed out, refused our credentials, throttled too long).

    kefu then says so and offers a person; it never guesses an order's state.
    """

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class OrderSource(Protocol):
    """Finds one order by the number the shopper gave; None when the shop has no such order."""

    name: str

    async def find(self, number: str) -> Order | None: ...

    async def close(self) -> None: ...
