"""The WooCommerce catalog source against tests/fake_woocommerce.py, over real HTTP (and real TLS for https)."""

from __future__ import annotations

import base64
import shutil
import ssl
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import aiohttp
import pytest
from fake_woocommerce import FakeWooCommerce, self_signed_tls

from commerce.products import CatalogUnavailable
from commerce.sources import woocommerce_products
from commerce.sources.woocommerce_products import WooCommerceCatalog, plain_text

LOGGER = "commerce.sources.woocommerce_products"
PRODUCTS = "/wp-json/wc/v3/products"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the fake shop's certificate")
    return self_signed_tls(tmp_path_factory.mktemp("woo-catalog-tls"))


@pytest.fixture
async def shop() -> AsyncIterator[FakeWooCommerce]:
    """A plain-http shop (kefu signs with OAuth 1.0a) whose site clock is UTC+1."""
    async with FakeWooCommerce() as fake:
        yield fake


@pytest.fixture
async def catalog(shop: FakeWooCommerce) -> AsyncIterator[WooCommerceCatalog]:
    source = WooCommerceCatalog(base_url=shop.url, consumer_key=shop.consumer_key,
                                consumer_secret=shop.consumer_secret, timeout_seconds=2)
    yield source
    await source.close()


def source_for(shop: FakeWooCommerce, **options: object) -> WooCommerceCatalog:
    settings: dict[str, object] = {"consumer_key": shop.consumer_key, "consumer_secret": shop.consumer_secret,
                                   "timeout_seconds": 2, **options}
    return WooCommerceCatalog(base_url=shop.url, **settings)  # type: ignore[arg-type]


def hoodie(shop: FakeWooCommerce, product_id: int = 60, **options: object) -> None:
    """A variable hoodie: sizes and colours, one variation of each stock situation, one disabled."""
    shop.add_product(id=product_id, name="Wool hoodie", type="variable", categories=["Hoodies & Sweaters"],
                     tags=["wool", "winter"], short_description="<p>Warm merino hoodie.</p>", **options)
    shop.add_variation(product_id, id=601, attributes={"Size": "M", "Color": "Black"}, price="59.90",
                       sku="HD-M-BLK", manage_stock=True, stock_quantity=7)
    shop.add_variation(product_id, id=602, attributes={"Size": "L", "Color": "Black"}, price="59.90",
                       sku="HD-L-BLK", manage_stock=True, stock_quantity=0, stock_status="outofstock")
    shop.add_variation(product_id, id=603, attributes={"Size": "XL", "Color": "Navy"}, price="64.90",
                       sku="HD-XL-NVY", stock_status="onbackorder")
    shop.add_variation(product_id, id=604, attributes={"Size": "S", "Color": "Navy"}, price="59.90",
                       status="private")  # "Enabled" unticked: not offered in the shop


# -- mapping ---------------------------------------------------------------------------------------


async def test_a_simple_product_is_one_variant_with_the_store_currency(shop, catalog):
    shop.currency = "GBP"
    shop.add_product(id=42, name="Rain jacket", price="85.00", sku="RJ-1", categories=["Uncategorized", "Jackets"],
                     tags=["waterproof"], description="<p>Seam-sealed &amp; breathable.</p>",
                     modified=datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc))
    [product] = await catalog.products()
    assert (product.id, product.title, product.url) == ("42", "Rain jacket", f"{shop.url}/product/rain-jacket/")
    assert product.image_url == f"{shop.url}/wp-content/uploads/2026/10/rain-jacket.jpg"
    assert (product.category, product.tags, product.language) == ("Jackets", ("waterproof",), "en")
    assert product.description == "Seam-sealed & breathable."
    assert product.updated_at == datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc)  # the GMT date, not the local one
    [variant] = product.variants
    assert (variant.id, variant.title, dict(variant.options)) == ("42", "", {})
    assert (variant.price, variant.currency, variant.sku) == ("85.00", "GBP", "RJ-1")
    assert (variant.stock, variant.available) == (None, True)  # stock not managed: not tracked


