"""kefu's own order record format: what a merchant's file or endpoint gives for shops on other systems.

One order is a JSON object (or a CSV row, see `file.py`):

    {"number": "LL-123456", "status": "shipped", "created_at": "2026-11-28T10:15:00Z",
     "email": "ana@example.com", "phone": "+49 151 2345678", "postcode": "10115",
     "total": "89.90", "currency": "EUR",
     "items": [{"title": "Rain jacket", "quantity": 1, "variant": "M / Navy", "sku": "RJ-M-NV"}],
     "shipments": [{"carrier": "DHL", "tracking_number": "00340434161094042557",
                    "tracking_url": "https://www.dhl.de/…", "shipped_at": "2026-11-29T08:00:00Z",
                    "delivered_at": null, "last_event_at": "2026-11-30T06:12:00Z"}]}

`number` and `status` (one of `OrderStatus`'s values) are required; dates are ISO 8601 (a
date without a zone is UTC). A bad record is an error naming the field, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.errors import KefuError
from commerce.orders import LineItem, Order, OrderStatus, Shipment

STATUSES = tuple(status.value for status in OrderStatus)


class RecordError(ValueError):
    """A record the merchant wrote is malformed: `field` names what to fix."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class MerchantFileError(KefuError):
    """A merchant's file (orders, catalog) cannot be used as written: names the file, the line or record, the field."""

    def __init__(self, path: Path, where: str, problem: str):
        super().__init__(f"{path}{where}: {problem}")
        self.path = path


def json_records(path: Path, text: str, *, plural: str, singular: str, key: str,
                 error: type[MerchantFileError]) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a JSON list (or `{plural: [...]}`), each with where it is ("order 2 (LL-100002)")."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(path, f":{exc.lineno}", f"is not valid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = data.get(plural)
    if not isinstance(data, list):
        raise error(path, "", f'must hold a list of {plural}, or {{"{plural}": [...]}}')
    records = []
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise error(path, f" {singular} {index + 1}", "must be an object")
        records.append((f" {singular} {index + 1} ({record.get(key, '?')})", record))
    return records


def order_from_record(record: Mapping[str, Any]) -> Order:
    number = text_field(record, "number")
    if not number:
        raise RecordError("number", "is required")
    status = text_field(record, "status").lower()
    if status not in STATUSES:
        raise RecordError("status", f"'{status}' is not one of: {', '.join(STATUSES)}")
    items = record.get("items") or []
    shipments = record.get("shipments") or []
    if not isinstance(items, list) or not isinstance(shipments, list):
        raise RecordError("items" if not isinstance(items, list) else "shipments", "must be a list")
    return Order(
        number=number,
        status=OrderStatus(status),
        created_at=_when(record, "created_at"),
        updated_at=_when(record, "updated_at"),
        cancelled_at=_when(record, "cancelled_at"),
        total=text_field(record, "total"),
        currency=text_field(record, "currency"),
        items=tuple(_item(item, index) for index, item in enumerate(items)),
        shipments=tuple(_shipment(shipment, index) for index, shipment in enumerate(shipments)),
        source_status=text_field(record, "source_status") or status,
        email=text_field(record, "email"),
        phone=text_field(record, "phone"),
        postcode=text_field(record, "postcode"),
        customer_id=text_field(record, "customer_id"),
    )


def _item(value: Any, index: int) -> LineItem:
    if not isinstance(value, Mapping):
        raise RecordError(f"items[{index}]", "must be an object with title and quantity")
    quantity = value.get("quantity", 1)
    if isinstance(quantity, str) and quantity.strip().isdigit():
        quantity = int(quantity)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise RecordError(f"items[{index}].quantity", f"must be a whole number of at least 1, got {quantity!r}")
    title = text_field(value, "title")
    if not title:
        raise RecordError(f"items[{index}].title", "is required")
    return LineItem(title=title, quantity=quantity, variant=text_field(value, "variant"), sku=text_field(value, "sku"))


def _shipment(value: Any, index: int) -> Shipment:
    if not isinstance(value, Mapping):
        raise RecordError(f"shipments[{index}]", "must be an object")
    where = f"shipments[{index}]"
    return Shipment(
        carrier=text_field(value, "carrier"),
        tracking_number=text_field(value, "tracking_number"),
        tracking_url=_url(value, "tracking_url", where),
        shipped_at=_when(value, "shipped_at", where),
        delivered_at=_when(value, "delivered_at", where),
        last_event_at=_when(value, "last_event_at", where),
        status=text_field(value, "status"),
    )


def text_field(record: Mapping[str, Any], key: str) -> str:
    """A field as text (numbers too: "total": 59.9); RecordError naming it when it is anything else."""
    value = record.get(key)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RecordError(key, f"must be text, got {value!r}")
    return value.strip()


def _url(record: Mapping[str, Any], key: str, where: str) -> str:
    value = text_field(record, key)
    if value and not value.startswith(("https://", "http://")):
        raise RecordError(f"{where}.{key}", f"'{value}' must start with https:// or http://")
    return value


def _when(record: Mapping[str, Any], key: str, where: str = "") -> datetime | None:
    value = text_field(record, key)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"{where}.{key}" if where else key,
                          f"'{value}' is not an ISO 8601 date such as 2026-11-28T10:15:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
