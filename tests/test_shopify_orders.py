"""The Shopify order source over real HTTP, against a fake Admin GraphQL endpoint on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from fake_shopify import FakeShopify, fulfillment, line_item, tracking

from commerce.orders import LineItem, OrderStatus, Shipment, ShopUnavailable
from commerce.sources.shopify import ORDER_QUERY, ShopifyOrders, order_name

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
VERSION = "2025-01"
EMAIL = "ann.lee@example.com"
PHONE = "+49 30 1234567"
UPS = "https://www.ups.com/track?tracknum="


@pytest.fixture
async def shop() -> AsyncIterator[FakeShopify]:
    async with FakeShopify(TOKEN, api_version=VERSION) as server:
        yield server


@pytest.fixture
async def source(shop: FakeShopify) -> AsyncIterator[ShopifyOrders]:
    orders = ShopifyOrders(shop_url=shop.url, token=TOKEN, api_version=VERSION, timeout_seconds=2.0,
                           max_throttle_wait_seconds=0.5)
    yield orders
    await orders.close()


@pytest.fixture
async def make_source(shop: FakeShopify) -> AsyncIterator[Callable[..., ShopifyOrders]]:
    """A source with other settings (a wrong token, a short timeout), closed after the test."""
    made: list[ShopifyOrders] = []

    def make(**overrides: object) -> ShopifyOrders:
        settings: dict[str, object] = {"shop_url": shop.url, "token": TOKEN, "api_version": VERSION,
                                       "timeout_seconds": 2.0, "max_throttle_wait_seconds": 0.5, **overrides}
        made.append(ShopifyOrders(**settings))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for orders in made:
        await orders.close()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- mapping ---------------------------------------------------------------------------------------------


async def test_an_unfulfilled_paid_order_is_processing_with_its_items_total_and_identity(shop, source):
    shop.add_order("#1001", email=EMAIL, phone=None, shipping_phone=PHONE, zip_code="10115",
                   customer_id=7001, total="59.9", currency="EUR", created_at="2025-03-01T09:30:00Z",
                   updated_at="2025-03-01T10:00:00Z")
    order = await source.find("1001")
    assert order is not None
    assert order.number == "#1001"
    assert order.status is OrderStatus.PROCESSING
    assert order.source_status == "PAID / UNFULFILLED"
    assert order.items == (LineItem("Brass Lantern", 1, "Large / Brass", "LAN-L-BR"),
                           LineItem("Beeswax Candle", 2, "", "CAN-BW"))
    assert order.shipments == ()
    assert (order.total, order.currency) == ("59.90", "EUR")
    assert order.created_at == at("2025-03-01T09:30:00") and order.created_at.tzinfo is not None
    assert order.updated_at == at("2025-03-01T10:00:00")
    assert order.cancelled_at is None
    assert (order.email, order.phone, order.postcode) == (EMAIL, PHONE, "10115")
    assert order.customer_id == "gid://shopify/Customer/7001"


async def test_the_orders_own_phone_wins_over_the_shipping_address_phone(shop, source):
    shop.add_order("#1001", phone="+4915112345678", shipping_phone=PHONE)
    order = await source.find("#1001")
    assert order is not None and order.phone == "+4915112345678"


async def test_a_guest_order_without_address_has_empty_identity_fields_not_none(shop, source):
    shop.add_order("#1001", email=None, zip_code=None, shipping_phone=None, customer_id=None)
    order = await source.find("#1001")
    assert order is not None
    assert (order.email, order.phone, order.postcode, order.customer_id) == ("", "", "", "")


async def test_a_fulfilled_order_in_transit_is_shipped_with_one_shipment_per_tracking_number(shop, source):
    shop.add_order("#1002", fulfillment_status="FULFILLED", fulfillments=[fulfillment(
        display_status="IN_TRANSIT", created_at="2025-03-02T14:00:00Z", in_transit_at="2025-03-02T18:00:00Z",
        updated_at="2025-03-03T07:15:00Z",
        tracking_info=[tracking("DHL Express", "1234567890", "https://www.dhl.com/track?id=1234567890"),
                       tracking("DHL Express", "1234567891", None)])])
    order = await source.find("1002")
    assert order is not None
    assert order.status is OrderStatus.SHIPPED
    assert order.source_status == "PAID / FULFILLED"
    first, second = order.shipments
    assert first == Shipment(carrier="DHL Express", tracking_number="1234567890",
                             tracking_url="https://www.dhl.com/track?id=1234567890",
                             shipped_at=at("2025-03-02T14:00:00"), delivered_at=None,
                             last_event_at=at("2025-03-03T07:15:00"), status="in_transit")
    assert (second.tracking_number, second.tracking_url) == ("1234567891", "")


async def test_a_fulfillment_without_tracking_is_still_one_parcel_sent(shop, source):
    shop.add_order("#1002", fulfillment_status="FULFILLED",
                   fulfillments=[fulfillment(display_status="FULFILLED", created_at="2025-03-02T14:00:00Z")])
    order = await source.find("1002")
    assert order is not None and order.status is OrderStatus.SHIPPED
    assert order.shipments == (Shipment(shipped_at=at("2025-03-02T14:00:00"),
                                        last_event_at=at("2025-03-02T14:00:00"), status="fulfilled"),)


async def test_an_order_whose_every_parcel_arrived_is_delivered(shop, source):
    shop.add_order("#1003", fulfillment_status="FULFILLED", fulfillments=[fulfillment(
        display_status="DELIVERED", created_at="2025-03-02T14:00:00Z", in_transit_at="2025-03-02T18:00:00Z",
        delivered_at="2025-03-04T11:20:00Z", updated_at="2025-03-04T11:20:00Z",
        tracking_info=[tracking("UPS", "1Z999AA10123456784", f"{UPS}1Z999AA10123456784")])])
    order = await source.find("#1003")
    assert order is not None
    assert order.status is OrderStatus.DELIVERED
    (shipment,) = order.shipments
    assert shipment.carrier == "UPS" and shipment.status == "delivered"
    assert shipment.delivered_at == at("2025-03-04T11:20:00")


async def test_one_parcel_delivered_and_one_in_transit_is_only_shipped(shop, source):
    shop.add_order("#1003", fulfillment_status="FULFILLED", fulfillments=[
        fulfillment(display_status="DELIVERED", delivered_at="2025-03-04T11:20:00Z",
                    tracking_info=[tracking("UPS", "1Z1")]),
        fulfillment(display_status="IN_TRANSIT", tracking_info=[tracking("UPS", "1Z2")])])
    order = await source.find("#1003")
    assert order is not None and order.status is OrderStatus.SHIPPED
    assert [s.tracking_number for s in order.shipments] == ["1Z1", "1Z2"]


async def test_a_cancelled_fulfillment_is_no_parcel(shop, source):
    shop.add_order("#1004", fulfillment_status="PARTIALLY_FULFILLED", fulfillments=[
        fulfillment(status="CANCELLED", display_status="CANCELED", tracking_info=[tracking("DPD", "OLD1")]),
        fulfillment(display_status="IN_TRANSIT", tracking_info=[tracking("DPD", "NEW2")])])
    order = await source.find("1004")
    assert order is not None and order.status is OrderStatus.PARTIALLY_SHIPPED
    assert [s.tracking_number for s in order.shipments] == ["NEW2"]


async def test_a_cancelled_order_is_cancelled_whatever_its_payment(shop, source):
    shop.add_order("#1005", financial_status="REFUNDED", cancelled_at="2025-03-01T12:00:00Z",
                   cancel_reason="CUSTOMER")
    order = await source.find("1005")
    assert order is not None
    assert order.status is OrderStatus.CANCELLED
    assert order.cancelled_at == at("2025-03-01T12:00:00")
    assert order.source_status == "CANCELLED / REFUNDED / UNFULFILLED"


async def test_a_refunded_order_is_refunded(shop, source):
    shop.add_order("#1006", financial_status="REFUNDED", fulfillment_status="FULFILLED",
                   fulfillments=[fulfillment(display_status="DELIVERED", delivered_at="2025-03-04T11:20:00Z")])
    order = await source.find("1006")
    assert order is not None and order.status is OrderStatus.REFUNDED
    assert order.source_status == "REFUNDED / FULFILLED"


@pytest.mark.parametrize(("financial", "fulfillment_status", "expected"), [
    ("PENDING", "UNFULFILLED", OrderStatus.PENDING_PAYMENT),
    ("PARTIALLY_PAID", "UNFULFILLED", OrderStatus.PENDING_PAYMENT),
    ("AUTHORIZED", "UNFULFILLED", OrderStatus.PROCESSING),
    ("PAID", "IN_PROGRESS", OrderStatus.PROCESSING),
    ("PAID", "ON_HOLD", OrderStatus.ON_HOLD),
    ("PAID", "PARTIALLY_FULFILLED", OrderStatus.PARTIALLY_SHIPPED),
    ("PARTIALLY_REFUNDED", "FULFILLED", OrderStatus.SHIPPED),
    ("PENDING", "FULFILLED", OrderStatus.SHIPPED),  # shipped on invoice terms: the parcel is the news
    ("PAID", "SOMETHING_NEW", OrderStatus.PROCESSING),
])
async def test_financial_and_fulfillment_states_map_to_one_status(shop, source, financial, fulfillment_status,
                                                                  expected):
    shop.add_order("#1007", financial_status=financial, fulfillment_status=fulfillment_status)
    order = await source.find("1007")
    assert order is not None and order.status is expected


async def test_a_zero_decimal_currency_total_has_no_cents(shop, source):
    shop.add_order("#1008", total="1500.0", currency="JPY")
    order = await source.find("1008")
    assert order is not None and (order.total, order.currency) == ("1500", "JPY")


async def test_line_items_without_variant_or_sku_map_to_empty_strings(shop, source):
    shop.add_order("#1009", line_items=[line_item("Gift card", 1)])
    order = await source.find("1009")
    assert order is not None and order.items == (LineItem("Gift card", 1, "", ""),)


# -- finding the right order ------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["1001", "#1001", " #1001 "])
async def test_the_number_with_or_without_hash_finds_the_shops_name(shop, source, written):
    shop.add_order("#1001")
    order = await source.find(written)
    assert order is not None and order.number == "#1001"
    assert shop.requests[-1].search == "name:#1001"


async def test_a_merchants_own_prefix_is_searched_as_written(shop, source):
    shop.add_order("LL-1001")
    order = await source.find("ll-1001")
    assert order is not None and order.number == "LL-1001"
    assert shop.requests[-1].search == "name:ll-1001"


async def test_a_loose_search_hit_with_another_name_is_not_the_order(shop, source):
    shop.add_order("#10010")  # Shopify's search answers "name:#1001" with its neighbour
    assert await source.find("1001") is None
    assert len(shop.requests) == 1 and shop.requests[0].status == 200


async def test_an_unknown_number_is_none(shop, source):
    shop.add_order("#1001")
    assert await source.find("9999") is None


@pytest.mark.parametrize("written", ["1001 OR email:x@example.com", 'name:"1"', "", "#", "a" * 41, "10 01"])
async def test_text_that_cannot_be_an_order_name_is_none_without_asking_the_shop(shop, source, written):
    assert await source.find(written) is None
    assert shop.requests == []


def test_order_names_are_normalised_to_the_shops_form():
    assert order_name("1001") == "#1001"
    assert order_name("#1001") == "#1001"
    assert order_name("LL-1001") == "LL-1001"
    assert order_name("1001:x") is None


# -- the request -------------------------------------------------------------------------------------------


async def test_the_request_carries_the_token_header_and_the_api_version_in_its_path(shop, source):
    shop.add_order("#1001")
    await source.find("1001")
    (request,) = shop.requests
    assert request.method == "POST"
    assert request.path == f"/admin/api/{VERSION}/graphql.json"
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.body == {"query": ORDER_QUERY, "variables": {"query": "name:#1001"}}


async def test_the_query_asks_only_for_fields_the_admin_schema_has(shop, source):
    """The fake answers an unknown field with undefinedField, as Shopify does: the query must not have one."""
    shop.add_order("#1001", fulfillment_status="FULFILLED",
                   fulfillments=[fulfillment(tracking_info=[tracking("DHL", "1")])])
    assert await source.find("1001") is not None
    assert "orders(first: 1, query: $query)" in ORDER_QUERY


async def test_a_shop_url_with_a_trailing_slash_is_the_same_endpoint(shop, make_source):
    shop.add_order("#1001")
    assert await make_source(shop_url=shop.url + "/").find("1001") is not None
    assert shop.requests[-1].path == f"/admin/api/{VERSION}/graphql.json"


# -- failures -----------------------------------------------------------------------------------------------


async def test_a_wrong_token_is_shop_unavailable_and_warns_the_merchant(shop, make_source, caplog):
    with caplog.at_level(logging.WARNING, logger="commerce.sources.shopify"):
        with pytest.raises(ShopUnavailable, match="access token refused") as raised:
            await make_source(token="shpat_wrong").find("1001")
    assert raised.value.source == "shopify"
    assert shop.requests[0].status == 401
    assert any(r.levelno == logging.WARNING and "token_refused" in r.getMessage() for r in caplog.records)
    assert "shpat_wrong" not in caplog.text


async def test_throttled_twice_then_answered_waits_what_the_bucket_says(shop, source):
    shop.add_order("#1001")
    shop.throttle(2, requested=62, available=60, restore_rate=100.0)  # (62 - 60) / 100 = 0.02 s each
    started = time.monotonic()
    order = await source.find("1001")
    elapsed = time.monotonic() - started
    assert order is not None and order.number == "#1001"
    assert len(shop.requests) == 3
    assert elapsed >= 0.035


async def test_http_429_is_retried_after_retry_after(shop, source):
    shop.add_order("#1001")
    shop.rate_limit(1, retry_after="0.05")
    started = time.monotonic()
    assert await source.find("1001") is not None
    assert time.monotonic() - started >= 0.05
    assert [r.status for r in shop.requests] == [429, 200]


async def test_throttling_longer_than_the_budget_is_shop_unavailable_without_waiting_it_out(shop, make_source):
    shop.add_order("#1001")
    shop.throttle(1, requested=1000, available=0, restore_rate=100.0)  # 10 s: far past the budget
    started = time.monotonic()
    with pytest.raises(ShopUnavailable, match="THROTTLED"):
        await make_source(max_throttle_wait_seconds=0.1).find("1001")
    assert time.monotonic() - started < 0.5
    assert len(shop.requests) == 1


async def test_throttling_that_adds_up_past_the_budget_is_shop_unavailable(shop, make_source):
    shop.add_order("#1001")
    shop.throttle(10, requested=62, available=58, restore_rate=100.0)  # 0.04 s each
    with pytest.raises(ShopUnavailable, match="THROTTLED"):
        await make_source(max_throttle_wait_seconds=0.1).find("1001")
    assert len(shop.requests) == 3  # waited 0.04 + 0.04; a third wait would pass 0.1


async def test_a_429_asking_for_more_than_the_budget_is_shop_unavailable(shop, make_source):
    shop.rate_limit(1, retry_after="2.0")
    with pytest.raises(ShopUnavailable, match="429"):
        await make_source(max_throttle_wait_seconds=0.1).find("1001")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_shop_unavailable(shop, source, status):
    shop.add_order("#1001")
    shop.fail(1, status=status)
    with pytest.raises(ShopUnavailable, match=f"HTTP {status}"):
        await source.find("1001")
    assert len(shop.requests) == 1


async def test_a_slow_shop_is_shop_unavailable_after_the_timeout(shop, make_source):
    shop.add_order("#1001")
    shop.delay_seconds = 1.0
    started = time.monotonic()
    with pytest.raises(ShopUnavailable, match="no answer within"):
        await make_source(timeout_seconds=0.1).find("1001")
    assert time.monotonic() - started < 0.6


async def test_an_answer_that_is_not_json_is_shop_unavailable(shop, source):
    shop.answer_raw("<html>maintenance</html>", content_type="text/html")
    with pytest.raises(ShopUnavailable, match="not a JSON object"):
        await source.find("1001")


async def test_another_graphql_error_is_shop_unavailable_with_its_message(shop, source, caplog):
    shop.graphql_error("Access denied for orders field. Required access: `read_orders` access scope.")
    with caplog.at_level(logging.WARNING, logger="commerce.sources.shopify"):
        with pytest.raises(ShopUnavailable, match="read_orders"):
            await source.find("1001")
    assert any("access_denied" in r.getMessage() for r in caplog.records)


async def test_a_closed_port_is_shop_unavailable(make_source):
    async with FakeShopify(TOKEN) as gone:
        url = gone.url
    with pytest.raises(ShopUnavailable, match="unreachable"):
        await make_source(shop_url=url).find("1001")


# -- logging and lifecycle -----------------------------------------------------------------------------------


async def test_logs_name_the_order_and_outcome_but_never_the_shoppers_contact(shop, source, caplog):
    shop.add_order("#1001", email=EMAIL, phone="+4915112345678", shipping_phone=PHONE, zip_code="10115")
    with caplog.at_level(logging.DEBUG, logger="commerce.sources.shopify"):
        await source.find("1001")
        await source.find("404")
    assert "#1001" in caplog.text and "#404" in caplog.text
    for secret in (EMAIL, "+4915112345678", PHONE, "10115", TOKEN):
        assert secret not in caplog.text


async def test_a_session_passed_in_is_used_and_left_open(shop):
    shop.add_order("#1001")
    async with aiohttp.ClientSession() as session:
        orders = ShopifyOrders(shop_url=shop.url, token=TOKEN, api_version=VERSION, session=session)
        assert await orders.find("1001") is not None
        await orders.close()
        assert not session.closed


async def test_close_closes_the_session_it_made_and_may_be_called_twice(shop, source):
    shop.add_order("#1001")
    await source.find("1001")
    session = source._session
    await source.close()
    await source.close()
    assert session is not None and session.closed


async def test_a_dev_dashboard_app_exchanges_its_client_credentials_and_renews_an_expired_token():
    from commerce.sources.shopify_auth import ShopifyAccess

    async with FakeShopify() as shop:
        shop.add_order("#1001")
        access = ShopifyAccess(shop_url=shop.url, client_id=shop.client_id, client_secret=shop.client_secret)
        source = ShopifyOrders(shop_url=shop.url, access=access, api_version=shop.api_version)
        try:
            assert (await source.find("#1001")).number == "#1001"
            assert (await source.find("1001")).number == "#1001"  # the token is kept, not fetched per lookup
            assert len(shop.token_requests) == 1 and shop.token_requests[0]["grant_type"] == "client_credentials"
            shop.expire_tokens()  # its 24 hours are over: the Admin API answers 401
            assert (await source.find("#1001")).number == "#1001"
            assert len(shop.token_requests) == 2
        finally:
            await source.close()


async def test_wrong_client_credentials_leave_the_shop_unavailable_with_shopifys_reason():
    from commerce.sources.shopify_auth import ShopifyAccess

    async with FakeShopify() as shop:
        access = ShopifyAccess(shop_url=shop.url, client_id=shop.client_id, client_secret="not-the-secret")
        source = ShopifyOrders(shop_url=shop.url, access=access, api_version=shop.api_version)
        try:
            with pytest.raises(ShopUnavailable, match="invalid_client"):
                await source.find("#1001")
        finally:
            await source.close()