async def test_a_variable_product_has_its_enabled_variations_as_variants(shop, catalog):
    hoodie(shop)
    [product] = await catalog.products()
    assert product.category == "Hoodies & Sweaters"  # WordPress sends "Hoodies &amp; Sweaters"
    assert product.description == "Warm merino hoodie."
    assert [(v.id, v.title, dict(v.options), v.price, v.sku) for v in product.variants] == [
        ("601", "M / Black", {"size": "M", "color": "Black"}, "59.90", "HD-M-BLK"),
        ("602", "L / Black", {"size": "L", "color": "Black"}, "59.90", "HD-L-BLK"),
        ("603", "XL / Navy", {"size": "XL", "color": "Navy"}, "64.90", "HD-XL-NVY"),
    ]
    assert [(v.stock, v.available) for v in product.variants] == [
        (7, True),  # managed, in stock
        (0, False),  # out of stock: not available
        (None, True),  # not managed; back-orders are still sold
    ]
    assert product.currency == "EUR"
    assert product.option_values("size") == ["M", "L", "XL"]
    assert product.prices() == [Decimal("59.90"), Decimal("59.90"), Decimal("64.90")]
    assert [call.path for call in shop.requests] == [
        "/wp-json/wc/v3/data/currencies/current", PRODUCTS, f"{PRODUCTS}/60/variations"]
    assert shop.requests[2].query["per_page"] == "100"


@pytest.mark.parametrize(("label", "key"), [
    ("pa_size", "size"), ("Size", "size"), ("Colour", "color"), ("pa_color", "color"), ("Material", "material"),
])
async def test_attribute_names_become_lower_case_option_keys(shop, catalog, label, key):
    shop.add_product(id=70, name="Scarf", type="variable")
    shop.add_variation(70, attributes={label: "Red"}, price="25.00")
    [product] = await catalog.products()
    assert dict(product.variants[0].options) == {key: "Red"}


async def test_stock_is_a_count_only_where_the_shop_manages_it(shop, catalog):
    shop.add_product(id=1, name="Managed mug", manage_stock=True, stock_quantity=3)
    shop.add_product(id=2, name="Sold-out mug", manage_stock=True, stock_quantity=0, stock_status="outofstock")
    shop.add_product(id=3, name="Priceless mug", price="")  # no price: WooCommerce will not sell it
    shop.add_product(id=4, name="Tea set", type="variable", manage_stock=True, stock_quantity=12)
    shop.add_variation(4, attributes={"Color": "White"}, price="40.00", manage_stock="parent")
    found = {product.id: product.variants for product in await catalog.products()}
    assert [(v.stock, v.available) for v in found["1"]] == [(3, True)]
    assert [(v.stock, v.available) for v in found["2"]] == [(0, False)]
    assert [(v.stock, v.available) for v in found["3"]] == [(None, False)]
    assert [(v.stock, v.available) for v in found["4"]] == [(12, True)]  # shares the product's stock


async def test_html_descriptions_become_plain_text(shop, catalog):
    shop.add_product(id=5, name="Boots", short_description="", description=(
        "[vc_row][vc_column]<h2>Leather boots</h2><p>Hand-stitched&nbsp;soles,<br/>resoled for <strong>life</strong>."
        "</p><ul><li>Size 36&ndash;46</li><li>Made in Portugal</li></ul><script>track()</script>[/vc_column][/vc_row]"))
    shop.add_product(id=6, name="Laces", short_description="<p>Spare laces [2 pairs].</p>",
                     description="<p>The long text.</p>")
    boots, laces = await catalog.products()
    assert boots.description == ("Leather boots\nHand-stitched soles,\nresoled for life.\nSize 36–46\n"
                                 "Made in Portugal")
    assert laces.description == "Spare laces [2 pairs]."  # the short description first; brackets kept


def test_plain_text_of_nothing_is_nothing():
    assert plain_text("") == plain_text("<p> </p>") == ""


async def test_only_published_products_shown_in_the_catalog_are_read(shop, catalog):
    shop.add_product(id=1, name="On sale")
    shop.add_product(id=2, name="Not yet", status="draft")
    shop.add_product(id=3, name="Gift wrap", catalog_visibility="hidden")
    assert [product.id for product in await catalog.products()] == ["1"]
    assert shop.calls(PRODUCTS)[0].query["status"] == "publish"


# -- paging and incremental reads ------------------------------------------------------------------


async def test_every_page_is_read_in_id_order(shop):
    for product_id in (5, 3, 1, 4, 2):
        shop.add_product(id=product_id, name=f"Sock {product_id}")
    source = source_for(shop, per_page=2)
    products = await source.products()
    await source.close()
    assert [product.id for product in products] == ["1", "2", "3", "4", "5"]
    pages = shop.calls(PRODUCTS)
    assert [(call.query["page"], call.query["per_page"], call.query["orderby"], call.query["order"])
            for call in pages] == [("1", "2", "id", "asc"), ("2", "2", "id", "asc"), ("3", "2", "id", "asc")]


