"""Orders from a Shopify shop, read through the Admin GraphQL API (read_orders scope, never written).

One lookup is one POST to ``{shop}/admin/api/{version}/graphql.json`` asking
``orders(first: 1, query: "name:#1001")``. Shopify's search is loose (a name search can answer a
neighbouring order), so only a node whose ``name`` is the number asked for is accepted: telling a
shopper about somebody else's order is the one mistake this module must never make.

Shopify limits GraphQL by query cost: a throttled call answers 200 with an ``errors[]`` entry whose
``extensions.code`` is ``THROTTLED`` and the bucket's state in ``extensions.cost.throttleStatus``; the
edge may also answer HTTP 429 with ``Retry-After``. Both are waited out while a small budget lasts,
because a shopper is waiting on the other side; every other failure is a ShopUnavailable at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import aiohttp

from commerce.sources.shopify_auth import AccessRefused, ShopifyAccess

from commerce.orders import LineItem, Order, OrderStatus, Shipment, ShopUnavailable, normalise_number

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

ORDER_QUERY = """
query KefuOrderByName($query: String!) {
  orders(first: 1, query: $query) {
    nodes {
      name
      createdAt
      updatedAt
      cancelledAt
      displayFinancialStatus
      displayFulfillmentStatus
      email
      phone
      shippingAddress { zip phone }
      customer { id }
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) { nodes { title quantity variantTitle sku } }
      fulfillments(first: 10) {
        status
        displayStatus
        createdAt
        inTransitAt
        deliveredAt
        updatedAt
        trackingInfo(first: 5) { company number url }
      }
    }
  }
}
""".strip()

# What a shopper may type as an order number: Shopify names are "#1001" by default, or the merchant's
# own prefix/suffix ("LL-1001"). Anything else (spaces, quotes, colons) could change the search query.
NAME_RE = re.compile(r"^#?[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
MAX_ATTEMPTS = 5  # with the wait budget, bounds a shop that keeps throttling with tiny waits
DEFAULT_RETRY_AFTER = 1.0  # Shopify's REST docs: a 429 asks for a retry after a second or two
UNPAID = frozenset({"PENDING", "PARTIALLY_PAID", "EXPIRED", "VOIDED"})
INACTIVE_FULFILLMENTS = frozenset({"CANCELLED", "ERROR", "FAILURE"})
ARRIVED = frozenset({"DELIVERED", "PICKED_UP"})
FULFILLMENT_STATUSES = {
    "UNFULFILLED": OrderStatus.PROCESSING,
    "OPEN": OrderStatus.PROCESSING,  # replaced by UNFULFILLED
    "RESTOCKED": OrderStatus.PROCESSING,  # replaced by UNFULFILLED
    "IN_PROGRESS": OrderStatus.PROCESSING,
    "PENDING_FULFILLMENT": OrderStatus.PROCESSING,  # replaced by IN_PROGRESS
    "SCHEDULED": OrderStatus.PROCESSING,
    "FULFILLMENT_NOT_REQUIRED": OrderStatus.PROCESSING,
    "PARTIALLY_FULFILLED": OrderStatus.PARTIALLY_SHIPPED,
    "FULFILLED": OrderStatus.SHIPPED,
    "ON_HOLD": OrderStatus.ON_HOLD,
    "REQUEST_DECLINED": OrderStatus.ON_HOLD,  # the fulfillment service refused: the merchant must act
}
ZERO_DECIMAL_CURRENCIES = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                                     "UGX", "VND", "VUV", "XAF", "XOF", "XPF"})


def order_name(number: str) -> str | None:
    """The shop's form of what the shopper wrote ("1001" → "#1001"); None when it cannot be a name."""
    text = number.strip()
    if not NAME_RE.match(text):
        return None
    return f"#{text}" if text.isdigit() else text


def same_name(a: str, b: str) -> bool:
    """Whether two order names are the same order ("#1001" and "1001", "ll-7" and "LL-7")."""
    return normalise_number(a) == normalise_number(b)


@dataclass(frozen=True)
class _Answer:
    """One HTTP exchange, classified: the GraphQL body, or how long Shopify asked us to wait."""

    body: JSONDict | None = None
    wait: float | None = None
    why: str = ""


