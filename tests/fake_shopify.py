"""A fake Shopify Admin GraphQL endpoint on 127.0.0.1, so order lookups and catalog reads run over real HTTP.

It answers ``POST /admin/api/<version>/graphql.json`` the way Shopify does: ``X-Shopify-Access-Token``
checked (401 and Shopify's own error text when wrong), a 200 with ``{"data": ..., "extensions":
{"cost": ...}}``, and the real failure shapes (THROTTLED errors with the bucket's throttleStatus,
HTTP 429 with Retry-After, 5xx pages)::

    async with FakeShopify(token="shpat_test") as shop:
        shop.add_order("#1001", fulfillments=[fulfillment(tracking=[tracking("DHL", "00340434")])])
        source = ShopifyOrders(shop_url=shop.url, token="shpat_test", api_version=shop.api_version)

It is not a GraphQL engine: it reads the ``orders(first:, query: "name:...")``,
``products(first:, after:, query:)`` and ``shop`` fields with a small parser and answers exactly the
selection the query asks for (``nodes`` or ``edges { node }``, lists cut to their ``first:``), so a
field the fake's records lack is answered like Shopify answers a field its schema lacks
(``undefinedField``). Its name search is deliberately loose, like Shopify's: an exact name wins,
otherwise any order whose name starts with the term is a hit.

Products are paged as Shopify pages them: sorted by id, opaque base64 cursors, ``pageInfo`` with
``hasNextPage`` and ``endCursor``; the search understands ``status:active,draft`` and
``updated_at:>'2026-11-30T10:00:00Z'`` (also ``>=``, ``<``, ``<=``, ``created_at``) joined by spaces or
``AND``, and refuses any other term loudly rather than ignore it. Like Shopify it refuses a query whose
requested cost passes 1000 points (``MAX_COST_EXCEEDED``), costed the way Shopify documents it:
scalars 0, objects 1, a connection or ``first:`` list 2 + first × its node::

    shop.add_product("Rain Jacket", variants=[variant("M / Navy", "59.90", options={"Size": "M",
                                                                                   "Color": "Navy"})])
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from loopback import LoopbackServer, answer_slowly, json_body

JSONDict = dict[str, Any]
Selection = dict[str, "Field"]

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
TOKEN_RE = re.compile(r'\([^()]*\)|[{}]|\.\.\.|[_A-Za-z][_0-9A-Za-z]*')
ARG_RE = re.compile(r'(\w+)\s*:\s*(\$\w+|"(?:[^"\\]|\\.)*"|-?\d+|true|false|null)')
NAME_TERM_RE = re.compile(r'(?:^|\s)name:(?:"([^"]*)"|\'([^\']*)\'|(\S+))')
RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits"
MAX_QUERY_COST = 1000  # Shopify's single-query limit on the requested cost
SEARCH_TOKEN_RE = re.compile(r"""[^\s:]+:(?:>=|<=|>|<)?(?:'[^']*'|"[^"]*"|\S+)|\S+""")
SEARCH_TERM_RE = re.compile(r"""^(\w+):(>=|<=|>|<)?(?:'([^']*)'|"([^"]*)"|(\S+))$""")
COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                      "<=": operator.le, "": operator.eq}


@dataclass
class Field:
    """One field of a selection set: its arguments and, for objects, what is selected under it."""

    args: JSONDict = field(default_factory=dict)
    selection: Selection | None = None


@dataclass
class RecordedRequest:
    """What the client sent, and the status it got, so tests can assert calls and headers."""

    method: str
    path: str
    api_version: str
    headers: dict[str, str]
    body: Any
    search: str | None = None
    status: int = 0


@dataclass
class Bucket:
    """Shopify's cost bucket as extensions.cost reports it; the fake never drains it by itself."""

    requested_cost: int = 62
    actual_cost: int = 9
    maximum_available: float = 2000.0
    currently_available: float = 1991.0
    restore_rate: float = 100.0


@dataclass
class _Scripted:
    """A failure queued by a switch: the next `times` requests get `respond()` (or THROTTLED)."""

    times: int
    respond: Callable[[], web.Response] | None = None
    throttle: Bucket | None = None


