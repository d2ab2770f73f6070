"""Orders end to end over real HTTP: the shopper asks, proves the order is theirs, and reads it from the shop's system."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import TOKEN, ask, stored_meta, with_cold_index, write_config

from bot.app import KefuApp
from bot.config import load_config
from bot.errors import ConfigError

AGENT_TOKEN = "agent-token-abcdef0123456789"
NOW = datetime.now(timezone.utc)


def iso(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def sample_orders() -> list[dict]:
    return [
        {"number": "LL-100001", "status": "shipped", "created_at": iso(3), "email": "ana.silva@example.com",
         "phone": "+49 151 23456789", "postcode": "10115", "total": "89.90", "currency": "EUR",
         "items": [{"title": "Rain jacket", "quantity": 1, "variant": "M / Navy"}],
         "shipments": [{"carrier": "DHL", "tracking_number": "00340434161094042557",
                        "tracking_url": "https://www.dhl.de/track?piececode=00340434161094042557",
                        "shipped_at": iso(2), "last_event_at": iso(1)}]},
        {"number": "LL-100002", "status": "processing", "created_at": iso(1), "email": "li.wei@example.com",
         "phone": "+86 138 0013 8000", "customer_id": "cust-42", "items": [{"title": "Wool scarf", "quantity": 2}]},
        {"number": "LL-100003", "status": "shipped", "created_at": iso(12), "email": "stuck@example.com",
         "items": [{"title": "Boots", "quantity": 1}],
         "shipments": [{"carrier": "GLS", "tracking_number": "GLS998877", "shipped_at": iso(11),
                        "last_event_at": iso(8)}]},
        {"number": "LL-100004", "status": "delivered", "created_at": iso(9), "email": "sam@example.com",
         "shipments": [{"carrier": "Royal Mail", "tracking_number": "AB123456789GB", "shipped_at": iso(8),
                        "delivered_at": iso(5)}]},
    ]


ORDERS_TOML = """
[orders]
source = "{source}"
number_pattern = "LL-\\\\d{{6}}"
number_example = "LL-123456"
intents = {{ status = ["order-tracking"], not_arrived = ["order-late"], cancel = ["order-change-cancel"] }}
max_failed_per_conversation = 3
max_failed_per_order = 5
{extra}
"""


def orders_config(tmp_path: Path, *, source: str = "file", extra: str = "", languages: str = '["en", "zh"]',
                  handoff: str = "enabled = true") -> Path:
    if source == "file" and "[orders.file]" not in extra:
        (tmp_path / "orders.json").write_text(json.dumps({"orders": sample_orders()}), encoding="utf-8")
        extra += '\n[orders.file]\npath = "orders.json"\n'
    path = write_config(tmp_path, ORDERS_TOML.format(source=source, extra=extra), handoff=handoff,
                        webhook=f'agent_token = "{AGENT_TOKEN}"')
    text = path.read_text(encoding="utf-8").replace('languages = ["en", "zh"]', f"languages = {languages}")
    path.write_text(text, encoding="utf-8")
    return path


def lookups(app: KefuApp) -> list[dict]:
    with sqlite3.connect(app.config.storage.database) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM order_lookups ORDER BY id")]


@pytest.fixture
async def shop(tmp_path):
    async with KefuApp(load_config(orders_config(tmp_path), environ={}), channels=["webhook"],
                       serve_http=True) as app:
        yield app


async def test_an_order_is_shown_only_after_the_shopper_gives_its_email(shop):
    first = await ask(shop, "where is my order LL-100001?")
    assert "LL-100001" in first["text"] and "email address or phone number" in first["text"]
    assert "DHL" not in first["text"] and "shipped" not in first["text"]
    second = await ask(shop, "sure, it's Ana.Silva@example.com")
    assert second["text"].startswith(f"Order LL-100001 shipped on {iso(2)[:10]}.")
    assert "DHL tracking number: 00340434161094042557\nhttps://www.dhl.de/track?piececode=00340434161094042557" \
        in second["text"]
    assert "1 × Rain jacket (M / Navy)" in second["text"]
    trace = stored_meta(shop, second)["order"]
    assert trace["proof"] == "email" and trace["order"]["status"] == "shipped"
    assert "email" not in trace["order"] and "ana" not in json.dumps(trace).lower()
    results = [(row["order_number"], row["result"], row["proof"]) for row in lookups(shop)]
    assert results == [("LL-100001", "asked_proof", None), ("LL-100001", "verified", "email")]
    assert all("ana" not in json.dumps(row).lower() for row in lookups(shop))
    # verified for this conversation: the next question about it needs no proof again
    third = await ask(shop, "and LL-100001 again?")
    assert third["text"].startswith("Order LL-100001 shipped")


async def test_a_chinese_shopper_is_answered_in_chinese_and_proves_it_with_a_phone_number(shop):
    first = await ask(shop, "我的订单LL-100002到哪了", conversation="zh")
    assert "LL-100002" in first["text"] and first["language"] == "zh"
    second = await ask(shop, "手机号 138 0013 8000", conversation="zh")
    assert second["language"] == "zh" and "LL-100002" in second["text"]
    assert "Wool scarf" in second["text"] and "shipped" not in second["text"]
    assert stored_meta(shop, second)["order"]["proof"] == "phone"


async def test_a_german_shopper_gets_the_order_in_german(tmp_path):
    config = load_config(orders_config(tmp_path, languages='["en", "zh", "de"]'), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        await ask(app, "Wo ist meine Bestellung LL-100001? Ich warte schon seit Tagen auf das Paket.", conversation="de")
        reply = await ask(app, "Meine E-Mail ist ana.silva@example.com", conversation="de")
    assert reply["language"] == "de"
    assert "LL-100001" in reply["text"] and "00340434161094042557" in reply["text"]
    german, _ = app_texts(config).get("order_status_shipped", "de", order="LL-100001", shipped=iso(2)[:10])
    assert german in reply["text"]  # after an apology: the shopper has been waiting for days


def app_texts(config):
    from bot.texts import Texts
    return Texts.from_config(config)


async def test_a_wrong_email_shows_nothing_and_reads_like_an_unknown_number(shop):
    await ask(shop, "status of LL-100001", conversation="w1")
    wrong = await ask(shop, "mallory@example.com", conversation="w1")
    await ask(shop, "status of LL-999999", conversation="w2")
    unknown = await ask(shop, "mallory@example.com", conversation="w2")
    for reply in (wrong, unknown):
        assert "DHL" not in reply["text"] and "shipped" not in reply["text"] and "Rain jacket" not in reply["text"]
    assert wrong["text"].replace("LL-100001", "N") == unknown["text"].replace("LL-999999", "N")
    results = [row["result"] for row in lookups(shop) if row["result"] not in ("asked_proof",)]
    assert results == ["no_match", "not_found"]


async def test_guessing_details_is_limited_per_conversation_and_per_order(shop):
    for guess in ("a@example.com", "b@example.com", "c@example.com"):
        reply = await ask(shop, f"LL-100001 {guess}", conversation="guess")
        assert "couldn't find order" in reply["text"]
    blocked = await ask(shop, "LL-100001 ana.silva@example.com", conversation="guess")  # right, but too late
    assert "For your security" in blocked["text"] and "DHL" not in blocked["text"]
    # another conversation trying the same order: the order's own limit (5) stops it too
    for guess in ("d@example.com", "e@example.com"):
        await ask(shop, f"LL-100001 {guess}", conversation="other")
    from_elsewhere = await ask(shop, "LL-100001 ana.silva@example.com", conversation="third")
    assert "For your security" in from_elsewhere["text"]
    # a different order in a fresh conversation is not affected
    fine = await ask(shop, "LL-100002 li.wei@example.com", conversation="fresh")
    assert "Wool scarf" in fine["text"]
    assert [row["result"] for row in lookups(shop)].count("rate_limited") == 2


async def test_an_order_question_without_a_number_gets_the_faq_answer_and_the_offer_to_look_it_up(shop):
    reply = await ask(shop, "where is my order??", conversation="n")
    assert reply["faq_ids"] == ["order-tracking"]
    assert reply["text"].startswith("When your order ships")
    assert reply["text"].endswith("What's your order number? It looks like LL-123456 and is in your order "
                                  "confirmation email.")
    asked = await ask(shop, "LL-100002", conversation="n")
    assert "email address or phone number" in asked["text"]
    shown = await ask(shop, "li.wei@example.com", conversation="n")
    assert "LL-100002" in shown["text"] and "Wool scarf" in shown["text"]


async def test_a_question_about_something_else_while_proof_is_awaited_is_answered_from_the_faq(shop):
    await ask(shop, "LL-100001 where is it", conversation="topic")
    reply = await ask(shop, "which payment methods do you accept?", conversation="topic")
    assert "Visa" in reply["text"]


async def test_a_stuck_parcel_goes_to_a_person_with_the_order_beside_the_transcript(tmp_path):
    # The helpdesk's URL is a closed port: the notice stays queued in the outbox, where the test reads it.
    handoff = ('enabled = true\n[handoff.notify]\nurl = "http://127.0.0.1:9/helpdesk"\n'
               'secret = "notify-secret-0123456789"\nbackoff_seconds = 600')
    config = load_config(orders_config(tmp_path, handoff=handoff), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as shop:
        reply = await ask(shop, "where is LL-100003? stuck@example.com", conversation="stuck")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{shop.http.base_url}/v1/agent/conversations/webhook/stuck",
                                headers={"Authorization": f"Bearer {AGENT_TOKEN}"}) as response:
                assert response.status == 200
                view = await response.json()
        with sqlite3.connect(shop.config.storage.database) as db:
            [payload] = [json.loads(row[0]) for row in db.execute(
                "SELECT payload FROM notifications WHERE event = 'handoff.requested'")]
    assert reply["kind"] == "handoff"
    assert "no update from the carrier on order LL-100003 for 8 days" in reply["text"]
    assert stored_meta(shop, reply)["handoff"]["reason"] == "order"
    assert view["reason"] == "order" and "no carrier scan for 8 days" in view["detail"]
    [order] = view["orders"]
    assert order["number"] == "LL-100003" and order["shipments"][0]["tracking_number"] == "GLS998877"
    assert "email" not in order and "stuck@" not in json.dumps(view["orders"])
    assert payload["order"]["number"] == "LL-100003" and payload["reason"] == "order"


async def test_delivered_but_not_received_goes_to_a_person(shop):
    await ask(shop, "my order hasn't arrived yet, what should I do?", conversation="nr")
    await ask(shop, "LL-100004", conversation="nr")
    reply = await ask(shop, "sam@example.com", conversation="nr")
    assert reply["kind"] == "handoff"
    assert "shows as delivered on" in reply["text"] and "haven't received it" in reply["text"]


async def test_a_cancellation_request_goes_to_a_person_with_the_order(shop):
    await ask(shop, "I want to cancel my order", conversation="cancel")
    await ask(shop, "LL-100002", conversation="cancel")
    reply = await ask(shop, "li.wei@example.com", conversation="cancel")
    assert reply["kind"] == "handoff" and "passed your request for order LL-100002" in reply["text"]


async def test_the_orders_file_is_reloaded_when_it_changes(tmp_path):
    config = load_config(orders_config(tmp_path, extra="cache_seconds = 0"), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as shop:
        before = await ask(shop, "LL-100009 new@example.com", conversation="r1")
        orders = [*sample_orders(), {"number": "LL-100009", "status": "processing", "email": "new@example.com"}]
        (tmp_path / "orders.json").write_text(json.dumps(orders), encoding="utf-8")
        await asyncio.sleep(2.1)  # the file is checked for changes at most every 2 s
        after = await ask(shop, "LL-100009 new@example.com", conversation="r2")
        (tmp_path / "orders.json").write_text("{not json", encoding="utf-8")  # a broken edit: the last good one stays
        await asyncio.sleep(2.1)
        still = await ask(shop, "LL-100009 new@example.com", conversation="r3")
    assert "couldn't find order LL-100009" in before["text"]
    assert after["text"].startswith("Order LL-100009") and "hasn't shipped yet" in after["text"]
    assert still["text"].startswith("Order LL-100009")


async def test_a_broken_orders_file_stops_the_start_naming_the_record_and_field(tmp_path):
    bad = [{"number": "LL-100001", "status": "on_its_way"}]
    (tmp_path / "orders.json").write_text(json.dumps(bad), encoding="utf-8")
    config = load_config(orders_config(tmp_path, extra='[orders.file]\npath = "orders.json"'), environ={})
    with pytest.raises(Exception, match=r"orders.json order 1 \(LL-100001\): field 'status': 'on_its_way' is not one"):
        async with KefuApp(config, channels=["webhook"], serve_http=False):
            pass


async def test_a_missing_orders_file_stops_the_start_naming_it(tmp_path):
    """Not a traceback: a config copied without its orders file (bench/shoppers.py did) names the file."""
    from commerce.sources.file import OrderFileError

    path = orders_config(tmp_path, extra='[orders.file]\npath = "orders.json"')
    index = with_cold_index(path)
    with pytest.raises(OrderFileError, match=r"orders.json: cannot be read: No such file or directory"):
        async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=False):
            pass
    assert not index.exists() or not any(index.iterdir())  # said before a minute of encoding the FAQ, not after


async def test_an_intent_naming_no_faq_entry_is_a_config_error(tmp_path):
    path = orders_config(tmp_path)
    path.write_text(path.read_text().replace('status = ["order-tracking"]', 'status = ["order-trackign"]'))
    with pytest.raises(ConfigError, match="orders.intents.status.*'order-trackign' is not an FAQ id"):
        async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=False):
            pass


@pytest.mark.parametrize("body, problem", [
    ('source = "shopify"\n[orders.shopify]\nshop_url = "lantern.myshopify.com"\ntoken = "x"',
     "orders.shopify.shop_url"),
    ('source = "shopify"\n[orders.shopify]\nshop_url = "https://lantern.myshopify.com"',
     "orders.shopify.client_id_env"),  # neither an access token nor the app's client credentials
    ('source = "shopify"\n[orders.shopify]\nshop_url = "https://lantern.myshopify.com"\ntoken = "x"\n'
     'client_id = "id"\nclient_secret = "s"', "orders.shopify.token_env"),  # both
    ('source = "shopify"\n[orders.shopify]\nshop_url = "https://lantern.myshopify.com"\nclient_id = "id"',
     "orders.shopify.client_secret"),
    ('source = "endpoint"\n[orders.endpoint]\nurl_template = "https://shop.example/orders"',
     "orders.endpoint.url_template"),
    ('source = "file"\nnumber_pattern = "LL-(\\\\d"', "orders.number_pattern"),
    ('source = "file"\nnumber_pattern = "LL-\\\\d{6}"\nnumber_example = "1001"', "orders.number_example"),
    ('source = "file"\nproof = ["birthday"]', "orders.proof"),
    ('source = "file"', "orders.file.path"),
])
def test_order_settings_are_checked_with_the_key_named(tmp_path, body, problem):
    prefix = '[orders]\nnumber_pattern = "LL-\\\\d{6}"\nnumber_example = "LL-123456"\n'
    path = write_config(tmp_path, prefix if "number_" not in body else "[orders]\n")
    path.write_text(path.read_text() + body + "\n")
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.")):
        load_config(path, environ={})


class FailingShop:
    """The merchant's order endpoint on 127.0.0.1: down (503) until told otherwise."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = True

    async def order(self, request: web.Request) -> web.Response:
        self.calls += 1
        if request.headers.get("Authorization") != "Bearer endpoint-token-123":
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.down:
            return web.json_response({"error": "maintenance"}, status=503)
        number = request.match_info["number"]
        if number != "LL-100002":
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(sample_orders()[1])