async def test_a_long_catalog_stops_at_the_page_limit_with_a_warning(shop, monkeypatch, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    monkeypatch.setattr(woocommerce_products, "MAX_PAGES", 2)
    for product_id in range(1, 5):
        shop.add_product(id=product_id, name=f"Pin {product_id}")
    source = source_for(shop, per_page=1)
    products = await source.products()
    await source.close()
    assert [product.id for product in products] == ["1", "2"]
    assert len(shop.calls(PRODUCTS)) == 2
    assert "catalog.woocommerce_truncated" in caplog.text and "total=4" in caplog.text


async def test_variations_are_paged_too(shop):
    shop.add_product(id=80, name="Socks", type="variable")
    for size in ("S", "M", "L"):
        shop.add_variation(80, attributes={"Size": size}, price="9.00")
    source = source_for(shop, per_page=2)
    [product] = await source.products()
    await source.close()
    assert product.option_values("size") == ["S", "M", "L"]
    assert [call.query["page"] for call in shop.calls("/80/variations")] == ["1", "2"]


async def test_an_incremental_read_asks_for_products_modified_after_in_gmt(shop, catalog):
    since = datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)
    shop.add_product(id=1, name="Old", modified=since - timedelta(days=3))
    # 10:00 UTC is 11:00 on the site's clock: compared with the local date it would count as changed
    shop.add_product(id=2, name="Just before", modified=since - timedelta(minutes=30))
    shop.add_product(id=3, name="Changed", modified=since + timedelta(hours=2))
    hoodie(shop, 4, modified=since + timedelta(minutes=5))
    products = await catalog.products(changed_since=since)
    assert [product.id for product in products] == ["3", "4"]
    assert len(products[1].variants) == 3
    query = shop.calls(PRODUCTS)[0].query
    assert (query["modified_after"], query["dates_are_gmt"]) == ("2026-11-20T10:30:00", "true")


async def test_a_changed_since_in_another_zone_is_sent_as_utc(shop, catalog):
    shop.add_product(id=1, name="Changed", modified=datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc))
    berlin = timezone(timedelta(hours=1))
    assert [p.id for p in await catalog.products(changed_since=datetime(2026, 11, 20, 9, 45, 12, 999, berlin))] \
        == ["1"]
    assert shop.calls(PRODUCTS)[0].query["modified_after"] == "2026-11-20T08:45:12"


async def test_a_full_read_sends_no_date(shop, catalog):
    shop.add_product(id=1, name="Anything")
    await catalog.products()
    assert "modified_after" not in shop.calls(PRODUCTS)[0].query


# -- authentication --------------------------------------------------------------------------------


async def test_plain_http_signs_every_request_with_oauth1(shop, catalog):
    hoodie(shop)
    await catalog.products()
    assert len(shop.requests) == 3
    for sent in shop.requests:
        assert sent.auth == "oauth1" and sent.status == 200  # the fake checked each signature and nonce
        assert "Authorization" not in sent.headers and shop.consumer_secret not in str(sent.query)


async def test_https_sends_basic_auth(tls):
    async with FakeWooCommerce(ssl_context=tls[0]) as shop, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls[1])) as session:
        shop.add_product(id=1, name="Cap")
        source = source_for(shop, session=session)
        assert [product.id for product in await source.products()] == ["1"]
        await source.close()
        assert not session.closed  # a session passed in belongs to the caller
    expected = base64.b64encode(f"{shop.consumer_key}:{shop.consumer_secret}".encode()).decode()
    for sent in shop.requests:
        assert (sent.auth, sent.headers["Authorization"]) == ("basic", f"Basic {expected}")
        assert "consumer_secret" not in sent.query


async def test_https_query_string_auth(tls):
    async with FakeWooCommerce(ssl_context=tls[0]) as shop, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls[1])) as session:
        shop.add_product(id=1, name="Cap")
        source = source_for(shop, session=session, query_string_auth=True)
        await source.products()
    assert {sent.auth for sent in shop.requests} == {"query"}
    assert shop.requests[0].query["consumer_key"] == shop.consumer_key


