"""A fake WooCommerce shop on 127.0.0.1 speaking the REST API (wc/v3), so the order and catalog sources run for real.

It serves the routes kefu reads, with WooCommerce's shapes and error bodies, and authenticates the
way `WC_REST_Authentication` does: over TLS the key and secret as Basic auth or as the
`consumer_key`/`consumer_secret` query parameters; over plain HTTP only an OAuth 1.0a signature
(checked as WooCommerce checks it, timestamp window and nonce included)::

    async with FakeWooCommerce() as shop:
        shop.add_order(id=1234, status="completed", tracking=[tracking_item("DHL", "00340434161094042557")])
        orders = WooCommerceOrders(base_url=shop.url, consumer_key=shop.consumer_key,
                                   consumer_secret=shop.consumer_secret)

The catalog: `add_product` and `add_variation` build products as `GET /products` shows them;
the list pages with `page`/`per_page` and the X-WP-Total(Pages) headers, filters by `status` and by
`modified_after` (against the site's local time unless `dates_are_gmt`, as WooCommerce does), and
`GET /data/currencies/current` gives `currency`.

Pass `ssl_context` (see `self_signed_tls`) to serve https://. Failures a proxy or host in front
of WordPress produces (429, 5xx, redirects, slowness) are scripted with `fail_next` and `delay_seconds`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import re
import ssl
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from loopback import LoopbackServer

JSONDict = dict[str, Any]
API = "/wp-json/wc/v3"
OAUTH_PARAMS = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature", "oauth_signature_method")
OAUTH_WINDOW_SECONDS = 15 * 60
PAID = frozenset({"processing", "completed", "refunded", "partial-shipped", "shipped", "delivered"})


@dataclass
class RecordedRequest:
    """One request the shop received: what was sent (to check the auth) and how it was answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    auth: str | None = None  # "basic", "query" or "oauth1" when the credentials were accepted
    status: int = 0


@dataclass
class ScriptedFailure:
    """An answer `fail_next` queued, given before WordPress runs (as a proxy or the host would)."""

    status: int
    body: str
    headers: dict[str, str]
    times: int
    path: str = ""  # only requests whose path ends with it; every request when empty


class ApiError(Exception):
    """A WordPress REST error: answered as {"code", "message", "data": {"status"}}."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def line_item(name: str, *, quantity: int = 1, price: str = "19.90", sku: str = "", product_id: int = 0,
              attributes: dict[str, str] | None = None, attributes_in_name: bool = True,
              extra_meta: list[JSONDict] | None = None) -> JSONDict:
    """A `line_items` entry. With `attributes` it is a variation: WooCommerce names it "Hoodie - Blue, L"
    (up to two attributes) and leaves that meta unformatted, or names it "Hoodie" and gives the meta
    display_key/display_value."""
    meta: list[JSONDict] = [{"id": 0, "key": "_reduced_stock", "value": str(quantity),
                             "display_key": "_reduced_stock", "display_value": str(quantity)}]
    for label, value in (attributes or {}).items():
        key, slug = "pa_" + label.lower().replace(" ", "-"), value.lower().replace(" ", "-")
        shown = (key, slug) if attributes_in_name else (label, value)
        meta.append({"id": 0, "key": key, "value": slug, "display_key": shown[0], "display_value": shown[1]})
    meta.extend(extra_meta or [])
    variation = bool(attributes)
    total = f"{float(price) * quantity:.2f}"
    return {
        "id": 0, "name": f"{name} - {', '.join(attributes.values())}" if variation and attributes_in_name else name,
        "product_id": product_id or 90, "variation_id": 101 if variation else 0, "quantity": quantity,
        "tax_class": "", "subtotal": total, "subtotal_tax": "0.00", "total": total, "total_tax": "0.00",
        "taxes": [], "meta_data": meta, "sku": sku or None, "price": float(price),
        "image": {"id": "", "src": ""}, "parent_name": name if variation else None,
    }


def tracking_item(provider: str, number: str, *, link: str = "", custom: bool = True,
                  shipped: datetime | None = None) -> JSONDict:
    """One Shipment Tracking entry as the extension stores it (date_shipped: a Unix timestamp string)."""
    when = shipped or datetime(2026, 11, 29, tzinfo=timezone.utc)
    return {
        "tracking_provider": "" if custom else provider,
        "custom_tracking_provider": provider if custom else "",
        "custom_tracking_link": link,
        "tracking_number": number,
        "date_shipped": str(int(when.timestamp())),
        "tracking_id": hashlib.md5(f"{provider}-{number}".encode()).hexdigest(),
    }


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for 127.0.0.1 made with the openssl command: (server context, client context trusting it)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def _php_rawurlencode(value: str) -> str:
    return quote(value, safe="~")


def _wp_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _slug(text: str) -> str:
    """sanitize_title(), near enough for ASCII names."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _term(term_id: int, name: str) -> JSONDict:
    """A category or tag of a product; WordPress stores (and the API returns) the name with & escaped."""
    return {"id": term_id, "name": name.replace("&", "&amp;"), "slug": _slug(name)}