async def test_when_the_shop_system_is_down_the_shopper_is_told_and_nothing_is_guessed(tmp_path):
    failing = FailingShop()
    server = web.Application()
    server.router.add_get("/kefu/orders/{number}", failing.order)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    extra = (f'failures_to_open = 2\nopen_seconds = 600\n[orders.endpoint]\nurl_template = "{base}/kefu/orders/{{number}}"\n'
             'token = "endpoint-token-123"\n')
    try:
        config = load_config(orders_config(tmp_path, source="endpoint", extra=extra), environ={})
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            replies = [await ask(app, "LL-100002 li.wei@example.com", conversation=f"d{i}") for i in range(3)]
            for reply in replies:
                assert "can't reach our order system" in reply["text"] and "Wool scarf" not in reply["text"]
            assert failing.calls == 2  # the third lookup did not call a system that just failed twice
            assert [row["result"] for row in lookups(app)] == ["unavailable"] * 3
            app._orders._open_until = 0  # the breaker's wait is over
            failing.down = False
            reply = await ask(app, "LL-100002 li.wei@example.com", conversation="back")
            assert "Wool scarf" in reply["text"]
    finally:
        await runner.cleanup()


async def test_a_shopify_order_is_read_through_the_admin_graphql_api_also_when_throttled(tmp_path):
    from fake_shopify import FakeShopify, fulfillment, tracking

    async with FakeShopify(api_version="2025-07") as shopify:
        shopify.add_order("#1001", fulfillment_status="FULFILLED", email="ann.lee@example.com",
                          fulfillments=[fulfillment(created_at=iso(1), tracking_info=[
                              tracking("DHL Express", "1234567890", "https://www.dhl.com/track?AWB=1234567890")])])
        shopify.throttle(times=1, requested=62, available=52, restore_rate=100)  # a 0.1 s wait
        extra = (f'[orders.shopify]\nshop_url = "{shopify.url}"\napi_version = "2025-07"\n'
                 'token_env = "SHOPIFY_TOKEN"\n')
        path = orders_config(tmp_path, source="shopify", extra=extra)
        path.write_text(path.read_text().replace('number_pattern = "LL-\\\\d{6}"', 'number_pattern = "#?\\\\b\\\\d{4}\\\\b"')
                        .replace('number_example = "LL-123456"', 'number_example = "#1001"'))
        config = load_config(path, environ={"SHOPIFY_TOKEN": shopify.token})
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            asked = await ask(app, "where's my order 1001", conversation="s")
            shown = await ask(app, "ann.lee@example.com", conversation="s")
    assert "order 1001" in asked["text"] and "email address or phone number" in asked["text"]
    assert shown["text"].startswith("Order #1001 shipped on")
    assert "DHL Express tracking number: 1234567890\nhttps://www.dhl.com/track?AWB=1234567890" in shown["text"]
    graphql = [r for r in shopify.requests if r.path.endswith("/admin/api/2025-07/graphql.json")]
    assert len(graphql) == 2 and all(r.headers.get("X-Shopify-Access-Token") == shopify.token for r in graphql)


