"""The Shopify catalog source over real HTTP, against the fake Admin GraphQL endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone

import aiohttp
import pytest
from fake_shopify import FakeShopify, cursor_of, numeric_id, variant

from commerce.products import CatalogUnavailable, Product, Variant
from commerce.sources import shopify_products
from commerce.sources.shopify_products import (
    CATALOG_QUERY,
    ShopifyCatalog,
    search_query,
    short_id,
    variant_options,
)

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
VERSION = "2025-10"
SINCE = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.fixture
async def shop() -> AsyncIterator[FakeShopify]:
    async with FakeShopify(TOKEN, api_version=VERSION) as server:
        yield server


@pytest.fixture
async def make_source(shop: FakeShopify) -> AsyncIterator[Callable[..., ShopifyCatalog]]:
    """A catalog with test settings (small pages, short waits) or overrides, closed after the test."""
    made: list[ShopifyCatalog] = []

    def make(**overrides: object) -> ShopifyCatalog:
        settings: dict[str, object] = {"shop_url": shop.url, "token": TOKEN, "api_version": VERSION,
                                       "timeout_seconds": 2.0, "max_throttle_wait_seconds": 0.5, "page_size": 3,
                                       **overrides}
        made.append(ShopifyCatalog(**settings))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for catalog in made:
        await catalog.close()


@pytest.fixture
def source(make_source: Callable[..., ShopifyCatalog]) -> ShopifyCatalog:
    return make_source()


def ids(products: list[Product]) -> list[str]:
    return [product.id for product in products]


def short(node: dict) -> str:
    return str(numeric_id(node["id"]))


def firsts(shop: FakeShopify) -> list[int]:
    return [request.body["variables"]["first"] for request in shop.requests]


# -- paging ------------------------------------------------------------------------------------------------


async def test_every_page_is_read_following_the_end_cursor(shop, source):
    nodes = [shop.add_product(f"Product {n}") for n in range(7)]
    products = await source.products()
    assert ids(products) == [short(node) for node in nodes]
    assert len(shop.requests) == 3
    afters = [request.body["variables"]["after"] for request in shop.requests]
    assert afters == [None, cursor_of(nodes[2]), cursor_of(nodes[5])]
    assert all(after is None or not after.isdigit() for after in afters)  # opaque, not the product id
    assert firsts(shop) == [3, 3, 3]


async def test_an_empty_catalog_is_one_request_and_no_products(shop, source):
    assert await source.products() == []
    assert len(shop.requests) == 1


async def test_a_full_read_asks_only_for_active_products(shop, source):
    active = shop.add_product("Rain Jacket")
    shop.add_product("Next Season Parka", status="DRAFT")
    shop.add_product("Old Poncho", status="ARCHIVED")
    assert ids(await source.products()) == [short(active)]
    assert shop.requests[0].search == "status:active"


async def test_reading_stops_past_the_product_limit_and_warns(shop, make_source, monkeypatch, caplog):
    monkeypatch.setattr(shopify_products, "MAX_PRODUCTS", 4)
    for n in range(7):
        shop.add_product(f"Product {n}")
    with caplog.at_level(logging.WARNING, logger="commerce.sources.shopify_products"):
        products = await make_source(page_size=2).products()
    assert len(products) == 4 and len(shop.requests) == 2
    assert any("read_stopped" in record.getMessage() for record in caplog.records)


async def test_a_catalog_of_thousands_is_read_to_its_last_page(shop, make_source):
    for n in range(1_200):
        shop.add_product(f"Product {n}")
    assert len(await make_source(page_size=1).products()) == 1_200  # past the 1,000 pages an old limit allowed


async def test_a_page_over_shopifys_query_cost_limit_is_read_in_smaller_pages(shop, make_source):
    """50 variants a product make a page of 50 cost ~5,000 points; Shopify refuses over 1000."""
    for n in range(9):
        shop.add_product(f"Product {n}")
    catalog = make_source(page_size=50)
    assert len(await catalog.products()) == 9
    assert firsts(shop) == [50, 9]  # 50 × 1000 // 5303 = 9 products a page
    shop.requests.clear()
    assert len(await catalog.products()) == 9
    assert firsts(shop) == [9]  # the size that fits is kept


async def test_a_single_product_over_the_cost_limit_is_catalog_unavailable(shop, source):
    shop.add_product("Rain Jacket")
    shop.max_query_cost = 100
    with pytest.raises(CatalogUnavailable, match="one product costs"):
        await source.products()
    assert firsts(shop) == [3, 1]


# -- mapping -----------------------------------------------------------------------------------------------


async def test_a_product_maps_with_its_variants_options_stock_and_image(shop, source):
    node = shop.add_product(
        "Rain Jacket", description="Light and packable.\nSeams taped.", product_type="Jackets",
        vendor="Lantern Lane", tags=("rain", "outdoor"), updated_at="2026-11-28T10:15:00Z",
        variants=[variant("M / Navy", "59.90", options={"Size": "M", "Colour": "Navy"}, sku="RJ-M-NV",
                          inventory_quantity=4),
                  variant("L / Navy", "59.9", options={"Size": "L", "Colour": "Navy"}, sku="RJ-L-NV",
                          inventory_quantity=0)])
    (product,) = await source.products()
    first, second = node["variants"]["nodes"]
    assert product == Product(
        id=short(node), title="Rain Jacket", description="Light and packable. Seams taped.",
        url="https://lantern-lane.com/products/rain-jacket",
        image_url="https://cdn.shopify.com/s/files/1/0700/0001/files/rain-jacket.jpg",
        category="Jackets", tags=("outdoor", "rain"), vendor="Lantern Lane",
        variants=(Variant(id=short(first), title="M / Navy", options={"size": "M", "color": "Navy"},
                          price="59.90", currency="EUR", stock=4, available=True, sku="RJ-M-NV"),
                  Variant(id=short(second), title="L / Navy", options={"size": "L", "color": "Navy"},
                          price="59.90", currency="EUR", stock=0, available=False, sku="RJ-L-NV")),
        language="en", updated_at=datetime(2026, 11, 28, 10, 15, tzinfo=UTC))
    assert product.option_values("size") == ["M", "L"] and product.currency == "EUR"


async def test_stock_is_none_where_inventory_is_not_tracked_or_not_given(shop, source):
    shop.add_product("Gift Card", variants=[variant(price="25.00", tracked=False, inventory_quantity=0)])
    shop.add_product("Poster", variants=[variant(price="12.00", inventory_quantity=None,
                                                 available_for_sale=True)])
    gift_card, poster = await source.products()
    assert (gift_card.variants[0].stock, gift_card.variants[0].available) == (None, True)
    assert (poster.variants[0].stock, poster.variants[0].available) == (None, True)


async def test_shopifys_default_variant_has_no_title_and_no_options(shop, source):
    shop.add_product("Enamel Mug")
    (mug,) = await source.products()
    (only,) = mug.variants
    assert (only.title, dict(only.options), only.price) == ("", {}, "59.90")


async def test_an_unpublished_product_links_to_its_handle_and_may_have_no_image(shop, source):
    shop.add_product("Wool Socks", published=False, image=False)
    (socks,) = await source.products()
    assert socks.url == f"{shop.url}/products/wool-socks"
    assert socks.image_url == ""


async def test_prices_follow_the_shops_currency(make_source):
    async with FakeShopify(TOKEN, api_version=VERSION, currency="JPY") as yen_shop:
        yen_shop.add_product("Tenugui", variants=[variant(price="1500.0")])
        (towel,) = await make_source(shop_url=yen_shop.url).products()
    assert (towel.variants[0].price, towel.currency) == ("1500", "JPY")


async def test_a_product_with_more_variants_than_one_read_takes_keeps_the_first_ones(shop, source, caplog):
    shop.add_product("Poster", variants=[variant(f"Design {n}", options={"Design": str(n)}) for n in range(51)])
    with caplog.at_level(logging.INFO, logger="commerce.sources.shopify_products"):
        (poster,) = await source.products()
    assert len(poster.variants) == 50
    assert any("variants_truncated" in record.getMessage() for record in caplog.records)


async def test_a_node_that_cannot_be_read_is_left_out_and_the_rest_kept(shop, source, caplog):
    page = {"data": {"shop": {"currencyCode": "EUR"}, "products": {
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "nodes": [{"title": "No id"}, {"id": "gid://shopify/Product/1", "title": "Mug", "handle": "mug"}]}}}
    shop.answer_raw(json.dumps(page))
    with caplog.at_level(logging.WARNING, logger="commerce.sources.shopify_products"):
        products = await source.products()
    assert ids(products) == ["1"] and products[0].url == f"{shop.url}/products/mug"
    assert any("skipped" in record.getMessage() for record in caplog.records)


def test_ids_are_the_numeric_tail_of_the_gid():
    assert short_id("gid://shopify/Product/8123456789") == "8123456789"
    assert short_id("gid://shopify/ProductVariant/45") == "45"
    assert short_id("custom-7") == "custom-7"


def test_option_names_are_lower_case_and_colour_is_color():
    selected = [{"name": " Size ", "value": "M"}, {"name": "Colour", "value": "Navy"},
                {"name": "Material", "value": "Wool"}]
    assert variant_options(selected) == {"size": "M", "color": "Navy", "material": "Wool"}
    assert variant_options([{"name": "Title", "value": "Default Title"}]) == {}


# -- incremental reads -------------------------------------------------------------------------------------


async def test_an_incremental_read_sends_the_updated_at_filter_and_gets_only_changed_products(shop, source):
    shop.add_product("Unchanged", updated_at="2026-11-29T08:00:00Z")
    shop.add_product("Changed In That Second", updated_at="2026-11-30T10:00:00Z")
    changed = shop.add_product("Changed", updated_at="2026-11-30T12:30:00Z")
    shop.add_product("Changed But Archived", updated_at="2026-12-01T09:00:00Z", status="ARCHIVED")
    products = await source.products(changed_since=SINCE)
    assert ids(products) == [short(changed)]
    assert shop.requests[0].search == "status:active AND updated_at:>'2026-11-30T10:00:00Z'"


def test_the_since_time_is_sent_in_utc_to_the_second():
    berlin = timezone(timedelta(hours=1))
    assert search_query(None) == "status:active"
    assert search_query(datetime(2026, 11, 30, 11, 0, 59, 900_000, tzinfo=berlin)) == (
        "status:active AND updated_at:>'2026-11-30T10:00:59Z'")
    assert search_query(datetime(2026, 11, 30, 10, 0)) == "status:active AND updated_at:>'2026-11-30T10:00:00Z'"


# -- the request -------------------------------------------------------------------------------------------


async def test_the_request_carries_the_token_the_version_and_the_query(shop, source):
    await source.products()
    (request,) = shop.requests
    assert (request.method, request.path) == ("POST", f"/admin/api/{VERSION}/graphql.json")
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert request.body == {"query": CATALOG_QUERY,
                            "variables": {"first": 3, "after": None, "query": "status:active"}}
    assert "shop { currencyCode }" in CATALOG_QUERY and "variants(first: 50)" in CATALOG_QUERY


async def test_the_logs_never_show_the_token(shop, make_source, caplog):
    shop.add_product("Rain Jacket")
    with caplog.at_level(logging.DEBUG, logger="commerce.sources.shopify_products"):
        await make_source().products()
        with pytest.raises(CatalogUnavailable):
            await make_source(token="shpat_wrong_token").products()
    assert TOKEN not in caplog.text and "shpat_wrong_token" not in caplog.text


# -- throttling --------------------------------------------------------------------------------------------


async def test_throttled_then_answered_waits_what_the_bucket_says(shop, source):
    shop.add_product("Rain Jacket")
    shop.throttle(1, requested=62, available=60, restore_rate=100.0)  # (62 - 60) / 100 = 0.02 s
    started = time.monotonic()
    assert len(await source.products()) == 1
    assert time.monotonic() - started >= 0.018
    assert len(shop.requests) == 2


async def test_http_429_is_retried_after_retry_after(shop, source):
    shop.add_product("Rain Jacket")
    shop.rate_limit(1, retry_after="0.05")
    started = time.monotonic()
    assert len(await source.products()) == 1
    assert time.monotonic() - started >= 0.05
    assert [request.status for request in shop.requests] == [429, 200]


async def test_throttling_longer_than_the_budget_is_unavailable_without_waiting(shop, make_source):
    shop.throttle(1, requested=1000, available=0, restore_rate=100.0)  # 10 s
    started = time.monotonic()
    with pytest.raises(CatalogUnavailable, match="THROTTLED"):
        await make_source(max_throttle_wait_seconds=0.1).products()
    assert time.monotonic() - started < 0.5 and len(shop.requests) == 1


async def test_each_page_may_wait_out_the_throttle_budget(shop, make_source):
    """A large catalog drains Shopify's cost bucket again and again: each page waits for it to refill."""
    shop.add_product("Rain Jacket")
    shop.add_product("Wool Socks")
    shop.throttle(1, requested=62, available=56, restore_rate=100.0)  # 0.06 s
    shop.answer_normally(1)
    shop.throttle(1, requested=62, available=56, restore_rate=100.0)  # 0.06 s more: 0.12 s in all, 0.06 a page
    products = await make_source(page_size=1, max_throttle_wait_seconds=0.1).products()
    assert len(products) == 2 and len(shop.requests) == 4