def _image(image_id: int, src: str, created_gmt: datetime, offset: timedelta) -> JSONDict:
    return {"id": image_id, "date_created": _wp_date(created_gmt + offset), "date_created_gmt": _wp_date(created_gmt),
            "date_modified": _wp_date(created_gmt + offset), "date_modified_gmt": _wp_date(created_gmt),
            "src": src, "name": src.rsplit("/", 1)[-1].rsplit(".", 1)[0], "alt": ""}


def _price_html(price: str) -> str:
    if not price:
        return ""
    return (f'<span class="woocommerce-Price-amount amount"><bdi>{price}&nbsp;<span '
            f'class="woocommerce-Price-currencySymbol">&euro;</span></bdi></span>')


def _wp_bool(value: str) -> bool | None:
    """rest_sanitize_boolean() of a query parameter; None for what rest_validate_request_arg refuses."""
    return {"true": True, "1": True, "false": False, "0": False, "": False}.get(value.lower())


# get_woocommerce_currencies() and get_woocommerce_currency_symbol() for the codes tests use
CURRENCIES = {"EUR": ("Euro", "&euro;"), "USD": ("United States (US) dollar", "&#36;"),
              "GBP": ("Pound sterling", "&pound;"), "JPY": ("Japanese yen", "&yen;")}
PRODUCT_STATUSES = frozenset({"any", "future", "trash", "draft", "pending", "private", "publish"})