async def test_a_dev_dashboard_shopify_app_is_configured_with_its_client_id_and_secret(tmp_path):
    """Shops set up since 2026 have no admin-made token: kefu exchanges the app's credentials for one."""
    from fake_shopify import FakeShopify

    async with FakeShopify(api_version="2025-07") as shopify:
        shopify.add_order("#1001", email="ann.lee@example.com")
        extra = (f'[orders.shopify]\nshop_url = "{shopify.url}"\napi_version = "2025-07"\n'
                 'client_id_env = "SHOPIFY_CLIENT_ID"\nclient_secret_env = "SHOPIFY_CLIENT_SECRET"\n')
        path = orders_config(tmp_path, source="shopify", extra=extra)
        path.write_text(path.read_text().replace('number_pattern = "LL-\\\\d{6}"', 'number_pattern = "#?\\\\b\\\\d{4}\\\\b"')
                        .replace('number_example = "LL-123456"', 'number_example = "#1001"'))
        config = load_config(path, environ={"SHOPIFY_CLIENT_ID": shopify.client_id,
                                            "SHOPIFY_CLIENT_SECRET": shopify.client_secret})
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            shown = await ask(app, "where's my order 1001? ann.lee@example.com", conversation="cc")
    assert shown["text"].startswith("Order #1001") and len(shopify.token_requests) == 1
    assert [r.headers.get("X-Shopify-Access-Token") for r in shopify.requests] == shopify.issued