class GraphQLError(Exception):
    """A request the fake rejects the way Shopify's GraphQL layer does (HTTP 200, errors[])."""

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.payload: JSONDict = {"message": message, "extensions": extensions} if extensions else {"message": message}


# -- building realistic orders ---------------------------------------------------------------------------

_ids = itertools.count(5_123_456_001)


def line_item(title: str, quantity: int = 1, *, variant_title: str | None = None, sku: str | None = None
              ) -> JSONDict:
    """A LineItem node as Admin GraphQL returns it (variantTitle and sku are null when unset)."""
    return {"__typename": "LineItem", "id": f"gid://shopify/LineItem/{next(_ids)}", "title": title,
            "name": f"{title} - {variant_title}" if variant_title else title, "quantity": quantity,
            "variantTitle": variant_title, "sku": sku}


def tracking(company: str | None, number: str | None, url: str | None = None) -> JSONDict:
    """A FulfillmentTrackingInfo: Shopify builds the URL itself for carriers it knows."""
    return {"__typename": "FulfillmentTrackingInfo", "company": company, "number": number, "url": url}


def fulfillment(*, status: str = "SUCCESS", display_status: str = "FULFILLED",
                created_at: str = "2025-03-02T14:00:00Z", updated_at: str | None = None,
                in_transit_at: str | None = None, delivered_at: str | None = None,
                estimated_delivery_at: str | None = None, tracking_info: Iterable[JSONDict] = ()) -> JSONDict:
    """A Fulfillment (Order.fulfillments is a plain list on the Admin API, not a connection)."""
    return {"__typename": "Fulfillment", "id": f"gid://shopify/Fulfillment/{next(_ids)}", "status": status,
            "displayStatus": display_status, "createdAt": created_at, "updatedAt": updated_at or created_at,
            "inTransitAt": in_transit_at, "deliveredAt": delivered_at, "estimatedDeliveryAt": estimated_delivery_at,
            "requiresShipping": True, "trackingInfo": list(tracking_info)}


def _money(amount: str, currency: str) -> JSONDict:
    return {"__typename": "MoneyV2", "amount": amount, "currencyCode": currency}


# -- building realistic products --------------------------------------------------------------------------


def variant(title: str = "Default Title", price: str | None = "59.90", *, options: Mapping[str, str] | None = None,
            sku: str | None = None, inventory_quantity: int | None = 5, tracked: bool = True,
            inventory_policy: str = "DENY", available_for_sale: bool | None = None) -> JSONDict:
    """A ProductVariant node: price is a Money scalar string, options are Shopify's selectedOptions.

    Without `options` the variant is Shopify's placeholder ("Title": "Default Title") when its title
    is the default one, else a single "Title" option. `available_for_sale` is derived as Shopify does
    unless given: untracked, or allowed to oversell, or some left.
    """
    variant_id = next(_ids)
    selected = options if options is not None else {"Title": title}
    if available_for_sale is None:
        available_for_sale = not tracked or inventory_policy == "CONTINUE" or (inventory_quantity or 0) > 0
    return {"__typename": "ProductVariant", "id": f"gid://shopify/ProductVariant/{variant_id}",
            "legacyResourceId": str(variant_id), "title": title, "displayName": title, "price": price,
            "compareAtPrice": None, "sku": sku, "barcode": None, "inventoryQuantity": inventory_quantity,
            "inventoryPolicy": inventory_policy, "availableForSale": available_for_sale, "position": 1,
            "selectedOptions": [{"__typename": "SelectedOption", "name": name, "value": value}
                                for name, value in selected.items()],
            "inventoryItem": {"__typename": "InventoryItem", "id": f"gid://shopify/InventoryItem/{variant_id}",
                              "tracked": tracked}}


def _media_image(url: str, alt: str) -> JSONDict:
    """A MediaImage as Product.featuredMedia answers it: the preview image is the image itself."""
    media_id = next(_ids)
    image = {"__typename": "Image", "id": f"gid://shopify/ImageSource/{media_id}", "url": url, "altText": alt,
             "width": 1200, "height": 1200}
    return {"__typename": "MediaImage", "id": f"gid://shopify/MediaImage/{media_id}", "alt": alt,
            "mediaContentType": "IMAGE", "status": "READY", "image": image,
            "preview": {"__typename": "MediaPreviewImage", "status": "READY", "image": image}}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "product"


