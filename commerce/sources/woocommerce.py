"""Orders from a WooCommerce shop's REST API (wc/v3), read-only, with a Read key the merchant creates.

Authentication follows WooCommerce's own rules (`WC_REST_Authentication`, and its official
Python client `woocommerce/api.py`):

* an ``https://`` base URL sends the consumer key and secret as HTTP Basic auth. Some servers
  drop the Authorization header ("Consumer key is missing"); ``query_string_auth=True`` then
  sends them as the ``consumer_key``/``consumer_secret`` query parameters instead, which
  WooCommerce accepts over HTTPS only (the secret lands in the server's access log: a fallback);
* an ``http://`` base URL signs every request with OAuth 1.0a "one-legged" (HMAC-SHA256, no
  token, the parameters in the query string), because WooCommerce ignores Basic auth and the
  query-string key over plain HTTP, and a signature keeps the secret off the wire.

A shopper's "1234" or "#1234" is first tried as the order ID (`GET /orders/1234`), kept only if
the order's `number` is the one asked for: with a numbering plugin (Sequential Order Numbers and
the like) ID 1234 is another order. Otherwise `GET /orders?search=1234` and only an order whose
`number` equals it. Tracking comes from the order meta `_wc_shipment_tracking_items`, written by
the WooCommerce Shipment Tracking extension and by Advanced Shipment Tracking; order notes are
not read (those plugins' notes are private, and a note is free text).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from commerce.orders import LineItem, Order, OrderStatus, Shipment, ShopUnavailable

log = logging.getLogger(__name__)

API_PATH = "/wp-json/wc/v3"
TRACKING_META = "_wc_shipment_tracking_items"
SEARCH_PAGE_SIZE = 20  # search is a LIKE over several fields: the exact number is among the first few
MAX_RETRY_AFTER_SECONDS = 2.0  # a shopper is waiting: wait out a short throttle once, never a long one
HEADERS = {"Accept": "application/json", "User-Agent": "kefu (WooCommerce REST API, read-only)"}
ORDER_ID = re.compile(r"[0-9]{1,18}")

# Core statuses, and those Advanced Shipment Tracking adds (partial-shipped, updated-tracking, delivered).
STATUSES: dict[str, OrderStatus] = {
    "pending": OrderStatus.PENDING_PAYMENT,
    "failed": OrderStatus.PENDING_PAYMENT,
    "on-hold": OrderStatus.ON_HOLD,
    "completed": OrderStatus.SHIPPED,  # core Woo never learns of delivery
    "cancelled": OrderStatus.CANCELLED,
    "refunded": OrderStatus.REFUNDED,
    "partial-shipped": OrderStatus.PARTIALLY_SHIPPED,
    "shipped": OrderStatus.SHIPPED,
    "updated-tracking": OrderStatus.SHIPPED,
    "delivered": OrderStatus.DELIVERED,
}
# Records the REST API returns that are no order a shopper placed: a trashed one, an unfinished checkout.
NOT_ORDERS = frozenset({"trash", "checkout-draft", "auto-draft"})


class WooClient:
    """One WooCommerce shop's REST API as kefu reaches it: its address, how kefu signs in there, one session.

    Shared by the order and catalog sources; `error` is the exception each raises when the shop
    cannot be reached (ShopUnavailable or its catalog subclass).
    """

    def __init__(self, *, base_url: str, consumer_key: str, consumer_secret: str, timeout_seconds: float,
                 session: aiohttp.ClientSession | None, query_string_auth: bool, name: str,
                 error: type[ShopUnavailable], log_prefix: str):
        base = base_url.strip().rstrip("/")
        scheme = urlsplit(base).scheme
        if scheme not in ("https", "http") or not urlsplit(base).netloc:
            raise ValueError(f"base_url must be the shop's https:// (or http://) address, got {base_url!r}")
        if not consumer_key or not consumer_secret:
            raise ValueError("consumer_key and consumer_secret are both required (WooCommerce > Settings > "
                             "Advanced > REST API, a key with Read access)")
        if query_string_auth and scheme != "https":
            raise ValueError("query_string_auth works over https only: WooCommerce ignores a key in the query "
                             "string of a plain-http request")
        self.api = base + API_PATH
        self.secret = consumer_secret
        self._key = consumer_key
        self._mode = "oauth1" if scheme == "http" else ("query" if query_string_auth else "basic")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session = session
        self._owns_session = session is None
        self._name = name
        self._error = error
        self._log_prefix = log_prefix  # "orders" or "catalog": which source's log lines these are

    async def send(self, url: str, params: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        query, headers = self._authenticated(url, params)  # signed per attempt: a nonce is good once
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(url, params=query, headers=headers, timeout=self._timeout,
                                         allow_redirects=False) as response:
                return response.status, response.headers, await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}".replace(self.secret, "***")[:200]
            raise self._error(self._name, reason) from None

    def _authenticated(self, url: str, params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """The query and headers of one request, with the credentials where this shop's scheme wants them."""
        if self._mode == "basic":
            token = base64.b64encode(f"{self._key}:{self.secret}".encode()).decode("ascii")
            return params, {**HEADERS, "Authorization": f"Basic {token}"}
        if self._mode == "query":
            return {**params, "consumer_key": self._key, "consumer_secret": self.secret}, HEADERS
        return oauth1_signed("GET", url, params, self._key, self.secret), HEADERS

    def decode(self, status: int, headers: Mapping[str, str], body: bytes, *, missing_is_none: bool) -> Any:
        """The JSON of a 200; None for WooCommerce's own "invalid ID" 404 when `missing_is_none` (an order
        that doesn't exist); every other answer is the shop being unreachable, logged with what to fix."""
        if status == 200:
            try:
                return json.loads(body.decode("utf-8-sig"))  # a theme's stray BOM is common
            except ValueError:
                raise self._error(self._name, "the shop's answer is not JSON (a PHP notice or an HTML page?)"
                                  ) from None
        code = _error_code(body)
        if status == 404 and missing_is_none and code.endswith("_invalid_id"):
            return None
        if status in (401, 403):
            log.warning("%s.woocommerce_refused status=%d code=%s: the shop refused the REST API key; check "
                        "consumer_key/consumer_secret and that the key has Read access", self._log_prefix, status,
                        code or "-")
            raise self._error(self._name, f"the shop refused kefu's API key (HTTP {status} {code})".rstrip())
        if status == 404:
            log.warning("%s.woocommerce_no_api status=404 code=%s: no WooCommerce REST API at %s (check "
                        "base_url, that WooCommerce is active and permalinks are not 'Plain')", self._log_prefix,
                        code or "-", self.api)
            raise self._error(self._name, f"no WooCommerce REST API at the base URL (HTTP 404 {code or 'page'})")
        if 300 <= status < 400:
            location = urlsplit(headers.get("Location", ""))
            log.warning("%s.woocommerce_redirected status=%d to=%s://%s%s: set base_url to the shop's own "
                        "address", self._log_prefix, status, location.scheme, location.netloc, location.path)
            raise self._error(self._name, f"the shop redirects the API (HTTP {status})")
        if status == 429:
            raise self._error(self._name, "throttled (HTTP 429) for longer than kefu waits")
        raise self._error(self._name, f"HTTP {status} {code}".rstrip())

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None