async def test_a_wrong_secret_is_catalog_unavailable_and_logged_without_it(shop, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    shop.add_product(id=1, name="Cap")
    source = source_for(shop, consumer_secret="cs_wrong_secret")
    with pytest.raises(CatalogUnavailable, match="refused"):
        await source.products()
    await source.close()
    assert shop.requests[0].status == 401
    assert "catalog.woocommerce_refused status=401 code=woocommerce_rest_authentication_error" in caplog.text
    assert "cs_wrong_secret" not in caplog.text


async def test_a_user_who_may_not_read_products_is_catalog_unavailable(caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    async with FakeWooCommerce(user_can_read_products=False) as shop:
        source = source_for(shop)
        with pytest.raises(CatalogUnavailable, match="403"):
            await source.products()
        await source.close()
    assert "status=403 code=woocommerce_rest_cannot_view" in caplog.text


async def test_a_user_who_may_not_read_settings_gets_prices_without_currency(caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    async with FakeWooCommerce(user_can_manage_woocommerce=False) as shop:
        shop.add_product(id=1, name="Cap", price="15.00")
        source = source_for(shop)
        [product] = await source.products()
        await source.close()
    assert (product.variants[0].price, product.currency) == ("15.00", "")
    assert "catalog.woocommerce_no_currency status=403" in caplog.text


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_catalog_unavailable(shop, catalog, status):
    shop.add_product(id=1, name="Cap")
    shop.fail_next(status, path=PRODUCTS)
    with pytest.raises(CatalogUnavailable, match=f"HTTP {status}"):
        await catalog.products()


async def test_a_failed_variation_read_fails_the_whole_read(shop, catalog):
    hoodie(shop, 60)
    hoodie(shop, 61)
    shop.fail_next(503, path="/61/variations")
    with pytest.raises(CatalogUnavailable, match="HTTP 503"):
        await catalog.products()


async def test_a_short_retry_after_is_waited_out_once(shop, catalog):
    shop.add_product(id=1, name="Cap")
    shop.fail_next(429, retry_after="1", path=PRODUCTS)
    started = time.monotonic()
    assert [product.id for product in await catalog.products()] == ["1"]
    assert time.monotonic() - started >= 1.0
    assert [call.status for call in shop.calls(PRODUCTS)] == [429, 200]


async def test_throttled_twice_or_for_long_is_catalog_unavailable(shop, catalog):
    shop.fail_next(429, retry_after="0", times=2, path=PRODUCTS)
    with pytest.raises(CatalogUnavailable, match="429"):
        await catalog.products()
    shop.fail_next(429, retry_after="120", path=PRODUCTS)
    started = time.monotonic()
    with pytest.raises(CatalogUnavailable, match="429"):
        await catalog.products()
    assert time.monotonic() - started < 1.0


async def test_a_slow_shop_is_catalog_unavailable(shop):
    shop.delay_seconds = 5
    source = source_for(shop, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(CatalogUnavailable, match="Timeout"):
        await source.products()
    assert time.monotonic() - started < 2
    await source.close()


async def test_an_html_page_instead_of_json_is_catalog_unavailable(shop, catalog):
    shop.fail_next(200, body="<br />\n<b>Warning</b>: Cannot modify header information<br />[]", path=PRODUCTS)
    with pytest.raises(CatalogUnavailable, match="not JSON"):
        await catalog.products()


async def test_a_closed_port_is_catalog_unavailable_without_the_secret(shop):
    url = shop.url
    await shop.stop()
    source = WooCommerceCatalog(base_url=url, consumer_key="ck_x", consumer_secret="cs_secret_value")
    with pytest.raises(CatalogUnavailable) as raised:
        await source.products()
    assert "cs_secret_value" not in raised.value.reason
    await source.close()


async def test_no_rest_api_at_the_base_url_is_catalog_unavailable(shop, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    source = WooCommerceCatalog(base_url=shop.url + "/shop", consumer_key=shop.consumer_key,
                                consumer_secret=shop.consumer_secret)
    with pytest.raises(CatalogUnavailable, match="404"):
        await source.products()
    await source.close()
    assert "catalog.woocommerce_no_api" in caplog.text
    assert "woocommerce_no_currency" not in caplog.text  # an HTML 404 page is no missing capability


# -- construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "problem"), [
    ({"base_url": "shop.example"}, "base_url"),
    ({"consumer_key": ""}, "consumer_key and consumer_secret"),
    ({"base_url": "http://shop.example", "query_string_auth": True}, "https only"),
    ({"per_page": 0}, "per_page"),
    ({"per_page": 101}, "per_page"),
])
def test_bad_settings_are_refused_at_construction(options, problem):
    settings = {"base_url": "https://shop.example", "consumer_key": "ck_1", "consumer_secret": "cs_1", **options}
    with pytest.raises(ValueError, match=problem):
        WooCommerceCatalog(**settings)