class ShopifyOrders:
    """An OrderSource for one Shopify shop; one aiohttp session, made on first use unless given."""

    name = "shopify"

    def __init__(self, *, shop_url: str, api_version: str, token: str = "", access: ShopifyAccess | None = None,
                 timeout_seconds: float = 5.0, max_throttle_wait_seconds: float = 4.0,
                 session: aiohttp.ClientSession | None = None):
        self._endpoint = f"{shop_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._access = access or ShopifyAccess(shop_url=shop_url, token=token)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_wait = max_throttle_wait_seconds
        self._session = session
        self._owns_session = session is None

    async def find(self, number: str) -> Order | None:
        wanted = order_name(number)
        if wanted is None:
            log.debug("shopify.not_a_name (no lookup)")
            return None
        log.debug("shopify.lookup order=%s", wanted)
        body = await self._query({"query": ORDER_QUERY, "variables": {"query": f"name:{wanted}"}}, wanted)
        node = self._exact_node(body, wanted)
        if node is None:
            return None
        try:
            order = order_from_node(node)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._unavailable(wanted, f"unexpected order shape: {type(exc).__name__} {exc}") from exc
        log.info("shopify.found order=%s status=%s", order.number, order.status.value)
        return order

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None
        await self._access.close()

    # -- the HTTP exchange -----------------------------------------------------------------------------

    async def _query(self, payload: JSONDict, wanted: str) -> JSONDict:
        """POST until an answer comes, waiting out throttling while the budget lasts."""
        waited = 0.0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            answer = await self._exchange(payload, wanted)
            if answer.body is not None:
                return answer.body
            wait = answer.wait or 0.0
            if waited + wait > self._max_wait or attempt == MAX_ATTEMPTS:
                raise self._unavailable(wanted, f"{answer.why}; waited {waited:.2f}s of "
                                                f"{self._max_wait:.2f}s, next wait {wait:.2f}s")
            log.info("shopify.throttled order=%s attempt=%d wait=%.2fs (%s)", wanted, attempt, wait, answer.why)
            await asyncio.sleep(wait)
            waited += wait
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    async def _exchange(self, payload: JSONDict, wanted: str) -> _Answer:
        try:
            token = await self._access.token()
        except AccessRefused as exc:
            raise self._unavailable(wanted, str(exc)) from exc
        headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
        try:
            async with self._client().post(self._endpoint, json=payload, headers=headers,
                                           timeout=self._timeout) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise self._unavailable(wanted, f"no answer within {self._timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            raise self._unavailable(wanted, f"unreachable: {type(exc).__name__} {exc}") from exc
        if status == 429:
            return _Answer(wait=_seconds(retry_after, DEFAULT_RETRY_AFTER), why="HTTP 429")
        if status == 401 and self._access.renewable:  # a 24-hour token ran out early: fetch another, once more
            self._access.refused(token)
            return _Answer(wait=0.0, why="access token expired (HTTP 401)")
        if status in (401, 403):
            log.warning("shopify.token_refused status=%d endpoint=%s (the merchant must fix the Admin API "
                        "access token or its read_orders scope)", status, self._endpoint)
            raise self._unavailable(wanted, f"access token refused (HTTP {status})")
        if status != 200:
            raise self._unavailable(wanted, f"HTTP {status}")
        body = _json(raw)
        if body is None:
            raise self._unavailable(wanted, "the answer is not a JSON object")
        return self._classify(body, wanted)

    def _classify(self, body: JSONDict, wanted: str) -> _Answer:
        errors = body.get("errors")
        if not errors:
            return _Answer(body=body)
        if not isinstance(errors, list):
            raise self._unavailable(wanted, f"GraphQL error: {str(errors)[:200]}")
        codes = {str((e.get("extensions") or {}).get("code", "")) for e in errors if isinstance(e, dict)}
        if "THROTTLED" in codes:
            return _Answer(wait=_throttle_wait(body), why="THROTTLED")
        messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
        if "ACCESS_DENIED" in codes:
            log.warning("shopify.access_denied endpoint=%s (grant the app read_orders and protected customer "
                        "data access): %s", self._endpoint, messages[:200])
        raise self._unavailable(wanted, f"GraphQL error: {messages[:200]}")

    def _exact_node(self, body: JSONDict, wanted: str) -> JSONDict | None:
        """The order named `wanted`, or None; a search hit with another name is not this order."""
        try:
            nodes = body["data"]["orders"]["nodes"]
        except (KeyError, TypeError) as exc:
            raise self._unavailable(wanted, "the answer has no data.orders.nodes") from exc
        if not isinstance(nodes, list):
            raise self._unavailable(wanted, "data.orders.nodes is not a list")
        for node in nodes:
            if isinstance(node, dict) and same_name(str(node.get("name", "")), wanted):
                return node
        if nodes:
            log.info("shopify.not_found order=%s (the search answered a different order)", wanted)
        else:
            log.info("shopify.not_found order=%s", wanted)
        return None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    def _unavailable(self, wanted: str, reason: str) -> ShopUnavailable:
        log.info("shopify.unavailable order=%s reason=%s", wanted, reason)
        return ShopUnavailable(self.name, reason)


def _json(raw: bytes) -> JSONDict | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _seconds(value: Any, default: float) -> float:
    """A non-negative number of seconds from a header or JSON value, else `default`."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds >= 0 else default


def _throttle_wait(body: JSONDict) -> float:
    """How long until the bucket holds the query's cost: (requested - available) / restoreRate."""
    cost = (body.get("extensions") or {}).get("cost") or {}
    bucket = cost.get("throttleStatus") or {}
    requested = _seconds(cost.get("requestedQueryCost"), 0.0)
    available = _seconds(bucket.get("currentlyAvailable"), 0.0)
    rate = _seconds(bucket.get("restoreRate"), 0.0)
    if rate <= 0:
        return DEFAULT_RETRY_AFTER
    return max(requested - available, 0.0) / rate


# -- mapping Shopify's order to kefu's ------------------------------------------------------------------


def order_from_node(node: JSONDict) -> Order:
    """Map one `orders.nodes[]` entry of ORDER_QUERY to an Order."""
    fulfillments = [f for f in node.get("fulfillments") or [] if f.get("status") not in INACTIVE_FULFILLMENTS]
    address = node.get("shippingAddress") or {}
    money = ((node.get("totalPriceSet") or {}).get("shopMoney")) or {}
    currency = str(money.get("currencyCode") or "")
    return Order(
        number=str(node["name"]),
        status=order_status(node, fulfillments),
        created_at=_when(node.get("createdAt")),
        updated_at=_when(node.get("updatedAt")),
        cancelled_at=_when(node.get("cancelledAt")),
        total=_amount(money.get("amount"), currency),
        currency=currency,
        items=tuple(_line_item(item) for item in (node.get("lineItems") or {}).get("nodes") or []),
        shipments=tuple(shipment for f in fulfillments for shipment in _shipments(f)),
        source_status=source_status(node),
        email=str(node.get("email") or ""),
        phone=str(node.get("phone") or address.get("phone") or ""),
        postcode=str(address.get("zip") or ""),
        customer_id=str((node.get("customer") or {}).get("id") or ""),
    )


def order_status(node: JSONDict, fulfillments: list[JSONDict]) -> OrderStatus:
    """Cancelled and refunded first, then what has shipped, then whether it is paid."""
    if node.get("cancelledAt"):
        return OrderStatus.CANCELLED
    financial = node.get("displayFinancialStatus") or ""
    if financial == "REFUNDED":
        return OrderStatus.REFUNDED
    status = FULFILLMENT_STATUSES.get(node.get("displayFulfillmentStatus") or "", OrderStatus.PROCESSING)
    if status is OrderStatus.SHIPPED and fulfillments and all(_arrived(f) for f in fulfillments):
        return OrderStatus.DELIVERED
    if status is OrderStatus.PROCESSING and financial in UNPAID:
        return OrderStatus.PENDING_PAYMENT
    return status


def source_status(node: JSONDict) -> str:
    """Shopify's own words for agents: "PAID / FULFILLED", "CANCELLED / REFUNDED / UNFULFILLED"."""
    parts = ["CANCELLED" if node.get("cancelledAt") else "", node.get("displayFinancialStatus") or "",
             node.get("displayFulfillmentStatus") or ""]
    return " / ".join(part for part in parts if part)


def _arrived(fulfillment: JSONDict) -> bool:
    return fulfillment.get("displayStatus") in ARRIVED or bool(fulfillment.get("deliveredAt"))


def _shipments(fulfillment: JSONDict) -> list[Shipment]:
    """One Shipment per tracking number; a fulfillment without tracking is still one parcel sent."""
    common = {
        "shipped_at": _when(fulfillment.get("createdAt")),
        "delivered_at": _when(fulfillment.get("deliveredAt")),
        "last_event_at": _when(fulfillment.get("updatedAt") or fulfillment.get("inTransitAt")),
        "status": str(fulfillment.get("displayStatus") or fulfillment.get("status") or "").lower(),
    }
    tracking = fulfillment.get("trackingInfo") or []
    if not tracking:
        return [Shipment(**common)]
    return [Shipment(carrier=str(info.get("company") or ""), tracking_number=str(info.get("number") or ""),
                     tracking_url=str(info.get("url") or ""), **common) for info in tracking]


def _line_item(item: JSONDict) -> LineItem:
    return LineItem(title=str(item.get("title") or ""), quantity=int(item.get("quantity") or 0),
                    variant=str(item.get("variantTitle") or ""), sku=str(item.get("sku") or ""))


def _when(value: Any) -> datetime | None:
    """Shopify's DateTime ("2025-03-01T09:30:00Z") as an aware datetime; UTC when it names no zone."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _amount(value: Any, currency: str) -> str:
    """Shopify's Decimal drops trailing zeros ("59.9"); shoppers read "59.90" (or "1500" in yen)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value or "")
    if not amount.is_finite():
        return ""
    places = Decimal("1") if currency in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return str(amount.quantize(places, rounding=ROUND_HALF_UP))