class WooCommerceOrders:
    """An OrderSource over one WooCommerce shop; see the module docstring for how it authenticates."""

    name = "woocommerce"

    def __init__(self, *, base_url: str, consumer_key: str, consumer_secret: str, timeout_seconds: float = 5.0,
                 session: aiohttp.ClientSession | None = None, query_string_auth: bool = False):
        self._client = WooClient(base_url=base_url, consumer_key=consumer_key, consumer_secret=consumer_secret,
                                 timeout_seconds=timeout_seconds, session=session,
                                 query_string_auth=query_string_auth, name=self.name, error=ShopUnavailable,
                                 log_prefix="orders")

    async def find(self, number: str) -> Order | None:
        wanted = number.strip().lstrip("#").strip()
        if not wanted:
            return None
        if ORDER_ID.fullmatch(wanted) and int(wanted) > 0:
            data = await self._get(f"/orders/{int(wanted)}", {})
            if data is not None:
                if not isinstance(data, dict):
                    raise ShopUnavailable(self.name, "the order answer is not a JSON object")
                if _same_number(data, wanted):
                    return self._order(data)
        hits = await self._get("/orders", {"search": wanted, "per_page": str(SEARCH_PAGE_SIZE)})
        if not isinstance(hits, list):
            raise ShopUnavailable(self.name, "the search answer is not a JSON list")
        match = next((hit for hit in hits if isinstance(hit, dict) and _same_number(hit, wanted)), None)
        return self._order(match) if match is not None else None

    async def close(self) -> None:
        await self._client.close()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        """GET an API path and decode it; None when WooCommerce says there is no such order."""
        url = self._client.api + path
        query = {**params, "include_meta": TRACKING_META}  # WooCommerce 8.9+; older ones send all meta
        status, headers, body = await self._client.send(url, query)
        if status == 429:
            wait = _retry_after(headers.get("Retry-After"))
            if wait is not None and wait <= MAX_RETRY_AFTER_SECONDS:
                await asyncio.sleep(wait)
                status, headers, body = await self._client.send(url, query)
        return self._client.decode(status, headers, body, missing_is_none=True)

    def _order(self, data: Mapping[str, Any]) -> Order | None:
        raw = _text(data.get("status"))
        if raw and raw not in STATUSES and raw not in NOT_ORDERS and raw != "processing":
            log.info("orders.woocommerce_unknown_status status=%s: read as processing/shipped by payment "
                     "and tracking", raw)
        return order_from_woo(data)


