"""Products from a Shopify shop, read through the Admin GraphQL API (read_products scope, never written).

A read walks ``products(first:, after:, query: "status:active")`` page by page, following
``pageInfo { hasNextPage endCursor }``; each page also asks ``shop { currencyCode }`` (one point),
because a variant's ``price`` is a Money scalar ("59.90") in the shop's currency and names none. An
incremental read adds ``updated_at:>'2026-11-30T10:00:00Z'`` to the search (Shopify's search syntax,
in UTC to the second; a fraction is dropped, which re-reads the rest of that second rather than skip
it). ``>`` is strict: a product changed in the very second ``changed_since`` names is not read again,
so a caller should pass the time its previous read started, not when it ended.
Only ACTIVE products are read: drafts and archived products are not for sale and must not be offered.
The incremental read therefore cannot see a product archived, drafted or deleted since: it no longer
matches the search. Only a full read (``changed_since=None``) drops those.

Query cost: Shopify refuses before running it any query whose *requested* cost passes 1000 points
(``MAX_COST_EXCEEDED``, with ``cost`` and ``maxCost`` in the error's extensions). A connection costs
about 2 + first × its node, so with ``variants(first: 50)`` one product costs about 100 points and a
page of 50 is some 5,000. The first refusal shrinks the page in proportion and the size that fits
is kept for later reads; a page never costs a round trip more than once per source. A read ends at
the last page, whatever the catalog's size (10,000 products are some 1,100 pages); only a cursor
seen before (a loop) or more than MAX_PRODUCTS stop it early, with a warning.

Throttling is as for orders (``commerce.sources.shopify``): THROTTLED answers and HTTP 429 are
waited out while ``max_throttle_wait_seconds`` lasts, for each page: a large catalog drains the
cost bucket again and again, and its read (in the background, the catalog in use staying) must
wait for the bucket to refill each time; every other failure is a CatalogUnavailable.

Mapping: ids are the numeric tail of Shopify's gid ("gid://shopify/Product/8123456789" →
"8123456789"), the id the REST API, the admin's URLs and merchants' exports use. The text is the
shop's own language, recorded as "en": translations are not fetched (they live in
``translatableResources``, a second read per locale), so ``Product.translations`` stays empty.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from commerce.products import CatalogUnavailable, Product, Variant
from commerce.sources.shopify_auth import AccessRefused, ShopifyAccess
from commerce.sources.shopify import (
    DEFAULT_RETRY_AFTER,
    MAX_ATTEMPTS,
    _amount,
    _json,
    _seconds,
    _throttle_wait,
    _when,
)

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

# Variants read per product; one with more is read in part (logged). 100 (Shopify's old maximum) made a
# product cost ~206 query points, so pages of 4 products; 50 covers sizes × colours of clothing.
VARIANTS_PER_PRODUCT = 50
MAX_PRODUCTS = 250_000  # bounds a read that would never end
MAX_PAGE_SIZE = 250  # Shopify's limit on `first` for any connection
DEFAULT_VARIANT = "Default Title"  # what Shopify names the one variant of a product without options
GID_RE = re.compile(r"^gid://shopify/[A-Za-z]+/(\d+)$")
OPTION_ALIASES = {"colour": "color"}

CATALOG_QUERY = f"""
query KefuCatalogPage($first: Int!, $after: String, $query: String) {{
  shop {{ currencyCode }}
  products(first: $first, after: $after, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id
      title
      handle
      description
      productType
      vendor
      tags
      updatedAt
      onlineStoreUrl
      tracksInventory
      featuredMedia {{ preview {{ image {{ url }} }} }}
      variants(first: {VARIANTS_PER_PRODUCT}) {{
        pageInfo {{ hasNextPage }}
        nodes {{ id title price sku inventoryQuantity availableForSale selectedOptions {{ name value }} }}
      }}
    }}
  }}
}}
""".strip()


@dataclass(frozen=True)
class _Reply:
    """One HTTP exchange, classified: the body, a wait Shopify asked for, or a page that costs too much."""

    body: JSONDict | None = None
    wait: float | None = None
    why: str = ""
    too_costly: bool = False
    cost: int = 0
    max_cost: int = 0


@dataclass
class _Budget:
    """The throttle wait one page may still spend."""

    limit: float
    waited: float = field(default=0.0)


def search_query(changed_since: datetime | None) -> str:
    """The products search: active ones, and with `changed_since` only those updated after it."""
    if changed_since is None:
        return "status:active"
    return f"status:active AND updated_at:>'{_utc_seconds(changed_since)}'"


def _utc_seconds(moment: datetime) -> str:
    """ISO 8601 in UTC to the second; a naive datetime is taken as UTC, as kefu stores times."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ")