# -- a tiny reader for the query's selection sets ---------------------------------------------------------


def parse_selection(query: str, variables: JSONDict) -> Selection:
    """The operation's top-level selection, arguments resolved from `variables`."""
    tokens = TOKEN_RE.findall(re.sub(r"#[^\n]*", "", query))
    try:
        start = tokens.index("{")
    except ValueError as exc:
        raise GraphQLError("syntax error, unexpected end of file") from exc
    selection, end = _read_selection(tokens, start + 1, variables)
    if end != len(tokens):
        raise GraphQLError(f"syntax error, unexpected {tokens[end]!r}")
    return selection


def _read_selection(tokens: list[str], at: int, variables: JSONDict) -> tuple[Selection, int]:
    selection: Selection = {}
    while at < len(tokens) and tokens[at] != "}":
        name = tokens[at]
        if name in "{(" or name == "...":
            raise GraphQLError(f"syntax error, unexpected {name!r}")
        node = Field()
        at += 1
        if at < len(tokens) and tokens[at].startswith("("):
            node.args = _read_args(tokens[at], variables)
            at += 1
        if at < len(tokens) and tokens[at] == "{":
            node.selection, at = _read_selection(tokens, at + 1, variables)
        selection[name] = node
    if at >= len(tokens):
        raise GraphQLError("syntax error, unexpected end of file")
    return selection, at + 1


def _read_args(text: str, variables: JSONDict) -> JSONDict:
    args: JSONDict = {}
    for name, raw in ARG_RE.findall(text):
        if raw.startswith("$"):
            if raw[1:] not in variables:
                raise GraphQLError(f"Variable ${raw[1:]} is used by anonymous query but not declared",
                                   code="variableNotDefined", variableName=raw[1:])
            args[name] = variables[raw[1:]]
        else:
            args[name] = json.loads(raw)
    return args


def project(value: Any, selection: Selection, path: list[str]) -> Any:
    """`value` cut down to `selection`, as a GraphQL server answers; unknown fields are errors."""
    if value is None:
        return None
    if isinstance(value, list):
        return [project(item, selection, path) for item in value]
    if not isinstance(value, dict):
        raise GraphQLError(f"Selections can't be made on scalars (field '{path[-1]}')", code="selectionMismatch")
    typename = value.get("__typename", "Object")
    out: JSONDict = {}
    for name, node in selection.items():
        if name not in value:
            raise GraphQLError(f"Field '{name}' doesn't exist on type '{typename}'", code="undefinedField",
                               typeName=typename, fieldName=name)
        out[name] = _field_value(value[name], node, [*path, name])
    return out


def _field_value(raw: Any, node: Field, path: list[str]) -> Any:
    first = node.args.get("first")
    if isinstance(raw, dict) and "nodes" in raw and raw.get("__typename", "").endswith("Connection"):
        if first is None and node.args.get("last") is None:
            raise GraphQLError("you must provide one of first or last", code="argumentLiteralsIncompatible")
        page = _Page(has_next=isinstance(first, int) and len(raw["nodes"]) > first)
        return _connection(raw["nodes"][:first], node, path, page)
    if isinstance(raw, list) and isinstance(first, int):
        raw = raw[:first]
    if node.selection is None:
        if isinstance(raw, dict) or (isinstance(raw, list) and any(isinstance(item, dict) for item in raw)):
            raise GraphQLError(f"Field must have selections (field '{path[-1]}' returns an object)",
                               code="selectionMismatch")
        return raw
    return project(raw, node.selection, path)


@dataclass(frozen=True)
class _Page:
    """Where a page of a connection sits, for its pageInfo."""

    has_next: bool = False
    has_previous: bool = False