# -- mapping (pure) ------------------------------------------------------------------------------


def order_from_woo(data: Mapping[str, Any]) -> Order | None:
    """kefu's Order from a wc/v3 order object; None for a record that is no placed order (trash, draft)."""
    raw = _text(data.get("status"))
    if raw in NOT_ORDERS:
        return None
    billing = _mapping(data.get("billing"))
    shipping = _mapping(data.get("shipping"))
    shipments = _shipments(data.get("meta_data"))
    customer = _text(data.get("customer_id"))
    return Order(
        number="#" + (_text(data.get("number")) or _text(data.get("id"))),
        status=_status(raw, shipped=bool(shipments), paid=bool(data.get("date_paid_gmt"))),
        created_at=_gmt(data.get("date_created_gmt")),
        updated_at=_gmt(data.get("date_modified_gmt")),
        total=_text(data.get("total")),
        currency=_text(data.get("currency")),
        items=tuple(_item(item) for item in _list(data.get("line_items")) if isinstance(item, Mapping)),
        shipments=shipments,
        source_status=raw,
        email=_text(billing.get("email")),
        phone=_text(billing.get("phone")),
        postcode=_text(shipping.get("postcode")) or _text(billing.get("postcode")),
        customer_id="" if customer in ("", "0") else customer,
    )


def _status(raw: str, *, shipped: bool, paid: bool) -> OrderStatus:
    """Core and tracking-plugin statuses by name; another plugin's status by what is known of the order."""
    if raw == "processing":
        return OrderStatus.SHIPPED if shipped else OrderStatus.PROCESSING
    known = STATUSES.get(raw)
    if known is not None:
        return known
    if shipped:
        return OrderStatus.SHIPPED
    return OrderStatus.PROCESSING if paid else OrderStatus.PENDING_PAYMENT


def _item(item: Mapping[str, Any]) -> LineItem:
    quantity = item.get("quantity")
    return LineItem(
        title=_text(item.get("parent_name")) or _text(item.get("name")),
        quantity=quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 1,
        variant=_variant(item),
        sku=_text(item.get("sku")),
    )