class ShopifyCatalog:
    """A CatalogSource for one Shopify shop; one aiohttp session, made on first use unless given."""

    name = "shopify"

    def __init__(self, *, shop_url: str, api_version: str, token: str = "", access: ShopifyAccess | None = None,
                 timeout_seconds: float = 10.0, max_throttle_wait_seconds: float = 10.0, page_size: int = 50,
                 session: aiohttp.ClientSession | None = None):
        self._shop_url = shop_url.rstrip("/")
        self._endpoint = f"{self._shop_url}/admin/api/{api_version}/graphql.json"
        self._access = access or ShopifyAccess(shop_url=shop_url, token=token)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_wait = max_throttle_wait_seconds
        self._page_size = min(max(int(page_size), 1), MAX_PAGE_SIZE)
        self._session = session
        self._owns_session = session is None

    async def products(self, changed_since: datetime | None = None) -> list[Product]:
        search = search_query(changed_since)
        read: list[Product] = []
        cursor: str | None = None
        seen: set[str] = set()
        pages = 0
        while True:
            data = await self._page(search, cursor, _Budget(self._max_wait))
            pages += 1
            connection = self._products_connection(data)
            read.extend(self._map_nodes(connection["nodes"], _currency(data)))
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                log.info("shopify.catalog.read products=%d pages=%d search=%s", len(read), pages, search)
                return read
            cursor = info.get("endCursor")
            if not isinstance(cursor, str) or not cursor:
                raise self._unavailable("a page says more products follow but gives no endCursor")
            if cursor in seen or len(read) >= MAX_PRODUCTS:
                log.warning("shopify.catalog.read_stopped pages=%d products=%d search=%s reason=%s (the rest of the "
                            "catalog is missing from this read)", pages, len(read), search,
                            "a cursor came back" if cursor in seen else f"over {MAX_PRODUCTS} products")
                return read
            seen.add(cursor)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None
        await self._access.close()

    # -- pages -----------------------------------------------------------------------------------------

    async def _page(self, search: str, cursor: str | None, budget: _Budget) -> JSONDict:
        """One page's `data`, shrinking the page while Shopify says it costs more than one query may."""
        while True:
            variables = {"first": self._page_size, "after": cursor, "query": search}
            reply = await self._query({"query": CATALOG_QUERY, "variables": variables}, budget)
            if not reply.too_costly:
                data = (reply.body or {}).get("data")
                if not isinstance(data, dict):
                    raise self._unavailable("the answer has no data")
                return data
            self._shrink(reply.cost, reply.max_cost)

    def _shrink(self, cost: int, max_cost: int) -> None:
        """A smaller page, in proportion to how far over the limit this one was (halved if unsaid)."""
        first = self._page_size
        if first <= 1:
            raise self._unavailable(f"one product costs {cost} query points, over Shopify's {max_cost}")
        fitted = first * max_cost // cost if cost > 0 and max_cost > 0 else first // 2
        self._page_size = max(1, min(first - 1, fitted))
        log.info("shopify.catalog.page_too_costly cost=%d max=%d page_size=%d->%d", cost, max_cost, first,
                 self._page_size)

    def _products_connection(self, data: JSONDict) -> JSONDict:
        connection = data.get("products")
        if not isinstance(connection, dict) or not isinstance(connection.get("nodes"), list):
            raise self._unavailable("the answer has no data.products.nodes")
        return connection

    def _map_nodes(self, nodes: list[Any], currency: str) -> list[Product]:
        """Every product node that can be read; an odd one is logged and left out, not the whole page."""
        products = []
        for node in nodes:
            try:
                products.append(product_from_node(node, shop_url=self._shop_url, currency=currency))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                gid = node.get("id") if isinstance(node, dict) else None
                log.warning("shopify.catalog.skipped product=%s (%s %s)", gid, type(exc).__name__, exc)
        return products

    # -- the HTTP exchange -----------------------------------------------------------------------------

    async def _query(self, payload: JSONDict, budget: _Budget) -> _Reply:
        """POST until an answer comes, waiting out throttling while the page's budget lasts."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            reply = await self._exchange(payload)
            if reply.wait is None:
                return reply
            if budget.waited + reply.wait > budget.limit or attempt == MAX_ATTEMPTS:
                raise self._unavailable(f"{reply.why}; waited {budget.waited:.2f}s of {budget.limit:.2f}s, "
                                        f"next wait {reply.wait:.2f}s")
            log.info("shopify.catalog.throttled attempt=%d wait=%.2fs (%s)", attempt, reply.wait, reply.why)
            await asyncio.sleep(reply.wait)
            budget.waited += reply.wait
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    async def _exchange(self, payload: JSONDict) -> _Reply:
        try:
            token = await self._access.token()
        except AccessRefused as exc:
            raise self._unavailable(str(exc)) from exc
        headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
        try:
            async with self._client().post(self._endpoint, json=payload, headers=headers,
                                           timeout=self._timeout) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise self._unavailable(f"no answer within {self._timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            raise self._unavailable(f"unreachable: {type(exc).__name__} {exc}") from exc
        if status == 429:
            return _Reply(wait=_seconds(retry_after, DEFAULT_RETRY_AFTER), why="HTTP 429")
        if status == 401 and self._access.renewable:  # a 24-hour token ran out early: fetch another, once more
            self._access.refused(token)
            return _Reply(wait=0.0, why="access token expired (HTTP 401)")
        if status in (401, 403):
            log.warning("shopify.catalog.token_refused status=%d endpoint=%s (the merchant must fix the Admin "
                        "API access token or its read_products scope)", status, self._endpoint)
            raise self._unavailable(f"access token refused (HTTP {status})")
        if status != 200:
            raise self._unavailable(f"HTTP {status}")
        body = _json(raw)
        if body is None:
            raise self._unavailable("the answer is not a JSON object")
        return self._classify(body)

    def _classify(self, body: JSONDict) -> _Reply:
        errors = body.get("errors")
        if not errors:
            return _Reply(body=body)
        if not isinstance(errors, list):
            raise self._unavailable(f"GraphQL error: {str(errors)[:200]}")
        entries = [e for e in errors if isinstance(e, dict)]
        codes = {str((e.get("extensions") or {}).get("code", "")) for e in entries}
        if "THROTTLED" in codes:
            return _Reply(wait=_throttle_wait(body), why="THROTTLED")
        if "MAX_COST_EXCEEDED" in codes:
            extensions = next(e.get("extensions") or {} for e in entries
                              if (e.get("extensions") or {}).get("code") == "MAX_COST_EXCEEDED")
            return _Reply(too_costly=True, cost=int(_seconds(extensions.get("cost"), 0.0)),
                          max_cost=int(_seconds(extensions.get("maxCost"), 0.0)))
        messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
        if "ACCESS_DENIED" in codes:
            log.warning("shopify.catalog.access_denied endpoint=%s (grant the app read_products): %s",
                        self._endpoint, messages[:200])
        raise self._unavailable(f"GraphQL error: {messages[:200]}")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    def _unavailable(self, reason: str) -> CatalogUnavailable:
        log.info("shopify.catalog.unavailable reason=%s", reason)
        return CatalogUnavailable(self.name, reason)


# -- mapping Shopify's product to kefu's ----------------------------------------------------------------


def product_from_node(node: JSONDict, *, shop_url: str, currency: str) -> Product:
    """Map one `products.nodes[]` entry of CATALOG_QUERY to a Product."""
    product_id = short_id(node["id"])
    handle = str(node.get("handle") or "")
    variants = node.get("variants") or {}
    if (variants.get("pageInfo") or {}).get("hasNextPage"):
        log.info("shopify.catalog.variants_truncated product=%s read=%d (more variants than one read takes)",
                 product_id, len(variants.get("nodes") or []))
    tracked = node.get("tracksInventory") is not False
    return Product(
        id=product_id,
        title=str(node.get("title") or ""),
        description=str(node.get("description") or ""),
        url=str(node.get("onlineStoreUrl") or (f"{shop_url}/products/{handle}" if handle else "")),
        image_url=_image_url(node.get("featuredMedia")),
        category=str(node.get("productType") or ""),
        tags=tuple(str(tag) for tag in node.get("tags") or () if tag),
        vendor=str(node.get("vendor") or ""),
        variants=tuple(variant_from_node(v, currency=currency, tracked=tracked)
                       for v in variants.get("nodes") or () if isinstance(v, dict)),
        language="en",
        updated_at=_when(node.get("updatedAt")),
    )


def variant_from_node(node: JSONDict, *, currency: str, tracked: bool = True) -> Variant:
    """One variant; stock is None where the product does not track inventory (its count means nothing)."""
    title = str(node.get("title") or "")
    quantity = node.get("inventoryQuantity")
    return Variant(
        id=short_id(node["id"]),
        title="" if title == DEFAULT_VARIANT else title,
        options=variant_options(node.get("selectedOptions") or ()),
        price=_amount(node.get("price"), currency),
        currency=currency,
        stock=int(quantity) if tracked and quantity is not None else None,
        available=bool(node.get("availableForSale", True)),
        sku=str(node.get("sku") or ""),
    )


def variant_options(selected: Any) -> dict[str, str]:
    """{"size": "M", "color": "Navy"}: keys lower-case, "Colour" as "color", Shopify's "Title" placeholder dropped."""
    options: dict[str, str] = {}
    for option in selected:
        name = str(option.get("name") or "").strip()
        value = str(option.get("value") or "").strip()
        if not name or not value or (name == "Title" and value == DEFAULT_VARIANT):
            continue
        key = name.lower()
        options[OPTION_ALIASES.get(key, key)] = value
    return options


def short_id(gid: Any) -> str:
    """The numeric tail of a Shopify gid; an id in another form is kept whole."""
    text = str(gid or "")
    if not text:
        raise ValueError("no id")
    match = GID_RE.match(text)
    return match.group(1) if match else text


def _image_url(media: Any) -> str:
    """The featured media's preview image: the image itself, or a video's or 3D model's poster."""
    if not isinstance(media, dict):
        return ""
    image = (media.get("preview") or {}).get("image") or {}
    return str(image.get("url") or "")


def _currency(data: JSONDict) -> str:
    return str((data.get("shop") or {}).get("currencyCode") or "")