class FakeWooCommerce(LoopbackServer):
    """A per-test WooCommerce shop; every instance owns its orders, key, request log and failures."""

    def __init__(self, consumer_key: str = "ck_2f1d0c7e5b3a49e8a6c4b2d0e8f6a4c2b0d8e6f4",
                 consumer_secret: str = "cs_9e7c5a3f1d0b8e6c4a2f0d8b6e4c2a0f8d6b4e2c", *,
                 key_permissions: str = "read", user_can_read_orders: bool = True,
                 ssl_context: ssl.SSLContext | None = None, site_utc_offset_hours: int = 1,
                 shutdown_timeout: float = 2.0, user_can_read_products: bool = True,
                 user_can_manage_woocommerce: bool = True, currency: str = "EUR") -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.key_permissions = key_permissions  # "read", "write" or "read_write", as the merchant chose
        self.user_can_read_orders = user_can_read_orders  # the key's WordPress user has read_shop_order
        self.user_can_read_products = user_can_read_products  # ... has read_private_products
        self.user_can_manage_woocommerce = user_can_manage_woocommerce  # ... has manage_woocommerce (data/*)
        self.currency = currency  # the woocommerce_currency option
        self.delay_seconds = 0.0
        self.orders: dict[int, JSONDict] = {}
        self.products: dict[int, JSONDict] = {}
        self.variations: dict[int, dict[int, JSONDict]] = {}  # product ID → variation ID → variation
        self.requests: list[RecordedRequest] = []
        self.ssl_context = ssl_context
        self._offset = timedelta(hours=site_utc_offset_hours)
        self.shutdown_timeout = shutdown_timeout
        self._failures: list[ScriptedFailure] = []
        self._nonces: set[str] = set()
        self._item_ids = itertools.count(301)
        self._variation_ids = itertools.count(9001)
        self._stopping = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(API + "/orders/{id:[0-9]+}", self._handle)
        app.router.add_get(API + "/orders", self._handle)
        app.router.add_get(API + "/products", self._handle, name="products")
        app.router.add_get(API + "/products/{product_id:[0-9]+}/variations", self._handle, name="variations")
        app.router.add_get(API + "/data/currencies/current", self._handle, name="currency")
        app.router.add_route("*", "/{tail:.*}", self._handle)

    def release_waiters(self) -> None:
        """Wake slowed requests first, so shutting down never waits out `delay_seconds`."""
        self._stopping.set()

    @property
    def url(self) -> str:
        """The site's home URL, what a merchant gives kefu as base_url."""
        return super().url

    # -- orders and scripts ------------------------------------------------------------------------

    def add_order(self, *, id: int, number: str | None = None, status: str = "processing",  # noqa: A002
                  currency: str = "EUR", created: datetime | None = None, email: str = "ana@example.com",
                  phone: str = "+49 151 2345678", billing_postcode: str = "10115", shipping_postcode: str = "10115",
                  customer_id: int = 0, items: list[JSONDict] | None = None, tracking: list[JSONDict] | None = None,
                  meta: list[JSONDict] | None = None, shipping_total: str = "4.95", paid: bool | None = None
                  ) -> JSONDict:
        """Store and return an order as `GET /orders/<id>` shows it. A `number` other than the ID is kept
        in `_order_number` meta, where numbering plugins keep it and make it searchable. `paid` defaults
        to what the status says."""
        created_gmt = created or datetime(2026, 11, 28, 10, 15, tzinfo=timezone.utc)
        lines = [dict(item, id=next(self._item_ids)) for item in (items or [line_item("Rain jacket", sku="RJ-1")])]
        total = sum(float(item["total"]) for item in lines) + float(shipping_total)
        meta_data = [{"id": 1001, "key": "is_vat_exempt", "value": "no"}]
        if number is not None and number != str(id):
            meta_data.append({"id": 1002, "key": "_order_number", "value": number})
        if tracking is not None:
            meta_data.append({"id": 1003, "key": "_wc_shipment_tracking_items", "value": tracking})
        meta_data.extend(meta or [])
        paid_at = (status in PAID) if paid is None else paid
        paid = _wp_date(created_gmt + timedelta(minutes=2)) if paid_at else None
        order: JSONDict = {
            "id": id, "parent_id": 0, "number": number or str(id), "order_key": f"wc_order_{id:x}abc",
            "created_via": "checkout", "version": "9.4.2", "status": status, "currency": currency,
            "date_created": _wp_date(created_gmt + self._offset), "date_created_gmt": _wp_date(created_gmt),
            "date_modified": _wp_date(created_gmt + self._offset + timedelta(hours=3)),
            "date_modified_gmt": _wp_date(created_gmt + timedelta(hours=3)),
            "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": shipping_total, "shipping_tax": "0.00",
            "cart_tax": "0.00", "total": f"{total:.2f}", "total_tax": "0.00", "prices_include_tax": True,
            "customer_id": customer_id, "customer_ip_address": "203.0.113.7", "customer_user_agent": "Mozilla/5.0",
            "customer_note": "", "billing": {
                "first_name": "Ana", "last_name": "Schmidt", "company": "", "address_1": "Torstraße 1",
                "address_2": "", "city": "Berlin", "state": "", "postcode": billing_postcode, "country": "DE",
                "email": email, "phone": phone},
            "shipping": {
                "first_name": "Ana", "last_name": "Schmidt", "company": "", "address_1": "Torstraße 1",
                "address_2": "", "city": "Berlin", "state": "", "postcode": shipping_postcode, "country": "DE",
                "phone": ""},
            "payment_method": "stripe" if paid else "bacs",
            "payment_method_title": "Credit card" if paid else "Direct bank transfer",
            "transaction_id": f"pi_{id}" if paid else "", "date_paid": paid, "date_paid_gmt": paid,
            "date_completed": None, "date_completed_gmt": None, "cart_hash": "9b1c0e", "meta_data": meta_data,
            "line_items": lines, "tax_lines": [], "shipping_lines": [{
                "id": next(self._item_ids), "method_title": "Flat rate", "method_id": "flat_rate",
                "instance_id": "1", "total": shipping_total, "total_tax": "0.00", "taxes": [], "meta_data": []}],
            "fee_lines": [], "coupon_lines": [], "refunds": [], "currency_symbol": "€",
            "payment_url": f"{self._url or ''}/checkout/order-pay/{id}/?pay_for_order=true",
            "is_editable": status in ("pending", "on-hold"), "needs_payment": status in ("pending", "failed"),
            "needs_processing": True,
        }
        self.orders[id] = order
        return order

    # -- catalog -----------------------------------------------------------------------------------

    def add_product(self, *, id: int, name: str, type: str = "simple", status: str = "publish",  # noqa: A002
                    price: str = "19.90", regular_price: str | None = None, sku: str = "",
                    description: str = "", short_description: str = "", categories: list[str] | None = None,
                    tags: list[str] | None = None, images: list[str] | None = None, manage_stock: bool = False,
                    stock_quantity: int | None = None, stock_status: str = "instock", purchasable: bool | None = None,
                    catalog_visibility: str = "visible", modified: datetime | None = None) -> JSONDict:
        """Store and return a product as `GET /products` shows it. A "variable" product starts without
        price, attributes or variations; `add_variation` fills them in as WooCommerce syncs a parent.
        `categories` default to WooCommerce's own "Uncategorized"; `images` to one picture."""
        modified_gmt = modified or datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
        created_gmt = modified_gmt - timedelta(days=30)
        slug = _slug(name)
        variable = type == "variable"
        own_price = "" if variable else price
        pictures = [f"{self._url or 'http://shop.example'}/wp-content/uploads/2026/10/{slug}.jpg"] if images is None \
            else images
        product: JSONDict = {
            "id": id, "name": name, "slug": slug, "permalink": f"{self._url or 'http://shop.example'}/product/{slug}/",
            "date_created": _wp_date(created_gmt + self._offset), "date_created_gmt": _wp_date(created_gmt),
            "date_modified": _wp_date(modified_gmt + self._offset), "date_modified_gmt": _wp_date(modified_gmt),
            "type": type, "status": status, "featured": False, "catalog_visibility": catalog_visibility,
            "description": description, "short_description": short_description, "sku": sku,
            "price": own_price, "regular_price": "" if variable else (regular_price or price), "sale_price": "",
            "date_on_sale_from": None, "date_on_sale_from_gmt": None, "date_on_sale_to": None,
            "date_on_sale_to_gmt": None, "price_html": _price_html(own_price), "on_sale": False,
            "purchasable": (own_price != "" and type != "external") if purchasable is None else purchasable,
            "total_sales": 0, "virtual": False, "downloadable": False, "downloads": [], "download_limit": -1,
            "download_expiry": -1, "external_url": "", "button_text": "", "tax_status": "taxable", "tax_class": "",
            "manage_stock": manage_stock, "stock_quantity": stock_quantity if manage_stock else None,
            "stock_status": stock_status, "backorders": "no", "backorders_allowed": False,
            "backordered": stock_status == "onbackorder", "low_stock_amount": None, "sold_individually": False,
            "weight": "", "dimensions": {"length": "", "width": "", "height": ""}, "shipping_required": True,
            "shipping_taxable": True, "shipping_class": "", "shipping_class_id": 0, "reviews_allowed": True,
            "average_rating": "0.00", "rating_count": 0, "upsell_ids": [], "cross_sell_ids": [], "parent_id": 0,
            "purchase_note": "",
            "categories": [_term(15 + n, label) for n, label in enumerate(categories or ["Uncategorized"])],
            "tags": [_term(40 + n, label) for n, label in enumerate(tags or [])],
            "images": [_image(700 + n, src, created_gmt, self._offset) for n, src in enumerate(pictures)],
            "attributes": [], "default_attributes": [], "variations": [], "grouped_products": [], "menu_order": 0,
            "related_ids": [], "meta_data": [],
        }
        self.products[id] = product
        if variable:
            self.variations[id] = {}
        return product

    def add_variation(self, product_id: int, *, attributes: dict[str, str], price: str = "19.90", sku: str = "",
                      manage_stock: bool | str = False, stock_quantity: int | None = None,
                      stock_status: str = "instock", status: str = "publish", purchasable: bool | None = None,
                      id: int | None = None) -> JSONDict:  # noqa: A002
        """Store and return a variation of a variable product as `GET /products/<id>/variations` shows it.

        `attributes` maps the attribute's label ("Size", or a raw taxonomy name) to the option. A
        "parent" `manage_stock` shares the product's stock: WooCommerce then reports the product's
        quantity. The product's price, attributes, stock status and `variations` follow, as its sync does."""
        parent = self.products[product_id]
        variation_id = id if id is not None else next(self._variation_ids)
        query = "&".join(f"attribute_pa_{_slug(label)}={_slug(option)}" for label, option in attributes.items())
        quantity = parent["stock_quantity"] if manage_stock == "parent" else stock_quantity
        variation: JSONDict = {
            "id": variation_id, "date_created": parent["date_created"], "date_created_gmt": parent["date_created_gmt"],
            "date_modified": parent["date_modified"], "date_modified_gmt": parent["date_modified_gmt"],
            "description": "", "permalink": f"{parent['permalink']}?{query}", "sku": sku, "price": price,
            "regular_price": price, "sale_price": "", "date_on_sale_from": None, "date_on_sale_from_gmt": None,
            "date_on_sale_to": None, "date_on_sale_to_gmt": None, "on_sale": False, "status": status,
            "purchasable": (status == "publish" and price != "") if purchasable is None else purchasable,
            "virtual": False, "downloadable": False, "downloads": [], "download_limit": -1, "download_expiry": -1,
            "tax_status": "taxable", "tax_class": "", "manage_stock": manage_stock,
            "stock_quantity": quantity if manage_stock else None, "stock_status": stock_status, "backorders": "no",
            "backorders_allowed": False, "backordered": stock_status == "onbackorder", "low_stock_amount": None,
            "weight": "", "dimensions": {"length": "", "width": "", "height": ""}, "shipping_class": "",
            "shipping_class_id": 0, "image": None,
            "attributes": [{"id": n + 1, "name": label, "option": option}
                           for n, (label, option) in enumerate(attributes.items())],
            "menu_order": 0, "meta_data": [],
        }
        self.variations[product_id][variation_id] = variation
        self._sync_parent(parent, attributes)
        return variation

    def _sync_parent(self, parent: JSONDict, attributes: dict[str, str]) -> None:
        """What WC_Product_Variable::sync keeps on the parent: the lowest price, the children's stock status."""
        children = list(self.variations[parent["id"]].values())
        parent["variations"] = [child["id"] for child in children]
        prices = sorted((float(child["price"]), child["price"]) for child in children
                        if child["status"] == "publish" and child["price"])
        parent["price"] = prices[0][1] if prices else ""
        parent["price_html"] = _price_html(parent["price"])
        parent["purchasable"] = bool(prices)
        parent["stock_status"] = "instock" if any(child["stock_status"] == "instock" for child in children) \
            else "outofstock"
        known = {attribute["name"]: attribute for attribute in parent["attributes"]}
        for label, option in attributes.items():
            entry = known.setdefault(label, {"id": len(known) + 1, "name": label, "position": len(known),
                                             "visible": True, "variation": True, "options": []})
            if option not in entry["options"]:
                entry["options"].append(option)
        parent["attributes"] = list(known.values())

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None, body: str | None = None,
                  headers: dict[str, str] | None = None, path: str = "") -> None:
        """Answer the next `times` requests with `status` before WordPress runs (a WAF, the host, PHP dying);
        with `path`, only the next requests whose path ends with it."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        if body is None:
            body = (json.dumps({"code": "internal_server_error", "message": "<p>There has been a critical error on "
                                "this website.</p>", "data": {"status": 500}, "additional_errors": []})
                    if status == 500 else f"<html><head><title>{status}</title></head><body>{status}</body></html>")
        self._failures.append(ScriptedFailure(status, body, extra, times, path))

    def calls(self, path_suffix: str = "") -> list[RecordedRequest]:
        """Requests whose path ends with `path_suffix` (every request when empty)."""
        return [request for request in self.requests if request.path.endswith(path_suffix)]

    # -- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers))
        self.requests.append(record)
        if self.delay_seconds:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.delay_seconds)
            except asyncio.TimeoutError:
                pass
        response = self._scripted(request.path) or await self._serve(request, record)
        record.status = response.status
        return response

    def _scripted(self, path: str) -> web.Response | None:
        failure = next((failure for failure in self._failures if path.endswith(failure.path)), None)
        if failure is None:
            return None
        failure.times -= 1
        if failure.times <= 0:
            self._failures = [queued for queued in self._failures if queued is not failure]
        content_type = "application/json" if failure.body.startswith("{") else "text/html"
        return web.Response(status=failure.status, text=failure.body, headers=failure.headers,
                            content_type=content_type)

    async def _serve(self, request: web.Request, record: RecordedRequest) -> web.Response:
        try:
            if not request.path.startswith("/wp-json/"):
                return web.Response(status=404, text="<html><body>Page not found</body></html>",
                                    content_type="text/html")
            if "tail" in request.match_info:
                raise ApiError(404, "rest_no_route", "No route was found matching the URL and request method.")
            record.auth = self._authenticate(request)
            catalog = self._catalog_route(request, record.auth)
            if catalog is not None:
                return catalog
            if "id" in request.match_info:
                return self._json(self._get_order(int(request.match_info["id"]), record.auth, request))
            orders, total = self._list_orders(record.auth, request)
            pages = max(1, math.ceil(total / int(request.query.get("per_page", "10"))))
            return self._json(orders, {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)})
        except ApiError as error:
            return self._json({"code": error.code, "message": error.message, "data": {"status": error.status}},
                              error.headers, status=error.status)

    @staticmethod
    def _json(data: Any, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(data), headers=headers,
                            content_type="application/json", charset="UTF-8")

    # -- authentication, as WC_REST_Authentication -------------------------------------------------

    def _authenticate(self, request: web.Request) -> str | None:
        """The accepted method, None for an anonymous request; ApiError for credentials that fail."""
        method = self._basic(request) if self.ssl_context else None
        if method is None:
            method = self._oauth(request)
        if method is not None and self.key_permissions not in ("read", "read_write"):
            raise ApiError(401, "woocommerce_rest_authentication_error",
                           "The API key provided does not have read permissions.")
        return method

    def _basic(self, request: web.Request) -> str | None:
        key, secret, method = request.query.get("consumer_key", ""), request.query.get("consumer_secret", ""), "query"
        if not (key and secret):
            key, secret, method = *self._basic_header(request), "basic"
        if not (key and secret) or key != self.consumer_key:
            return None  # an unknown key is no error here: WooCommerce goes on to OAuth, then anonymous
        if not hmac.compare_digest(secret, self.consumer_secret):
            raise ApiError(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.",
                           {"WWW-Authenticate": 'Basic realm="WooCommerce API. Use a consumer key in the username '
                                                'field and a consumer secret in the password field."'})
        return method

    @staticmethod
    def _basic_header(request: web.Request) -> tuple[str, str]:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return "", ""
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return user, password

    def _oauth(self, request: web.Request) -> str | None:
        params = dict(request.query)
        missing = [name for name in OAUTH_PARAMS if not params.get(name)]
        if len(missing) == len(OAUTH_PARAMS):
            return None
        if missing:
            raise ApiError(401, "woocommerce_rest_authentication_missing_parameter",
                           f"Missing OAuth parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if params["oauth_consumer_key"] != self.consumer_key:
            raise ApiError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not hmac.compare_digest(self._oauth_signature(request, params), params["oauth_signature"].replace(" ", "+")):
            raise ApiError(401, "woocommerce_rest_authentication_error",
                           "Invalid signature - provided signature does not match.")
        timestamp = int(params["oauth_timestamp"]) if params["oauth_timestamp"].isdigit() else 0
        if abs(time.time() - timestamp) > OAUTH_WINDOW_SECONDS:
            raise ApiError(401, "woocommerce_rest_authentication_error", "Invalid timestamp.")
        if params["oauth_nonce"] in self._nonces:
            raise ApiError(401, "woocommerce_rest_authentication_error", "Invalid nonce - nonce has already been used.")
        self._nonces.add(params["oauth_nonce"])
        return "oauth1"

    def _oauth_signature(self, request: web.Request, params: dict[str, str]) -> str:
        """check_oauth_signature(), step by step: sort by key, encode keys and values, encode each "k=v"
        again and join with %26, sign METHOD&home-url-with-path&that with HMAC and the secret plus "&"."""
        method = params.get("oauth_signature_method", "")
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            raise ApiError(401, "woocommerce_rest_authentication_error",
                           "Invalid signature - signature method is invalid.")
        unsigned = {key: value for key, value in sorted(params.items()) if key != "oauth_signature"}
        normalized = [_php_rawurlencode(f"{_php_rawurlencode(k)}={_php_rawurlencode(v)}") for k, v in unsigned.items()]
        string_to_sign = f"{request.method}&{_php_rawurlencode(self.url + request.path)}&{'%26'.join(normalized)}"
        digest = hmac.new(f"{self.consumer_secret}&".encode(), string_to_sign.encode(),
                          hashlib.sha256 if method == "HMAC-SHA256" else hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def _can_read(self, auth: str | None, message: str, capable: bool | None = None) -> None:
        """The route's permission check: anonymous is 401, a user without the capability (by default
        read_shop_order) 403, as rest_authorization_required_code() answers."""
        if auth is None:
            raise ApiError(401, "woocommerce_rest_cannot_view", message)
        if not (self.user_can_read_orders if capable is None else capable):
            raise ApiError(403, "woocommerce_rest_cannot_view", message)

    # -- routes ------------------------------------------------------------------------------------

    def _get_order(self, order_id: int, auth: str | None, request: web.Request) -> JSONDict:
        self._can_read(auth, "Sorry, you cannot view this resource.")
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return self._shown(order, request)

    def _list_orders(self, auth: str | None, request: web.Request) -> tuple[list[JSONDict], int]:
        """`?search=` as wc_order_search(): the order ID, and a LIKE over the address indexes, the email,
        item names and (with a numbering plugin) `_order_number`; status "any" leaves the trash out."""
        self._can_read(auth, "Sorry, you cannot list resources.")
        per_page, page = request.query.get("per_page", "10"), request.query.get("page", "1")
        if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
            raise ApiError(400, "rest_invalid_param", "Invalid parameter(s): per_page")
        term = request.query.get("search", "").strip().casefold()
        found = [order for order in self.orders.values() if order["status"] != "trash"
                 and (not term or self._matches(order, term))]
        found.sort(key=lambda order: order["date_created_gmt"], reverse=True)
        start = (int(page) - 1) * int(per_page) if page.isdigit() and int(page) > 0 else 0
        return [self._shown(order, request) for order in found[start:start + int(per_page)]], len(found)

    @staticmethod
    def _matches(order: JSONDict, term: str) -> bool:
        if term.isdigit() and int(term) == order["id"]:
            return True
        fields = [*order["billing"].values(), *order["shipping"].values(),
                  *(item["name"] for item in order["line_items"]),
                  *(meta["value"] for meta in order["meta_data"] if meta["key"] == "_order_number")]
        return any(term in str(value).casefold() for value in fields)

    @staticmethod
    def _shown(order: JSONDict, request: web.Request) -> JSONDict:
        """The order with `include_meta` applied to its meta_data, as WooCommerce 8.9+ does."""
        include = [key for key in request.query.get("include_meta", "").split(",") if key]
        if not include:
            return order
        return {**order, "meta_data": [meta for meta in order["meta_data"] if meta["key"] in include]}

    # -- catalog routes ----------------------------------------------------------------------------

    def _catalog_route(self, request: web.Request, auth: str | None) -> web.Response | None:
        """The products, variations and currency routes; None for the others (the orders')."""
        route = request.match_info.route.name
        if route == "products":
            self._can_read(auth, "Sorry, you cannot list resources.", self.user_can_read_products)
            return self._page_of(self._list_products(request), request)
        if route == "variations":
            self._can_read(auth, "Sorry, you cannot list resources.", self.user_can_read_products)
            children = self.variations.get(int(request.match_info["product_id"]), {})
            return self._page_of(self._ordered(list(children.values()), request), request)
        if route == "currency":  # WC_REST_Data_Controller: wc_rest_check_manager_permissions('settings', 'read')
            self._can_read(auth, "Sorry, you cannot view this resource.", self.user_can_manage_woocommerce)
            name, symbol = CURRENCIES.get(self.currency, (self.currency, self.currency))
            return self._json({"code": self.currency, "name": name, "symbol": symbol, "_links": {
                "self": [{"href": f"{self.url}{API}/data/currencies/{self.currency}"}],
                "collection": [{"href": f"{self.url}{API}/data/currencies"}]}})
        return None

    def _list_products(self, request: web.Request) -> list[JSONDict]:
        """`status` (default "any": all but the trash) and `modified_after`, compared with
        date_modified_gmt when `dates_are_gmt` is true, else with the site's local date_modified
        (WC_REST_CRUD_Controller::prepare_objects_query)."""
        status = request.query.get("status", "any")
        if status not in PRODUCT_STATUSES:
            raise ApiError(400, "rest_invalid_param", "Invalid parameter(s): status")
        gmt = _wp_bool(request.query.get("dates_are_gmt", ""))
        if gmt is None:
            raise ApiError(400, "rest_invalid_param", "Invalid parameter(s): dates_are_gmt")
        after = self._date_param(request, "modified_after")
        column = "date_modified_gmt" if gmt else "date_modified"
        found = [product for product in self.products.values()
                 if (product["status"] != "trash" if status == "any" else product["status"] == status)
                 and (after is None or datetime.fromisoformat(product[column]) > after)]
        return self._ordered(found, request)

    @staticmethod
    def _date_param(request: web.Request, name: str) -> datetime | None:
        """A date-time parameter as rest_parse_date() validates it; the zone, if any, is not used (the
        date_query compares the bare date with the column)."""
        value = request.query.get(name)
        if value is None:
            return None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}(?::?\d{2})?)?", value):
            raise ApiError(400, "rest_invalid_param", f"Invalid parameter(s): {name}")
        return datetime.fromisoformat(value[:19].replace("t", "T").replace(" ", "T"))

    @staticmethod
    def _ordered(records: list[JSONDict], request: web.Request) -> list[JSONDict]:
        """`orderby` (date, id, modified, title, slug; default date) and `order` (default desc), ID breaking ties."""
        keys = {"date": "date_created_gmt", "id": "id", "modified": "date_modified_gmt", "title": "name",
                "slug": "slug"}
        orderby, order = request.query.get("orderby", "date"), request.query.get("order", "desc")
        if orderby not in keys:
            raise ApiError(400, "rest_invalid_param", "Invalid parameter(s): orderby")
        if order not in ("asc", "desc"):
            raise ApiError(400, "rest_invalid_param", "Invalid parameter(s): order")
        field = keys[orderby]
        return sorted(records, key=lambda record: (record.get(field) or "", record["id"]) if field != "id"
                      else (record["id"],), reverse=order == "desc")

    def _page_of(self, records: list[JSONDict], request: web.Request) -> web.Response:
        """One page of a collection with WC_REST_CRUD_Controller::get_items' headers; a page past the
        end is an empty list (not WordPress core's 400)."""
        per_page, page = request.query.get("per_page", "10"), request.query.get("page", "1")
        if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
            raise ApiError(400, "rest_invalid_param", "Invalid parameter(s): per_page")
        if not page.isdigit() or int(page) < 1:
            raise ApiError(400, "rest_invalid_param", "Invalid parameter(s): page")
        size, number = int(per_page), int(page)
        pages = math.ceil(len(records) / size)
        headers = {"X-WP-Total": str(len(records)), "X-WP-TotalPages": str(pages)}
        if number < pages:
            headers["Link"] = f'<{request.url.update_query(page=str(number + 1))}>; rel="next"'
        return self._json(records[(number - 1) * size:number * size], headers)