def _variant(item: Mapping[str, Any]) -> str:
    """A variation's attributes ("Blue / L"): from its name when WooCommerce put them there, else its meta.

    Only for variations: other items' meta is plugin data, such as an engraving the shopper typed.
    """
    if not item.get("variation_id"):
        return ""
    name, parent = _text(item.get("name")), _text(item.get("parent_name"))
    if parent and name.startswith(f"{parent} - "):
        return " / ".join(part.strip() for part in name[len(parent) + 3:].split(", ") if part.strip())
    values = (_text(meta.get("display_value")) for meta in _list(item.get("meta_data"))
              if isinstance(meta, Mapping) and not _text(meta.get("key")).startswith("_"))
    return " / ".join(value for value in values if value)


def _shipments(meta_data: Any) -> tuple[Shipment, ...]:
    """Shipment Tracking's items: {tracking_provider | custom_tracking_provider, tracking_number,
    custom_tracking_link, date_shipped (a Unix timestamp)}. A predefined provider's link is built by
    the plugin from its provider table and is not in the meta."""
    value = next((meta.get("value") for meta in _list(meta_data)
                  if isinstance(meta, Mapping) and meta.get("key") == TRACKING_META), None)
    entries: Iterable[Any] = value.values() if isinstance(value, Mapping) else _list(value)
    return tuple(_shipment(entry) for entry in entries
                 if isinstance(entry, Mapping) and _text(entry.get("tracking_number")))


def _shipment(entry: Mapping[str, Any]) -> Shipment:
    link = _text(entry.get("custom_tracking_link"))
    return Shipment(
        carrier=_text(entry.get("custom_tracking_provider")) or _text(entry.get("tracking_provider")),
        tracking_number=_text(entry.get("tracking_number")),
        tracking_url=link if link.startswith(("https://", "http://")) else "",
        shipped_at=_timestamp(entry.get("date_shipped")),
    )


def _same_number(data: Mapping[str, Any], wanted: str) -> bool:
    number = _text(data.get("number")) or _text(data.get("id"))
    return number.lstrip("#").casefold() == wanted.casefold()


def _gmt(value: Any) -> datetime | None:
    """WooCommerce's *_gmt fields are UTC without a zone ("2026-11-28T10:15:00")."""
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _timestamp(value: Any) -> datetime | None:
    text = _text(value)
    if not text.isdigit():
        return _gmt(text)
    try:
        return datetime.fromtimestamp(int(text), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from delay-seconds or an HTTP date; None when absent or unreadable."""
    text = (value or "").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _error_code(body: bytes) -> str:
    """The `code` of a WordPress REST error body ({"code", "message", "data": {"status"}}), if it is one."""
    try:
        decoded = json.loads(body.decode("utf-8-sig"))
    except ValueError:
        return ""
    return _text(decoded.get("code")) if isinstance(decoded, dict) else ""


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# -- OAuth 1.0a ----------------------------------------------------------------------------------


def _encode(value: str) -> str:
    return quote(value, safe="~")  # RFC 3986 unreserved characters only, as rawurlencode()


def oauth1_signed(method: str, url: str, params: Mapping[str, str], key: str, secret: str, *,
                  timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """`params` plus the OAuth 1.0a one-legged parameters WooCommerce checks on plain-HTTP requests.

    RFC 5849 without a token: the signing key is the consumer secret and "&"; the base string is
    METHOD&url-without-query&sorted-encoded-parameters; the timestamp must be within 15 minutes
    of the shop's clock and the nonce unused.
    """
    signed = {
        **params,
        "oauth_consumer_key": key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
    }
    pairs = sorted((_encode(k), _encode(v)) for k, v in signed.items())
    base = "&".join((method.upper(), _encode(url), _encode("&".join(f"{k}={v}" for k, v in pairs))))
    digest = hmac.new(f"{secret}&".encode(), base.encode(), hashlib.sha256).digest()
    return {**signed, "oauth_signature": base64.b64encode(digest).decode("ascii")}