def _connection(items: list[JSONDict], node: Field, path: list[str], page: _Page | None = None) -> JSONDict:
    """A connection's answer in whichever form the query asked: nodes, edges { node }, pageInfo.

    Without `page` (the orders search) pageInfo says there is nothing more and edge cursors are plain
    labels, as before; with it, cursors are opaque and pageInfo answers what its selection asks.
    """
    out: JSONDict = {}
    for name, sub in (node.selection or {}).items():
        if name == "nodes":
            out[name] = project(items, sub.selection or {}, [*path, name])
        elif name == "edges":
            edge_selection = sub.selection or {}
            out[name] = [
                {key: (project(item, edge_selection[key].selection or {}, [*path, "edges", "node"])
                       if key == "node" else (cursor_of(item) if page else f"cursor-{item.get('id', i)}"))
                 for key in edge_selection}
                for i, item in enumerate(items)]
        elif name == "pageInfo" and page is None:
            out[name] = {"hasNextPage": False, "hasPreviousPage": False}
        elif name == "pageInfo" and page is not None:
            out[name] = project(_page_info(items, page), sub.selection or {}, [*path, name])
        else:
            raise GraphQLError(f"Field '{name}' doesn't exist on type 'Connection'", code="undefinedField")
    return out


def _page_info(items: list[JSONDict], page: _Page) -> JSONDict:
    return {"__typename": "PageInfo", "hasNextPage": page.has_next, "hasPreviousPage": page.has_previous,
            "startCursor": cursor_of(items[0]) if items else None,
            "endCursor": cursor_of(items[-1]) if items else None}


def numeric_id(gid: str) -> int:
    """The number at the end of a gid ("gid://shopify/Product/5123456001" → 5123456001)."""
    return int(gid.rsplit("/", 1)[-1])


def cursor_of(item: JSONDict) -> str:
    """An opaque cursor, shaped like Shopify's: base64 of {"last_id": ..., "last_value": ...}."""
    last = numeric_id(str(item["id"]))
    return base64.b64encode(json.dumps({"last_id": last, "last_value": str(last)}).encode()).decode()