# -- failures ----------------------------------------------------------------------------------------------


async def test_a_wrong_token_is_catalog_unavailable_and_warns_the_merchant(shop, make_source, caplog):
    with caplog.at_level(logging.WARNING, logger="commerce.sources.shopify_products"):
        with pytest.raises(CatalogUnavailable, match="access token refused") as raised:
            await make_source(token="shpat_wrong").products()
    assert raised.value.source == "shopify"
    assert shop.requests[0].status == 401
    assert any("token_refused" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_catalog_unavailable(shop, source, status):
    shop.fail(1, status=status)
    with pytest.raises(CatalogUnavailable, match=f"HTTP {status}"):
        await source.products()
    assert len(shop.requests) == 1


async def test_a_slow_shop_is_catalog_unavailable_after_the_timeout(shop, make_source):
    shop.delay_seconds = 1.0
    started = time.monotonic()
    with pytest.raises(CatalogUnavailable, match="no answer within"):
        await make_source(timeout_seconds=0.1).products()
    assert time.monotonic() - started < 0.6


async def test_an_answer_that_is_not_json_is_catalog_unavailable(shop, source):
    shop.answer_raw("<html>maintenance</html>", content_type="text/html")
    with pytest.raises(CatalogUnavailable, match="not a JSON object"):
        await source.products()


async def test_a_missing_products_scope_is_catalog_unavailable_and_warns(shop, source, caplog):
    shop.graphql_error("Access denied for products field. Required access: `read_products` access scope.")
    with caplog.at_level(logging.WARNING, logger="commerce.sources.shopify_products"):
        with pytest.raises(CatalogUnavailable, match="read_products"):
            await source.products()
    assert any("access_denied" in record.getMessage() for record in caplog.records)


async def test_a_page_promising_more_without_a_cursor_is_catalog_unavailable(shop, source):
    shop.answer_raw(json.dumps({"data": {"shop": {"currencyCode": "EUR"}, "products": {
        "pageInfo": {"hasNextPage": True, "endCursor": None}, "nodes": []}}}))
    with pytest.raises(CatalogUnavailable, match="endCursor"):
        await source.products()


async def test_a_closed_port_is_catalog_unavailable(make_source):
    async with FakeShopify(TOKEN) as gone:
        url = gone.url
    with pytest.raises(CatalogUnavailable, match="unreachable"):
        await make_source(shop_url=url).products()


# -- lifecycle ---------------------------------------------------------------------------------------------


async def test_a_session_passed_in_is_used_and_left_open(shop):
    shop.add_product("Rain Jacket")
    async with aiohttp.ClientSession() as session:
        catalog = ShopifyCatalog(shop_url=shop.url, token=TOKEN, api_version=VERSION, session=session)
        assert len(await catalog.products()) == 1
        await catalog.close()
        assert not session.closed


async def test_close_closes_the_session_it_made_and_may_be_called_twice(shop, source):
    await source.products()
    session = source._session
    await source.close()
    await source.close()
    assert session is not None and session.closed
