"""A WooCommerce shop's catalog from its REST API (wc/v3), read-only, with the same Read key as the orders.

Authentication is the orders source's (`commerce.sources.woocommerce`): HTTP Basic over
``https://``, the ``consumer_key``/``consumer_secret`` query parameters with
``query_string_auth=True``, and an OAuth 1.0a signature over plain ``http://``.

What is read, and why this way:

* ``GET /products?status=publish&orderby=id&order=asc&per_page=&page=``, paged by the
  ``X-WP-Total``/``X-WP-TotalPages`` headers (by item count when a proxy strips them). Ordered by
  ID so that a product published while kefu pages is appended at the end instead of shifting
  every later page (the default order, newest first, would skip or repeat one). Bounded at
  `MAX_PAGES` pages: a runaway (a plugin ignoring ``page``) must not read forever.
* ``modified_after`` (WooCommerce 5.8+, with ``dates_are_gmt=true``, 5.4+) for an incremental
  read. Without ``dates_are_gmt`` WooCommerce compares with ``post_modified``, the site's local
  time, so a UTC instant would be off by the site's offset. The date goes without a zone (the
  API ignores one). An older WooCommerce ignores the parameter and sends everything, so the
  answer is filtered again by ``date_modified_gmt`` here. WooCommerce does not move a product's
  modified date when an order lowers its stock (woocommerce#40060): an incremental read misses
  stock-only changes, and the caller still needs a full read now and then.
* ``GET /products/<id>/variations`` for each product that lists variation IDs (``variable``,
  and extensions' types such as ``variable-subscription``); a disabled variation (status
  ``private``) is not offered in the shop and is left out. A product of another type is its own
  single variant.
* ``GET /data/currencies/current`` for the currency: product prices carry none. That route needs
  the ``manage_woocommerce`` capability while products need only ``read_private_products``; a
  key whose user lacks it gets prices without a currency (and a warning), not no catalog.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

import aiohttp

from commerce.products import CatalogUnavailable, Product, Variant
from commerce.sources.woocommerce import MAX_RETRY_AFTER_SECONDS, WooClient, _error_code, _gmt, _retry_after, _text

log = logging.getLogger(__name__)

MAX_PAGES = 200  # 20,000 products at 100 a page: beyond that something loops, or the shop is not for a bot
MAX_PER_PAGE = 100  # WooCommerce refuses a larger per_page (rest_invalid_param)
VARIATION_READS_AT_ONCE = 4  # a shop's WordPress is often one small PHP host; kefu must not be its load
AVAILABLE_STOCK = frozenset({"instock", "onbackorder"})
OPTION_NAMES = {"colour": "color"}  # one key for the same option, whatever the merchant called it
UNCATEGORIZED = "uncategorized"  # WooCommerce's default category: says nothing about the product
BLOCK_TAGS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "blockquote",
                        "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "hr"})
# Page builders' shortcodes ([vc_row], [et_pb_text …]) that WordPress leaves in a description when
# the builder does not render it for the REST API; a plain word in brackets has no underscore.
BUILDER_SHORTCODE = re.compile(r"\[/?[a-z]+_[a-z0-9_-]*(?:\s[^\]]*)?\]")


class WooCommerceCatalog:
    """A CatalogSource over one WooCommerce shop; see the module docstring for what it reads."""

    name = "woocommerce"

    def __init__(self, *, base_url: str, consumer_key: str, consumer_secret: str, timeout_seconds: float = 10.0,
                 per_page: int = 100, session: aiohttp.ClientSession | None = None,
                 query_string_auth: bool = False):
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE} (WooCommerce's limit), got {per_page}")
        self._client = WooClient(base_url=base_url, consumer_key=consumer_key, consumer_secret=consumer_secret,
                                 timeout_seconds=timeout_seconds, session=session,
                                 query_string_auth=query_string_auth, name=self.name, error=CatalogUnavailable,
                                 log_prefix="catalog")
        self._per_page = per_page

    async def products(self, changed_since: datetime | None = None) -> list[Product]:
        """Every published product, or those modified after `changed_since`; CatalogUnavailable otherwise."""
        since = _utc_seconds(changed_since) if changed_since is not None else None
        currency = await self._currency()
        query = {"status": "publish", "orderby": "id", "order": "asc"}
        if since is not None:
            query |= {"modified_after": since.strftime("%Y-%m-%dT%H:%M:%S"), "dates_are_gmt": "true"}
        records = _unique(await self._all_pages("/products", query))
        wanted = [record for record in records if _listed(record) and _changed(record, since)]
        variations = await self._variations_of(wanted)
        return [product_from_woo(record, variations.get(_text(record.get("id")), ()), currency)
                for record in wanted]

    async def close(self) -> None:
        await self._client.close()

    # -- what is read ------------------------------------------------------------------------------

    async def _currency(self) -> str:
        """The store currency's ISO code; "" when the key may not read it (see the module docstring)."""
        status, headers, body = await self._get("/data/currencies/current", {})
        code = _error_code(body)
        if (status, code) in ((403, "woocommerce_rest_cannot_view"), (404, "rest_no_route")):
            log.warning("catalog.woocommerce_no_currency status=%d code=%s: prices are read without a currency "
                        "(the key's user needs the manage_woocommerce capability; the route needs WooCommerce "
                        "3.5+)", status, code)
            return ""
        data = self._client.decode(status, headers, body, missing_is_none=False)
        return (_text(data.get("code")) if isinstance(data, dict) else "").upper()

    async def _variations_of(self, records: list[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
        """The enabled variations of each product that has some, a few products at a time."""
        parents = [_text(record.get("id")) for record in records if _list(record.get("variations"))]
        gate = asyncio.Semaphore(VARIATION_READS_AT_ONCE)

        async def read(product_id: str) -> list[Mapping[str, Any]]:
            async with gate:
                found = await self._all_pages(f"/products/{product_id}/variations", {"orderby": "id", "order": "asc"})
            return [v for v in _unique(found) if _text(v.get("status")) in ("", "publish")]

        tasks = {product_id: asyncio.create_task(read(product_id)) for product_id in parents if product_id}
        try:
            await asyncio.gather(*tasks.values())
        except BaseException:  # the first failure is the answer: the other reads are cancelled, then it is raised
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        return {product_id: task.result() for product_id, task in tasks.items()}

    async def _all_pages(self, path: str, params: dict[str, str]) -> list[Any]:
        """Every item of a collection, page after page, until the last page or `MAX_PAGES`."""
        items: list[Any] = []
        page = 1
        while True:
            status, headers, body = await self._get(path, {**params, "per_page": str(self._per_page),
                                                             "page": str(page)})
            batch = self._client.decode(status, headers, body, missing_is_none=False)
            if not isinstance(batch, list):
                raise CatalogUnavailable(self.name, f"the answer to {path} is not a JSON list")
            items.extend(batch)
            if _last_page(page, headers.get("X-WP-TotalPages"), len(batch), self._per_page):
                return items
            if page >= MAX_PAGES:
                log.warning("catalog.woocommerce_truncated path=%s pages=%d total=%s: stopped reading; the rest "
                            "of the catalog is left out", path, page, headers.get("X-WP-Total", "?"))
                return items
            page += 1

    # -- HTTP ------------------------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        """One GET, and one more after a short 429 Retry-After; a longer throttle is the caller's answer."""
        url = self._client.api + path
        status, headers, body = await self._client.send(url, params)
        if status == 429:
            wait = _retry_after(headers.get("Retry-After"))
            if wait is not None and wait <= MAX_RETRY_AFTER_SECONDS:
                await asyncio.sleep(wait)
                status, headers, body = await self._client.send(url, params)
        return status, headers, body


# -- mapping (pure) ------------------------------------------------------------------------------


def product_from_woo(data: Mapping[str, Any], variations: Iterable[Mapping[str, Any]] = (),
                     currency: str = "") -> Product:
    """kefu's Product from a wc/v3 product and its variations; a product without variations is its own variant."""
    product_id = _text(data.get("id"))
    if _list(data.get("variations")):
        variants = tuple(_variant(variation, currency) for variation in variations)
    else:
        variants = (_variant(data, currency, own_id=product_id),)
    short, long = plain_text(_raw(data.get("short_description"))), plain_text(_raw(data.get("description")))
    return Product(
        id=product_id,
        title=html.unescape(_text(data.get("name"))),
        description=short or long,
        url=_text(data.get("permalink")),
        image_url=_first_image(data.get("images")),
        category=next((name for name, slug in _terms(data.get("categories")) if slug != UNCATEGORIZED), ""),
        tags=tuple(name for name, _ in _terms(data.get("tags"))),
        variants=variants,
        language="en",
        updated_at=_gmt(data.get("date_modified_gmt")),
    )


def _variant(data: Mapping[str, Any], currency: str, *, own_id: str = "") -> Variant:
    """A variation, or a simple product as the one version of itself (`own_id`: no options then)."""
    options = {} if own_id else _options(data.get("attributes"))
    return Variant(
        id=own_id or _text(data.get("id")),
        title=" / ".join(options.values()),
        options=options,
        price=_text(data.get("price")),
        currency=currency,
        stock=_stock(data),
        available=_text(data.get("stock_status")) in AVAILABLE_STOCK and data.get("purchasable", True) is not False,
        sku=_text(data.get("sku")),
    )


def _options(attributes: Any) -> dict[str, str]:
    """A variation's {name, option} pairs keyed as kefu knows them ("pa_size", "Size" → "size").

    WooCommerce leaves out an attribute the variation takes any value of ("Any Size")."""
    options: dict[str, str] = {}
    for attribute in _list(attributes):
        if not isinstance(attribute, Mapping):
            continue
        key, value = option_key(_text(attribute.get("name"))), html.unescape(_text(attribute.get("option")))
        if key and value:
            options[key] = value
    return options


def option_key(name: str) -> str:
    """An attribute's name as an option key: lower-case, without the "pa_" of a global attribute's taxonomy."""
    key = html.unescape(name).strip().lower()
    key = key.removeprefix("pa_")
    return OPTION_NAMES.get(key, key)


def _stock(data: Mapping[str, Any]) -> int | None:
    """Units on hand when the shop tracks them: manage_stock is true, or "parent" for a variation
    sharing its product's stock (WooCommerce then reports the product's quantity)."""
    managed = data.get("manage_stock")
    quantity = data.get("stock_quantity")
    if managed in (True, "parent") and isinstance(quantity, (int, float)) and not isinstance(quantity, bool):
        return int(quantity)
    return None


def plain_text(markup: str) -> str:
    """The text a shopper reads in a product description: tags, scripts and builder shortcodes out,
    entities decoded, one line per paragraph."""
    if not markup:
        return ""
    parser = _TextOnly()
    parser.feed(BUILDER_SHORTCODE.sub(" ", markup))
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


class _TextOnly(HTMLParser):
    """Collects text outside <script>/<style>, with a line break at each block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _listed(data: Mapping[str, Any]) -> bool:
    """Published and shown in the shop: a "hidden" product is one the merchant keeps off the catalog and search."""
    return isinstance(data, Mapping) and bool(_text(data.get("id"))) and data.get("catalog_visibility") != "hidden"


def _changed(data: Mapping[str, Any], since: datetime | None) -> bool:
    """Modified after `since` by its GMT date; kept when the date is missing (better read twice than never)."""
    if since is None:
        return True
    modified = _gmt(data.get("date_modified_gmt"))
    return modified is None or modified > since


def _last_page(page: int, total_pages: str | None, got: int, per_page: int) -> bool:
    """The headers say which page is last; without them, a short or empty page is."""
    text = (total_pages or "").strip()
    if text.isdigit():
        return page >= int(text) or got == 0
    return got < per_page


def _utc_seconds(when: datetime) -> datetime:
    """`when` in UTC to the second, as WooCommerce compares (a naive datetime is taken as UTC)."""
    aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).replace(microsecond=0)


def _unique(records: list[Any]) -> list[Mapping[str, Any]]:
    """Records in order, each ID once: a product edited while kefu pages can come back on a later page."""
    seen: set[str] = set()
    unique: list[Mapping[str, Any]] = []
    for record in records:
        key = _text(record.get("id")) if isinstance(record, Mapping) else ""
        if key and key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


def _terms(value: Any) -> list[tuple[str, str]]:
    """(name, slug) of categories or tags; WordPress stores term names HTML-escaped ("Hoodies &amp; Sweaters")."""
    return [(html.unescape(_text(term.get("name"))), _text(term.get("slug")))
            for term in _list(value) if isinstance(term, Mapping) and _text(term.get("name"))]


def _first_image(images: Any) -> str:
    first = next((image for image in _list(images) if isinstance(image, Mapping)), None)
    return _text(first.get("src")) if first is not None else ""


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