def _cursor_id(cursor: Any) -> int:
    try:
        return int(json.loads(base64.b64decode(str(cursor), validate=True))["last_id"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.", code="BAD_REQUEST") from exc


def requested_cost(selection: Selection) -> int:
    """The requested cost as Shopify documents it: scalars 0, objects 1, connections 2 + first × a node."""
    return sum(_field_cost(node) for node in selection.values())


def _field_cost(node: Field) -> int:
    if node.selection is None:
        return 0
    first = node.args.get("first")
    if not isinstance(first, int):
        return 1 + requested_cost(node.selection)
    return 2 + first * (1 + requested_cost(_item_selection(node.selection)))


def _item_selection(selection: Selection) -> Selection:
    """What one item of a `first:` field selects: nodes { … }, edges { node { … } }, or a plain list's fields."""
    if "nodes" in selection:
        return selection["nodes"].selection or {}
    if "edges" in selection:
        edge = selection["edges"].selection or {}
        return (edge.get("node") or Field()).selection or {}
    return selection


def _first(node: Field) -> int:
    first = node.args.get("first")
    if not isinstance(first, int) or not 0 < first <= 250:
        raise GraphQLError("you must provide one of first or last", code="argumentLiteralsIncompatible")
    return first


def _search_terms(query: str) -> list[Callable[[JSONDict], bool]]:
    """The product search as predicates; a term the fake does not know fails the request loudly."""
    terms: list[Callable[[JSONDict], bool]] = []
    for token in SEARCH_TOKEN_RE.findall(query):
        if token == "AND":
            continue
        match = SEARCH_TERM_RE.match(token)
        if match is None or match.group(1) not in ("status", "updated_at", "created_at"):
            raise GraphQLError(f"FakeShopify does not implement the search term {token!r}", code="fakeUnsupported")
        name, comparator = match.group(1), match.group(2) or ""
        value = next(group for group in match.groups()[2:] if group is not None)
        terms.append(_status_term(value) if name == "status" else _time_term(name, comparator, value))
    return terms


def _status_term(value: str) -> Callable[[JSONDict], bool]:
    wanted = {status.strip().upper() for status in value.split(",")}
    return lambda product: product["status"] in wanted


def _time_term(name: str, comparator: str, value: str) -> Callable[[JSONDict], bool]:
    field_name = {"updated_at": "updatedAt", "created_at": "createdAt"}[name]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise GraphQLError(f"FakeShopify cannot read the time {value!r}", code="fakeUnsupported") from exc
    compare = COMPARATORS[comparator]
    return lambda product: compare(datetime.fromisoformat(product[field_name]), moment)


# -- the server ------------------------------------------------------------------------------------------


class FakeShopify(LoopbackServer):
    """A per-test shop: its orders and products, its request log and its scripted failures."""

    def __init__(self, token: str = "shpat_test_0123456789abcdef", *, api_version: str = "2025-01",
                 shop: str = "lantern-lane", currency: str = "EUR") -> None:
        self.token = token
        self.api_version = api_version
        self.shop = shop
        self.currency = currency
        self.max_query_cost = MAX_QUERY_COST
        self.orders: dict[str, JSONDict] = {}
        self.products: dict[str, JSONDict] = {}  # by gid
        self.requests: list[RecordedRequest] = []
        self.bucket = Bucket()
        self.delay_seconds = 0.0
        self._scripted: list[_Scripted] = []
        self._closing = asyncio.Event()
        # Derived views that keep a large shop fast (bench/commerce.py: 100,000 orders, 10,000 products);
        # each is rebuilt when its dict was changed by other means than add_order / add_product.
        self._order_keys: dict[str, JSONDict] | None = None  # normalised name -> node, as `search` builds it
        self._order_keys_of = 0
        self._handles: set[str] = set()
        self._sorted_products: tuple[list[JSONDict], list[int]] | None = None  # by numeric id, and those ids
        self._sorted_of = 0
        # A Dev Dashboard app: its client id and secret buy 24-hour tokens at /admin/oauth/access_token.
        self.client_id = "kefu-client-id-0123456789abcdef"
        self.client_secret = "kefu-client-secret-0123456789abcdef"
        self.token_lifetime = 86_399
        self.issued: list[str] = []  # tokens handed out, newest last; `expire_tokens` makes them invalid
        self.token_requests: list[dict[str, str]] = []

    def expire_tokens(self) -> None:
        """Every token handed out stops working, as one does after its 24 hours."""
        self.issued.clear()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/admin/api/{version}/graphql.json", self._handle)
        app.router.add_post("/admin/oauth/access_token", self._access_token)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    def release_waiters(self) -> None:
        """Release slow answers first, so stopping never waits out a delay."""
        self._closing.set()

    # -- orders --------------------------------------------------------------------------------------------

    def add_order(self, name: str = "#1001", *, financial_status: str | None = "PAID",
                  fulfillment_status: str = "UNFULFILLED", email: str | None = "ann.lee@example.com",
                  phone: str | None = None, zip_code: str | None = "10115",
                  shipping_phone: str | None = "+49 30 1234567", customer_id: int | None = 7_001_001,
                  created_at: str = "2025-03-01T09:30:00Z", updated_at: str | None = None,
                  cancelled_at: str | None = None, cancel_reason: str | None = None,
                  total: str = "59.9", currency: str = "EUR", line_items: Iterable[JSONDict] | None = None,
                  fulfillments: Iterable[JSONDict] = ()) -> JSONDict:
        """Hold an Order node shaped like Admin GraphQL's (null where Shopify answers null) and return it."""
        order_id = next(_ids)
        items = list(line_items) if line_items is not None else [
            line_item("Brass Lantern", 1, variant_title="Large / Brass", sku="LAN-L-BR"),
            line_item("Beeswax Candle", 2, sku="CAN-BW")]
        address = None if zip_code is None and shipping_phone is None else {
            "__typename": "MailingAddress", "firstName": "Ann", "lastName": "Lee", "address1": "Torstraße 1",
            "city": "Berlin", "zip": zip_code, "countryCodeV2": "DE", "phone": shipping_phone}
        node: JSONDict = {
            "__typename": "Order", "id": f"gid://shopify/Order/{order_id}", "legacyResourceId": str(order_id),
            "name": name, "createdAt": created_at, "updatedAt": updated_at or created_at,
            "processedAt": created_at, "cancelledAt": cancelled_at, "cancelReason": cancel_reason,
            "closed": False, "displayFinancialStatus": financial_status,
            "displayFulfillmentStatus": fulfillment_status, "email": email, "phone": phone,
            "currencyCode": currency, "shippingAddress": address,
            "customer": None if customer_id is None else {"__typename": "Customer",
                                                          "id": f"gid://shopify/Customer/{customer_id}"},
            "totalPriceSet": {"__typename": "MoneyBag", "shopMoney": _money(total, currency),
                              "presentmentMoney": _money(total, currency)},
            "lineItems": {"__typename": "LineItemConnection", "nodes": items},
            "fulfillments": list(fulfillments),
        }
        self.orders[name] = node
        self._order_keys = None
        return node

    def search(self, query: str) -> list[JSONDict]:
        """Shopify-like loose name search: an exact name first, else names starting with the term."""
        match = NAME_TERM_RE.search(query)
        if match is None:
            return []
        term = next(group for group in match.groups() if group is not None).lstrip("#").upper()
        keyed = self._keyed_orders()
        if term in keyed:
            return [keyed[term]]
        return [node for key, node in sorted(keyed.items()) if key.startswith(term)]

    def _keyed_orders(self) -> dict[str, JSONDict]:
        """The orders by normalised name (the last of equal names wins), built once per change of `orders`."""
        if self._order_keys is None or self._order_keys_of != len(self.orders):
            self._order_keys = {name.lstrip("#").upper(): node for name, node in self.orders.items()}
            self._order_keys_of = len(self.orders)
        return self._order_keys

    # -- products ------------------------------------------------------------------------------------------

    def add_product(self, title: str = "Rain Jacket", *, handle: str | None = None,
                    description: str = "A light, packable rain jacket.", product_type: str = "Jackets",
                    vendor: str = "Lantern Lane", tags: Iterable[str] = ("outdoor", "rain"), status: str = "ACTIVE",
                    created_at: str = "2026-11-01T09:00:00Z", updated_at: str | None = None,
                    published: bool = True, image: bool = True, variants: Iterable[JSONDict] | None = None
                    ) -> JSONDict:
        """Hold a Product node shaped like Admin GraphQL's and return it.

        Unpublished products have a null onlineStoreUrl, as on Shopify; `image=False` leaves
        featuredMedia null. Without `variants` the product has Shopify's one default variant.
        """
        product_id = next(_ids)
        handle = self._free_handle(handle or _slug(title))
        items = list(variants) if variants is not None else [variant()]
        tracked = any(item["inventoryItem"]["tracked"] for item in items)
        image_url = f"https://cdn.shopify.com/s/files/1/0700/0001/files/{handle}.jpg"
        media = _media_image(image_url, title) if image else None
        node: JSONDict = {
            "__typename": "Product", "id": f"gid://shopify/Product/{product_id}", "legacyResourceId": str(product_id),
            "title": title, "handle": handle, "description": " ".join(description.split()),
            "descriptionHtml": f"<p>{description}</p>", "productType": product_type, "vendor": vendor,
            "tags": sorted(tags), "status": status, "createdAt": created_at, "updatedAt": updated_at or created_at,
            "publishedAt": created_at if published else None,
            "onlineStoreUrl": f"https://{self.shop}.com/products/{handle}" if published else None,
            "tracksInventory": tracked,
            "totalInventory": sum(item["inventoryQuantity"] or 0 for item in items if item["inventoryItem"]["tracked"]),
            "hasOnlyDefaultVariant": len(items) == 1 and items[0]["title"] == "Default Title",
            "featuredMedia": media, "featuredImage": media["image"] if media else None,
            "variants": {"__typename": "ProductVariantConnection", "nodes": items},
        }
        self.products[node["id"]] = node
        self._handles.add(handle)
        self._sorted_products = None
        return node

    def search_products(self, query: str) -> list[JSONDict]:
        """The products matching every term of `query`, sorted by id as Shopify's default sort is."""
        terms = _search_terms(query)
        ordered, _ = self._by_id()
        return [product for product in ordered if all(term(product) for term in terms)]

    def _by_id(self) -> tuple[list[JSONDict], list[int]]:
        """The products sorted by numeric id, and those ids (for bisecting a cursor), built once per change."""
        if self._sorted_products is None or self._sorted_of != len(self.products):
            ordered = sorted(self.products.values(), key=lambda product: numeric_id(product["id"]))
            self._sorted_products = (ordered, [numeric_id(product["id"]) for product in ordered])
            self._sorted_of = len(self.products)
        return self._sorted_products

    def _free_handle(self, handle: str) -> str:
        """Shopify keeps handles unique by adding -1, -2, ... to a taken one."""
        if len(self._handles) != len(self.products):  # products held by other means than add_product
            self._handles = {product["handle"] for product in self.products.values()}
        taken = self._handles
        candidate, n = handle, 0
        while candidate in taken:
            n += 1
            candidate = f"{handle}-{n}"
        return candidate

    # -- switches --------------------------------------------------------------------------------------------

    def throttle(self, times: int = 1, *, requested: int = 62, available: float = 12.0,
                 restore_rate: float = 100.0, maximum: float = 2000.0) -> None:
        """The next `times` queries get THROTTLED; the client should wait (requested - available) / rate."""
        bucket = Bucket(requested_cost=requested, maximum_available=maximum, currently_available=available,
                        restore_rate=restore_rate)
        self._scripted.append(_Scripted(times, throttle=bucket))

    def rate_limit(self, times: int = 1, *, retry_after: str | None = "2.0") -> None:
        """The next `times` requests get HTTP 429 with `Retry-After` (none when None)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                          "uninterrupted service."}
        self._scripted.append(_Scripted(times, respond=lambda: web.json_response(body, status=429, headers=headers)))

    def fail(self, times: int = 1, *, status: int = 503) -> None:
        """The next `times` requests get a 5xx page, as Shopify's edge serves them (HTML, not JSON)."""
        reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout"}.get(status, "Error")
        page = f"<!DOCTYPE html><html><head><title>{reason}</title></head><body>{reason}</body></html>"
        self._scripted.append(_Scripted(times, respond=lambda: web.Response(status=status, text=page,
                                                                            content_type="text/html")))

    def answer_raw(self, body: str, *, times: int = 1, status: int = 200,
                   content_type: str = "application/json") -> None:
        """The next `times` requests get `body` verbatim (broken JSON, a stray HTML page)."""
        self._scripted.append(_Scripted(times, respond=lambda: web.Response(status=status, text=body,
                                                                            content_type=content_type)))

    def answer_normally(self, times: int = 1) -> None:
        """The next `times` requests are answered as usual, so a failure can be queued after them."""
        self._scripted.append(_Scripted(times))

    def graphql_error(self, message: str, *, code: str = "ACCESS_DENIED", times: int = 1) -> None:
        """The next `times` queries get a GraphQL-level error (HTTP 200, errors[], no data)."""
        body = {"errors": [{"message": message, "extensions": {"code": code}}], "extensions": self._cost()}
        self._scripted.append(_Scripted(times, respond=lambda: web.json_response(body)))

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        """The client credentials grant, form-encoded as Shopify takes it."""
        form = dict(await request.post())
        self.token_requests.append({key: str(value) for key, value in form.items()})
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type",
                                      "error_description": "grant_type must be client_credentials"}, status=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client",
                                      "error_description": "Client authentication failed"}, status=401)
        token = f"shpca_{len(self.token_requests):04d}{'0' * 26}"
        self.issued.append(token)
        return web.json_response({"access_token": token, "scope": "read_orders,read_products",
                                  "expires_in": self.token_lifetime})

    async def _not_found(self, request: web.Request) -> web.Response:
        self._record(request, None, 404)
        return web.json_response({"errors": "Not Found"}, status=404)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        record = self._record(request, body, 0)
        response = await self._answer(request, body, record)
        record.status = response.status
        await answer_slowly(self._closing, self.delay_seconds)
        return response

    async def _answer(self, request: web.Request, body: Any, record: RecordedRequest) -> web.Response:
        if not VERSION_RE.match(request.match_info["version"]):
            return web.json_response({"errors": "Not Found"}, status=404)
        given = request.headers.get("X-Shopify-Access-Token")
        if given != self.token and given not in self.issued:
            return web.json_response({"errors": INVALID_TOKEN}, status=401)
        if request.method != "POST":
            return web.json_response({"errors": "Method Not Allowed"}, status=405)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return web.json_response({"errors": {"query": "Required parameter missing or invalid"}}, status=400)
        scripted = self._next_scripted()
        if scripted is not None and scripted.respond is not None:
            return scripted.respond()
        if scripted is not None and scripted.throttle is not None:
            return web.json_response(self._throttled(scripted.throttle))
        try:
            return web.json_response({"data": self._execute(body, record), "extensions": self._cost()})
        except GraphQLError as error:
            return web.json_response({"errors": [error.payload]})

    def _execute(self, body: JSONDict, record: RecordedRequest) -> JSONDict:
        variables = body.get("variables") or {}
        selection = parse_selection(body["query"], variables if isinstance(variables, dict) else {})
        cost = requested_cost(selection)
        if cost > self.max_query_cost:
            raise GraphQLError(f"Query cost is {cost}, which exceeds the single query max cost limit "
                               f"({self.max_query_cost}).", code="MAX_COST_EXCEEDED", cost=cost,
                               maxCost=self.max_query_cost, documentation=RATE_LIMIT_DOCS)
        fields = {"orders": self._orders_field, "products": self._products_field, "shop": self._shop_field}
        data: JSONDict = {}
        for name, node in selection.items():
            if name not in fields:
                raise GraphQLError(f"Field '{name}' doesn't exist on type 'QueryRoot'", code="undefinedField",
                                   typeName="QueryRoot", fieldName=name)
            data[name] = fields[name](node, record)
        return data

    def _orders_field(self, node: Field, record: RecordedRequest) -> JSONDict:
        first = _first(node)
        record.search = str(node.args.get("query") or "")
        return _connection(self.search(record.search)[:first], node, ["orders"])

    def _products_field(self, node: Field, record: RecordedRequest) -> JSONDict:
        """One page after the `after` cursor, of the products the search matches."""
        first = _first(node)
        record.search = str(node.args.get("query") or "")
        terms = _search_terms(record.search)
        ordered, ids = self._by_id()
        after = node.args.get("after")
        start = 0 if after is None else bisect.bisect_right(ids, _cursor_id(after))
        matches: list[JSONDict] = []  # the page and one more, to know whether another page follows
        for product in itertools.islice(ordered, start, None):
            if all(term(product) for term in terms):
                matches.append(product)
                if len(matches) > first:
                    break
        page = _Page(has_next=len(matches) > first, has_previous=after is not None)
        return _connection(matches[:first], node, ["products"], page)

    def _shop_field(self, node: Field, record: RecordedRequest) -> JSONDict:
        if node.selection is None:
            raise GraphQLError("Field must have selections (field 'shop' returns Shop)", code="selectionMismatch")
        shop = {"__typename": "Shop", "id": "gid://shopify/Shop/70000001", "name": self.shop.replace("-", " ").title(),
                "myshopifyDomain": f"{self.shop}.myshopify.com", "currencyCode": self.currency,
                "ianaTimezone": "Europe/Berlin"}
        return project(shop, node.selection, ["shop"])

    @staticmethod
    async def _body(request: web.Request) -> Any:
        return await json_body(request)

    def _record(self, request: web.Request, body: Any, status: int) -> RecordedRequest:
        record = RecordedRequest(method=request.method, path=request.path,
                                 api_version=request.match_info.get("version", ""),
                                 headers=dict(request.headers), body=body, status=status)
        self.requests.append(record)
        return record

    def _next_scripted(self) -> _Scripted | None:
        if not self._scripted:
            return None
        scripted = self._scripted[0]
        scripted.times -= 1
        if scripted.times <= 0:
            self._scripted.pop(0)
        return scripted

    def _cost(self, bucket: Bucket | None = None) -> JSONDict:
        bucket = bucket or self.bucket
        return {"cost": {"requestedQueryCost": bucket.requested_cost, "actualQueryCost": bucket.actual_cost,
                         "throttleStatus": {"maximumAvailable": bucket.maximum_available,
                                            "currentlyAvailable": bucket.currently_available,
                                            "restoreRate": bucket.restore_rate}}}

    def _throttled(self, bucket: Bucket) -> JSONDict:
        """Shopify's THROTTLED answer: HTTP 200, no data, actualQueryCost null, the bucket's state."""
        cost = self._cost(bucket)
        cost["cost"]["actualQueryCost"] = None
        return {"errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED", "documentation": RATE_LIMIT_DOCS}}],
                "extensions": cost}