async def test_a_woocommerce_order_is_read_through_the_rest_api(tmp_path):
    from fake_woocommerce import FakeWooCommerce, tracking_item

    async with FakeWooCommerce() as woo:
        woo.add_order(id=4321, status="completed", email="ana@example.com",
                      tracking=[tracking_item("DPD", "01234567890123", link="https://tracking.dpd.de/01234567890123")])
        extra = (f'[orders.woocommerce]\nbase_url = "{woo.url}"\nconsumer_key_env = "WC_KEY"\n'
                 'consumer_secret_env = "WC_SECRET"\n')
        path = orders_config(tmp_path, source="woocommerce", extra=extra)
        path.write_text(path.read_text().replace('number_pattern = "LL-\\\\d{6}"', 'number_pattern = "#?\\\\b\\\\d{4}\\\\b"')
                        .replace('number_example = "LL-123456"', 'number_example = "#1001"'))
        config = load_config(path, environ={"WC_KEY": woo.consumer_key, "WC_SECRET": woo.consumer_secret})
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            await ask(app, "status of order #4321 please", conversation="w")
            wrong = await ask(app, "ana@example.org", conversation="w")
            shown = await ask(app, "sorry, ana@example.com", conversation="w")
    assert "DPD" not in wrong["text"]
    assert "#4321" in shown["text"] and "DPD tracking number: 01234567890123" in shown["text"]
    assert woo.calls("/orders/4321")


