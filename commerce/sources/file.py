"""Orders from a merchant's file, for shops whose system kefu has no connector for.

JSON (a list of records, or `{"orders": [...]}`; the record format is in `records.py`) or CSV
with one row per order:

    number,status,created_at,email,phone,postcode,total,currency,items,carrier,tracking_number,tracking_url,shipped_at,delivered_at,last_event_at
    LL-123456,shipped,2026-11-28T10:15:00Z,ana@example.com,+49 151 2345678,10115,89.90,EUR,"1 x Rain jacket (M / Navy); 2 x Wool socks",DHL,00340434161094042557,https://…,2026-11-29,,

`items` lists "<quantity> x <title> (<variant>)" separated by ";". The file is re-read when it
changes (checked at most every `check_seconds`, off the event loop), like the FAQ files: a broken
edit keeps the last good version in use and logs where the problem is.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.concurrency import run_blocking
from commerce.orders import Order, normalise_number
from commerce.sources.records import MerchantFileError, RecordError, json_records, order_from_record

log = logging.getLogger(__name__)

CSV_COLUMNS = ("number", "status", "created_at", "updated_at", "cancelled_at", "email", "phone", "postcode",
               "customer_id", "total", "currency", "items", "carrier", "tracking_number", "tracking_url", "shipped_at",
               "delivered_at", "last_event_at", "source_status")
CSV_ITEM = re.compile(r"^\s*(?:(\d+)\s*[x×]\s*)?(.+?)\s*(?:\(([^()]*)\))?\s*$")
SHIPMENT_COLUMNS = ("carrier", "tracking_number", "tracking_url", "shipped_at", "delivered_at", "last_event_at")


class OrderFileError(MerchantFileError):
    """The orders file cannot be used as written: names the file, the line or record, and the field."""


@dataclass(frozen=True)
class _Loaded:
    mtime_ns: int
    size: int
    orders: dict[str, Order]  # by normalised number


def read_orders(path: Path) -> dict[str, Order]:
    """Every order in the file by normalised number; OrderFileError naming the line or record otherwise."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OrderFileError(path, "", f"cannot be read: {exc}") from None
    records = _csv_records(path, text) if path.suffix.lower() == ".csv" else json_records(
        path, text, plural="orders", singular="order", key="number", error=OrderFileError)
    orders: dict[str, Order] = {}
    for where, record in records:
        try:
            order = order_from_record(record)
        except RecordError as exc:
            raise OrderFileError(path, where, f"field '{exc.field}': {exc.problem}") from None
        key = normalise_number(order.number)
        if key in orders:
            raise OrderFileError(path, where, f"order {order.number} is listed twice")
        orders[key] = order
    return orders


def _csv_records(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    unknown = [name for name in reader.fieldnames or () if name not in CSV_COLUMNS]
    if unknown or "number" not in (reader.fieldnames or ()):
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "needs a header row with 'number'"
        raise OrderFileError(path, ":1", f"{problem}; columns: {', '.join(CSV_COLUMNS)}")
    records = []
    for row in reader:
        line = f":{reader.line_num}"
        record: dict[str, Any] = {key: value for key, value in row.items()
                                  if key not in SHIPMENT_COLUMNS and key != "items"}
        try:
            record["items"] = [_csv_item(part) for part in (row.get("items") or "").split(";") if part.strip()]
        except ValueError as exc:
            raise OrderFileError(path, line, f"field 'items': {exc}") from None
        shipment = {key: row.get(key) or None for key in SHIPMENT_COLUMNS}
        record["shipments"] = [shipment] if any(shipment.values()) else []
        records.append((line, record))
    return records


def _csv_item(text: str) -> dict[str, Any]:
    match = CSV_ITEM.match(text)
    if not match:
        raise ValueError(f"'{text.strip()}' is not like '2 x Wool socks (M)'")
    quantity, title, variant = match.groups()
    return {"title": title, "quantity": int(quantity or 1), "variant": variant or ""}


class FileOrders:
    """The orders file as an order source; re-read when its size or modification time changes."""

    name = "file"

    def __init__(self, path: Path, *, check_seconds: float = 2.0):
        self._path = path
        self._check_seconds = check_seconds
        self._loaded: _Loaded | None = None
        self._checked_at = 0.0

    def load(self) -> None:
        """Read the file now (at start-up: a broken file stops kefu with the place to fix)."""
        try:
            stat = self._path.stat()
        except OSError as exc:  # a missing file: the merchant's to fix, named like any other problem in it
            raise OrderFileError(self._path, "", f"cannot be read: {exc.strerror}") from None
        self._loaded = _Loaded(stat.st_mtime_ns, stat.st_size, read_orders(self._path))
        self._checked_at = time.monotonic()

    async def find(self, number: str) -> Order | None:
        if self._loaded is None:
            await run_blocking(self.load)
        elif time.monotonic() - self._checked_at >= self._check_seconds:
            await run_blocking(self._reload_if_changed)
        assert self._loaded is not None
        return self._loaded.orders.get(normalise_number(number))

    def _reload_if_changed(self) -> None:
        self._checked_at = time.monotonic()
        try:
            stat = self._path.stat()
        except OSError as exc:
            log.error("orders.file_unreadable path=%s error=%s; keeping the last good version", self._path, exc)
            return
        loaded = self._loaded
        if loaded is not None and (stat.st_mtime_ns, stat.st_size) == (loaded.mtime_ns, loaded.size):
            return
        try:
            orders = read_orders(self._path)
        except OrderFileError as exc:
            log.error("orders.file_invalid %s; keeping the last good version", exc)
            return
        self._loaded = _Loaded(stat.st_mtime_ns, stat.st_size, orders)
        log.info("orders.file_reloaded path=%s orders=%d", self._path, len(orders))

    async def close(self) -> None:
        return None
