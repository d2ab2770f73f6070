"""The WooCommerce order source against tests/fake_woocommerce.py, over real HTTP (and real TLS for https)."""

from __future__ import annotations

import base64
import shutil
import ssl
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import aiohttp
import pytest
from fake_woocommerce import FakeWooCommerce, line_item, self_signed_tls, tracking_item

from commerce.orders import OrderStatus, Shipment, ShopUnavailable
from commerce.sources.woocommerce import WooCommerceOrders, oauth1_signed

LOGGER = "commerce.sources.woocommerce"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the fake shop's certificate")
    return self_signed_tls(tmp_path_factory.mktemp("woo-tls"))


@pytest.fixture
async def shop() -> AsyncIterator[FakeWooCommerce]:
    """A plain-http shop: kefu signs with OAuth 1.0a."""
    async with FakeWooCommerce() as fake:
        yield fake


@pytest.fixture
async def orders(shop: FakeWooCommerce) -> AsyncIterator[WooCommerceOrders]:
    source = WooCommerceOrders(base_url=shop.url, consumer_key=shop.consumer_key,
                               consumer_secret=shop.consumer_secret, timeout_seconds=2)
    yield source
    await source.close()


@pytest.fixture
async def https_shop(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[FakeWooCommerce]:
    async with FakeWooCommerce(ssl_context=tls[0]) as fake:
        yield fake


@pytest.fixture
async def trusting(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that trusts the fake shop's certificate."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls[1])) as session:
        yield session


def https_orders(shop: FakeWooCommerce, session: aiohttp.ClientSession, **options: object) -> WooCommerceOrders:
    settings: dict[str, object] = {"consumer_key": shop.consumer_key, "consumer_secret": shop.consumer_secret,
                                   "timeout_seconds": 2, **options}
    return WooCommerceOrders(base_url=shop.url, session=session, **settings)  # type: ignore[arg-type]


# -- statuses and fields ------------------------------------------------------------------------------


async def test_processing_order_is_mapped_with_number_total_and_utc_date(shop, orders):
    shop.add_order(id=1234, status="processing", items=[line_item("Rain jacket", price="85.00", sku="RJ-M")])
    order = await orders.find("1234")
    assert order is not None
    assert (order.number, order.status, order.source_status) == ("#1234", OrderStatus.PROCESSING, "processing")
    assert (order.total, order.currency) == ("89.95", "EUR")
    # date_created is the site's local time (UTC+1 here); kefu reads date_created_gmt
    assert order.created_at == datetime(2026, 11, 28, 10, 15, tzinfo=timezone.utc)
    assert order.shipments == ()


async def test_completed_order_with_tracking_is_shipped_with_its_parcels(shop, orders):
    shop.add_order(id=1235, status="completed", tracking=[
        tracking_item("DHL", "00340434161094042557", link="https://www.dhl.de/track?n=00340434161094042557"),
        tracking_item("usps", "9400111899223100001234", custom=False,
                      shipped=datetime(2026, 11, 30, tzinfo=timezone.utc)),
    ])
    order = await orders.find("1235")
    assert order.status is OrderStatus.SHIPPED
    assert order.shipments == (
        Shipment(carrier="DHL", tracking_number="00340434161094042557",
                 tracking_url="https://www.dhl.de/track?n=00340434161094042557",
                 shipped_at=datetime(2026, 11, 29, tzinfo=timezone.utc)),
        Shipment(carrier="usps", tracking_number="9400111899223100001234",  # a predefined provider's slug
                 shipped_at=datetime(2026, 11, 30, tzinfo=timezone.utc)),
    )


async def test_processing_order_with_tracking_counts_as_shipped(shop, orders):
    shop.add_order(id=1236, status="processing", tracking=[tracking_item("DPD", "01234567890123")])
    order = await orders.find("1236")
    assert (order.status, order.source_status) == (OrderStatus.SHIPPED, "processing")


@pytest.mark.parametrize(("woo_status", "expected"), [
    ("cancelled", OrderStatus.CANCELLED),
    ("refunded", OrderStatus.REFUNDED),
    ("on-hold", OrderStatus.ON_HOLD),
    ("pending", OrderStatus.PENDING_PAYMENT),
    ("failed", OrderStatus.PENDING_PAYMENT),
    ("completed", OrderStatus.SHIPPED),  # core WooCommerce never learns of delivery
    ("partial-shipped", OrderStatus.PARTIALLY_SHIPPED),  # Advanced Shipment Tracking's statuses
    ("delivered", OrderStatus.DELIVERED),
])
async def test_statuses_are_mapped(shop, orders, woo_status, expected):
    shop.add_order(id=2001, status=woo_status)
    order = await orders.find("2001")
    assert (order.status, order.source_status) == (expected, woo_status)


@pytest.mark.parametrize(("paid", "tracking", "expected"), [
    (True, [], OrderStatus.PROCESSING),
    (False, [], OrderStatus.PENDING_PAYMENT),
    (True, [tracking_item("GLS", "ZX81")], OrderStatus.SHIPPED),
])
async def test_another_plugins_status_is_read_by_payment_and_tracking(shop, orders, caplog, paid, tracking, expected):
    caplog.set_level("INFO", logger=LOGGER)
    shop.add_order(id=2003, status="ready-for-pickup", paid=paid, tracking=tracking)
    order = await orders.find("2003")
    assert (order.status, order.source_status) == (expected, "ready-for-pickup")
    assert "orders.woocommerce_unknown_status status=ready-for-pickup" in caplog.text


async def test_a_trashed_order_is_not_found(shop, orders):
    shop.add_order(id=2002, status="trash")
    assert await orders.find("2002") is None


async def test_items_keep_quantity_sku_and_variation_attributes(shop, orders):
    shop.add_order(id=3001, items=[
        line_item("Hoodie", quantity=2, sku="HD-BL-L", attributes={"Color": "Blue", "Size": "L"}),
        line_item("Scarf", sku="SC-3", attributes={"Color": "Red", "Size": "One size", "Pattern": "Check"},
                  attributes_in_name=False),
        line_item("Mug", sku="", extra_meta=[{"id": 9, "key": "Engraving", "value": "For Ana",
                                              "display_key": "Engraving", "display_value": "For Ana"}]),
    ])
    order = await orders.find("3001")
    assert [(i.title, i.quantity, i.variant, i.sku) for i in order.items] == [
        ("Hoodie", 2, "Blue / L", "HD-BL-L"),  # WooCommerce named it "Hoodie - Blue, L"
        ("Scarf", 1, "Red / One size / Check", "SC-3"),  # three attributes: in the meta's display values
        ("Mug", 1, "", ""),  # not a variation: its meta (the shopper's engraving) is not a variant
    ]


async def test_identity_fields_come_from_billing_and_shipping_and_stay_out_of_repr(shop, orders):
    shop.add_order(id=4001, email="ana@example.com", phone="+49 151 2345678", billing_postcode="10115",
                   shipping_postcode="80331", customer_id=57)
    shop.add_order(id=4002, billing_postcode="20095", shipping_postcode="")
    first, second = await orders.find("4001"), await orders.find("4002")
    assert (first.email, first.phone, first.postcode, first.customer_id) == (
        "ana@example.com", "+49 151 2345678", "80331", "57")
    assert (second.postcode, second.customer_id) == ("20095", "")  # no shipping address; a guest checkout
    assert "ana@example.com" not in repr(first) and "2345678" not in repr(first)
    assert "ana@example.com" not in str(first.summary())


# -- finding the order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["1234", "#1234", " #1234 "])
async def test_the_number_is_found_with_or_without_hash(shop, orders, typed):
    shop.add_order(id=1234)
    order = await orders.find(typed)
    assert order.number == "#1234"
    assert [call.path for call in shop.requests] == ["/wp-json/wc/v3/orders/1234"]
    assert shop.requests[0].query["include_meta"] == "_wc_shipment_tracking_items"


async def test_a_custom_order_number_is_found_by_search(shop, orders):
    shop.add_order(id=5012, number="WC-1001")
    order = await orders.find("wc-1001")  # kefu's recognizer upper-cases; the match ignores case
    assert order.number == "#WC-1001"
    assert [(call.path, call.query.get("search")) for call in shop.requests] == [
        ("/wp-json/wc/v3/orders", "wc-1001")]


async def test_a_sequential_number_wins_over_the_order_with_that_id(shop, orders):
    shop.add_order(id=1002, number="1090")  # ID 1002 is another order once a numbering plugin runs
    shop.add_order(id=5013, number="1002")
    order = await orders.find("1002")
    assert order.number == "#1002"
    assert [call.path for call in shop.requests] == ["/wp-json/wc/v3/orders/1002", "/wp-json/wc/v3/orders"]


async def test_a_search_hit_with_another_number_is_not_the_order(shop, orders):
    shop.add_order(id=5014, number="WC-12345")  # "WC-1234" is inside it
    shop.add_order(id=5015, billing_postcode="12340", shipping_postcode="12340")
    assert await orders.find("WC-1234") is None
    assert await orders.find("1234") is None  # the postcode matched the search, not the number


async def test_an_unknown_number_is_none_after_id_and_search(shop, orders):
    shop.add_order(id=1)
    assert await orders.find("99999") is None
    assert [call.status for call in shop.requests] == [404, 200]
    assert await orders.find("#") is None


# -- authentication ------------------------------------------------------------------------------------


async def test_https_sends_basic_auth_and_never_the_secret_in_the_url(https_shop, trusting):
    https_shop.add_order(id=1234)
    source = https_orders(https_shop, trusting)
    assert (await source.find("1234")).number == "#1234"
    sent = https_shop.requests[0]
    expected = base64.b64encode(f"{https_shop.consumer_key}:{https_shop.consumer_secret}".encode()).decode()
    assert (sent.auth, sent.headers["Authorization"]) == ("basic", f"Basic {expected}")
    assert "consumer_secret" not in sent.query
    await source.close()
    assert not trusting.closed  # a session passed in belongs to the caller


async def test_https_query_string_auth_for_servers_that_drop_the_header(https_shop, trusting):
    https_shop.add_order(id=1234)
    source = https_orders(https_shop, trusting, query_string_auth=True)
    assert (await source.find("1234")) is not None
    sent = https_shop.requests[0]
    assert sent.auth == "query" and "Authorization" not in sent.headers
    assert (sent.query["consumer_key"], sent.query["consumer_secret"]) == (
        https_shop.consumer_key, https_shop.consumer_secret)


async def test_plain_http_signs_with_oauth1_and_sends_no_secret(shop, orders):
    shop.add_order(id=1234)
    await orders.find("1234")
    await orders.find("1234")
    first, second = shop.requests
    assert first.auth == second.auth == "oauth1"  # the fake checked each signature as WooCommerce does
    assert first.query["oauth_signature_method"] == "HMAC-SHA256"
    assert first.query["oauth_nonce"] != second.query["oauth_nonce"]
    for sent in shop.requests:
        assert "Authorization" not in sent.headers
        assert shop.consumer_secret not in str(sent.query)


def test_oauth1_signature_matches_a_worked_example():
    # RFC 5849 §3.4, HMAC-SHA256, no token: the base string written out by hand and signed with
    # `openssl dgst -sha256 -hmac "cs_test&"`, not by this module
    signed = oauth1_signed("GET", "http://shop.example/wp-json/wc/v3/orders", {"search": "WC 1001", "per_page": "20"},
                           "ck_test", "cs_test", timestamp=1764324900, nonce="abc123")
    assert signed["oauth_signature"] == "2ALr1HJBBGe/3triG4QLg77EioVC2FAOSc1MJWE8ShY="


async def test_a_wrong_secret_is_shop_unavailable_and_logged(shop, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    shop.add_order(id=1234)
    source = WooCommerceOrders(base_url=shop.url, consumer_key=shop.consumer_key, consumer_secret="cs_wrong")
    with pytest.raises(ShopUnavailable, match="refused"):
        await source.find("1234")
    await source.close()
    assert shop.requests[0].status == 401
    assert "orders.woocommerce_refused status=401 code=woocommerce_rest_authentication_error" in caplog.text
    assert "cs_wrong" not in caplog.text


async def test_a_wrong_secret_over_https_is_refused_too(https_shop, trusting, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    source = WooCommerceOrders(base_url=https_shop.url, consumer_key=https_shop.consumer_key,
                               consumer_secret="cs_wrong", session=trusting)
    with pytest.raises(ShopUnavailable):
        await source.find("1234")
    assert "Consumer secret is invalid." not in caplog.text  # the code is logged, never the key
    assert "code=woocommerce_rest_authentication_error" in caplog.text


@pytest.mark.parametrize(("options", "status", "code"), [
    ({"key_permissions": "write"}, 401, "woocommerce_rest_authentication_error"),  # a Write-only key
    ({"user_can_read_orders": False}, 403, "woocommerce_rest_cannot_view"),  # the key's user may not
    ({"consumer_key": "ck_other"}, 401, "woocommerce_rest_authentication_error"),  # an unknown key
])
async def test_a_key_that_may_not_read_orders_is_shop_unavailable(options, status, code, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    async with FakeWooCommerce(**options) as shop:
        shop.add_order(id=1234)
        key = "ck_2f1d0c7e5b3a49e8a6c4b2d0e8f6a4c2b0d8e6f4"
        source = WooCommerceOrders(base_url=shop.url, consumer_key=key, consumer_secret=shop.consumer_secret)
        with pytest.raises(ShopUnavailable, match=str(status)):
            await source.find("1234")
        await source.close()
    assert f"status={status} code={code}" in caplog.text


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_shop_unavailable(shop, orders, status):
    shop.add_order(id=1234)
    shop.fail_next(status)
    with pytest.raises(ShopUnavailable, match=f"HTTP {status}"):
        await orders.find("1234")


async def test_a_short_retry_after_is_waited_out_once(shop, orders):
    shop.add_order(id=1234)
    shop.fail_next(429, retry_after="1")
    started = time.monotonic()
    order = await orders.find("1234")
    assert order.number == "#1234"
    assert time.monotonic() - started >= 1.0
    assert [call.status for call in shop.requests] == [429, 200]


async def test_a_long_retry_after_is_not_waited_for(shop, orders):
    shop.add_order(id=1234)
    shop.fail_next(429, retry_after="120", times=2)
    started = time.monotonic()
    with pytest.raises(ShopUnavailable, match="429"):
        await orders.find("1234")
    assert time.monotonic() - started < 1.0
    assert len(shop.requests) == 1


async def test_throttled_twice_is_shop_unavailable(shop, orders):
    shop.fail_next(429, retry_after="0", times=2)
    with pytest.raises(ShopUnavailable, match="429"):
        await orders.find("1234")
    assert len(shop.requests) == 2


async def test_a_slow_shop_is_shop_unavailable(shop):
    shop.add_order(id=1234)
    shop.delay_seconds = 5
    source = WooCommerceOrders(base_url=shop.url, consumer_key=shop.consumer_key,
                               consumer_secret=shop.consumer_secret, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(ShopUnavailable, match="Timeout"):
        await source.find("1234")
    assert time.monotonic() - started < 2
    await source.close()


async def test_an_html_page_instead_of_json_is_shop_unavailable(shop, orders):
    shop.fail_next(200, body="<br />\n<b>Notice</b>: Undefined index in functions.php<br />{\"id\": 1}")
    with pytest.raises(ShopUnavailable, match="not JSON"):
        await orders.find("1234")


async def test_a_closed_port_is_shop_unavailable(shop):
    url = shop.url
    await shop.stop()
    source = WooCommerceOrders(base_url=url, consumer_key="ck_x", consumer_secret="cs_secret_value")
    with pytest.raises(ShopUnavailable) as raised:
        await source.find("1234")
    assert "cs_secret_value" not in raised.value.reason
    await source.close()


async def test_no_rest_api_at_the_base_url_is_shop_unavailable_not_a_missing_order(shop, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    source = WooCommerceOrders(base_url=shop.url + "/shop", consumer_key=shop.consumer_key,
                               consumer_secret=shop.consumer_secret)
    with pytest.raises(ShopUnavailable, match="404"):
        await source.find("1234")
    await source.close()
    assert "orders.woocommerce_no_api" in caplog.text


async def test_a_redirect_is_not_followed_and_names_the_address_without_its_query(shop, orders, caplog):
    caplog.set_level("WARNING", logger=LOGGER)
    shop.fail_next(301, headers={"Location": "https://www.shop.example/wp-json/wc/v3/orders/1234?oauth_nonce=1"})
    with pytest.raises(ShopUnavailable, match="redirects"):
        await orders.find("1234")
    assert "to=https://www.shop.example/wp-json/wc/v3/orders/1234:" in caplog.text
    assert "oauth_nonce" not in caplog.text


async def test_nothing_of_the_shopper_is_logged(shop, orders, caplog):
    caplog.set_level("DEBUG")
    shop.add_order(id=1234, email="ana@example.com", phone="+49 151 2345678", status="ready-for-pickup")
    await orders.find("1234")
    shop.fail_next(503)
    with pytest.raises(ShopUnavailable):
        await orders.find("#1234")
    assert "ana@example.com" not in caplog.text and "2345678" not in caplog.text


# -- construction and lifecycle -------------------------------------------------------------------


@pytest.mark.parametrize(("options", "problem"), [
    ({"base_url": "shop.example"}, "base_url"),
    ({"consumer_secret": ""}, "consumer_key and consumer_secret"),
    ({"base_url": "http://shop.example", "query_string_auth": True}, "https only"),
])
def test_bad_settings_are_refused_at_construction(options, problem):
    settings = {"base_url": "https://shop.example", "consumer_key": "ck_1", "consumer_secret": "cs_1", **options}
    with pytest.raises(ValueError, match=problem):
        WooCommerceOrders(**settings)


async def test_close_closes_only_its_own_session_and_twice_is_fine(shop):
    shop.add_order(id=1234)
    source = WooCommerceOrders(base_url=shop.url + "/", consumer_key=shop.consumer_key,
                               consumer_secret=shop.consumer_secret)
    await source.find("1234")  # a trailing slash in base_url still reaches /wp-json/
    await source.close()
    await source.close()


async def test_a_session_passed_in_is_used(shop):
    shop.add_order(id=1234)
    async with aiohttp.ClientSession(headers={"X-Test": "kefu"}) as session:
        source = WooCommerceOrders(base_url=shop.url, consumer_key=shop.consumer_key,
                                   consumer_secret=shop.consumer_secret, session=session)
        await source.find("1234")
        await source.close()
        assert not session.closed
    assert shop.requests[0].headers["X-Test"] == "kefu"