CUSTOMER_SECRET = "shop-customer-secret-0123456789"


async def post(app: KefuApp, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{app.http.base_url}/v1/messages", json=body,
                             headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            return response.status, await response.json()


async def test_a_logged_in_shopper_signed_by_the_shop_sees_their_order_without_giving_an_email(tmp_path):
    import hashlib
    import hmac

    signed = hmac.new(CUSTOMER_SECRET.encode(), b"cust-42", hashlib.sha256).hexdigest()
    config = load_config(orders_config(tmp_path, extra=f'customer_secret = "{CUSTOMER_SECRET}"'), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        status, own = await post(app, {"conversation_id": "in", "text": "where is LL-100002?", "customer_id": "cust-42",
                                       "customer_hash": signed})
        _, forged = await post(app, {"conversation_id": "forged", "text": "where is LL-100002?",
                                     "customer_id": "cust-42", "customer_hash": "0" * 64})
        _, other = await post(app, {"conversation_id": "other", "text": "where is LL-100001?",
                                    "customer_id": "cust-42", "customer_hash": signed})  # not this customer's
        bad_status, missing = await post(app, {"conversation_id": "x", "text": "hi", "customer_id": "cust-42"})
        results = [(row["conversation_key"], row["result"], row["proof"]) for row in lookups(app)]
    assert status == 200 and "Wool scarf" in own["reply"]["text"]
    assert "email address or phone number" in forged["reply"]["text"] and "Wool scarf" not in forged["reply"]["text"]
    assert "email address or phone number" in other["reply"]["text"]
    assert bad_status == 400 and missing["field"] == "customer_hash"
    assert ("webhook:in", "verified", "customer") in results


@pytest.mark.parametrize(("text", "number"), [
    ("我的订单#123456到哪了？", "123456"),
    ("请帮我查一下订单号100123，邮箱 x@example.com", "100123"),  # digits run straight into Chinese
    ("订单＃１２３４５６", "123456"),  # full-width
    ("ご注文1234567の配送状況", "1234567"),
    ("where is #1001?", "1001"),
    ("call me on 0151 2345678", None),  # inside a phone number
    ("my email is a1234@example.com", None),
])
def test_order_numbers_are_found_in_any_script_with_the_default_pattern(text, number):
    from commerce.recognize import OrderNumbers

    assert OrderNumbers.of(r"#?\b\d{4,10}\b").find(text) == number


async def test_a_chinese_shopper_writing_the_number_inside_the_sentence_gets_the_order(tmp_path):
    config = load_config(orders_config(tmp_path), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        reply = await ask(app, "请帮我查一下订单LL-100002，邮箱li.wei@example.com", conversation="zh-inline")
    assert reply["language"] == "zh" and "LL-100002" in reply["text"] and "Wool scarf" in reply["text"]
