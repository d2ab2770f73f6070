"""Products end to end over real HTTP: questions about a product and recommendations, from the shop's catalog."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest
from conftest import REPO, TOKEN, ask, stored_meta, with_cold_index, write_config

from bot.app import KefuApp
from bot.config import load_config
from bot.errors import ConfigError

SAMPLE_CATALOG = REPO / "examples" / "sample-shop" / "catalog.json"
CATALOG_TOML = '[catalog]\nsource = "file"\n[catalog.file]\npath = "catalog.json"\n'


def catalog_config(tmp_path: Path, extra: str = "") -> Path:
    shutil.copy(SAMPLE_CATALOG, tmp_path / "catalog.json")
    return write_config(tmp_path, CATALOG_TOML + extra, http="", webhook="")


@pytest.fixture
async def shop(tmp_path):
    config = load_config(catalog_config(tmp_path), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        yield app


async def test_a_named_product_in_a_size_gets_its_price_stock_and_page(shop):
    reply = await ask(shop, "do you have the rain jacket in M?")
    lines = reply["text"].split("\n")
    assert lines[0] == "Waxed cotton rain jacket — 119.00 EUR"
    assert lines[1] == "Yes, it's available in M."  # M / Olive is in stock, M / Navy is not
    assert "Sold out right now: M / Navy" in lines
    assert lines[-1] == "https://lanternlane.example/products/rain-jacket"
    assert reply["links"] == [{"title": "Waxed cotton rain jacket",
                               "url": "https://lanternlane.example/products/rain-jacket"}]
    assert stored_meta(shop, reply)["products"] == {"ids": ["rain-jacket"], "wishes": ["size M"]}
    async with aiohttp.ClientSession() as http:  # the stored reply keeps its links for the transcript
        async with http.get(f"{shop.http.base_url}/v1/conversations/c1",
                            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            transcript = await response.json()
    assert transcript["messages"][-1]["links"] == reply["links"]


async def test_a_sold_out_variant_is_said_so_and_never_an_invented_stock(shop):
    reply = await ask(shop, "is the down parka available in L?")
    assert reply["text"].startswith("Recycled down parka — 229.00 EUR\nSorry, it isn't available in L right now.")
    assert "In stock: S / Black, M / Black" in reply["text"]


async def test_a_chinese_shopper_gets_the_product_in_chinese_and_a_follow_up_colour_is_about_it(shop):
    first = await ask(shop, "有没有黑色的围巾", conversation="zh")
    assert first["language"] == "zh"
    assert first["text"].startswith("美利奴羊毛围巾 — 45.00 EUR\n")
    assert "黑色" in first["text"].split("\n")[1] or "Black" in first["text"].split("\n")[1]
    assert "平铺晾干" in first["text"]  # the catalog's own Chinese description
    again = await ask(shop, "红色的呢？有没有红色的", conversation="zh")
    assert again["text"].startswith("美利奴羊毛围巾")
    assert stored_meta(shop, again)["products"]["ids"] == ["merino-scarf"]


async def test_recommendations_honour_the_price_limit_and_the_category(shop):
    reply = await ask(shop, "a warm jacket for hiking under 120 EUR")
    ids = stored_meta(shop, reply)["products"]["ids"]
    assert ids and set(ids) <= {"fleece-jacket", "rain-jacket"}  # the 229 EUR parka and the socks are left out
    assert reply["text"].startswith("Here's what I found for you:\n1. ")
    assert len(reply["links"]) == len(ids) <= 3
    for line in reply["text"].split("\n")[1:]:
        if line[:2] in ("1.", "2.", "3."):
            assert "EUR" in line and float(line.split("— ")[1].split(" EUR")[0]) <= 120


async def test_recommendations_honour_size_and_colour_in_stock_after_the_faqs_own_answer(shop):
    reply = await ask(shop, "boots size 39, brown please")
    assert reply["faq_ids"] == ["size-guide-shoes"]  # the FAQ still answers what it answers …
    products = stored_meta(shop, reply)["products"]
    assert products["ids"] == ["hiking-boots"] and products["shown_after_the_faq_answer"]  # ankle: 39 brown sold out
    assert "1. Trail hiking boots — 149.00 EUR: 39 Brown · Waterproof hiking boots" in reply["text"]
    assert reply["links"] == [{"title": "Trail hiking boots", "url": "https://lanternlane.example/products/hiking-boots"}]


async def test_when_nothing_meets_the_limits_the_shopper_is_told_so(shop):
    reply = await ask(shop, "recommend a jacket under 50 EUR")
    assert reply["text"].startswith("I couldn't find anything in our catalog that matches all of that")
    assert reply["links"] == []


async def test_a_price_limit_in_another_currency_is_not_applied_as_if_it_were_euros(shop):
    reply = await ask(shop, "推荐一件200元以内的保暖外套", conversation="cny")
    meta = stored_meta(shop, reply)
    assert meta["products_price_limit"] == "CNY limit not applied to EUR prices"
    assert reply["text"].startswith("我们的价格以EUR计，所以没有按您的200 CNY筛选")  # told, not silently dropped


async def test_the_faq_still_answers_its_questions_and_a_named_product_follows_it(shop):
    faq = await ask(shop, "how long does shipping take?")
    assert faq["faq_ids"] == ["shipping-time"] and "products" not in stored_meta(shop, faq)
    care = await ask(shop, "is the wool scarf machine washable?")
    assert care["faq_ids"] == ["product-care"]
    assert care["text"].endswith("Merino wool scarf — 45.00 EUR\nhttps://lanternlane.example/products/merino-scarf")


def test_an_earlier_product_ranks_its_relatives_first_among_equals():
    """Personalised by the conversation: with two equally relevant products, the one related to what
    this shopper asked about before (same category or a shared tag) comes first; without that, search order."""
    from bot.config import CatalogConfig
    from bot.products.stage import ProductStage
    from commerce.products import Product, Variant
    from commerce.wishes import Wishes
    from knowledge.catalog import ProductHit

    def product(pid, category, tags):
        return Product(id=pid, title=pid, category=category, tags=tags,
                       variants=(Variant(id=pid + "-1", price="40.00", currency="EUR"),))
    boots, socks, card = product("boots", "Shoes", ("hiking",)), product("socks", "Accessories", ("hiking",)), \
        product("card", "Gift cards", ("gift",))
    hits = [ProductHit(p, 0.0, None, 0.7, "") for p in (card, socks, boots)]
    stage = ProductStage.__new__(ProductStage)
    stage._config = CatalogConfig(max_recommendations=2)
    assert [p.id for p in stage._recommend(hits, Wishes(), set(), "ideas?", [])] == ["card", "socks"]
    assert [p.id for p in stage._recommend(hits, Wishes(), set(), "ideas?", ["boots"])] == ["socks", "card"]


async def test_the_catalog_file_is_reloaded_when_it_changes(shop, tmp_path):
    catalog = json.loads((tmp_path / "catalog.json").read_text(encoding="utf-8"))
    scarf = next(p for p in catalog["products"] if p["id"] == "merino-scarf")
    scarf["variants"][1]["stock"] = 7  # black is back
    (tmp_path / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    versions = shop.catalog.versions
    for _ in range(200):
        if shop.catalog.versions > versions:
            break
        await asyncio.sleep(0.1)
    reply = await ask(shop, "is the merino wool scarf available in black?", conversation="reload")
    assert "Yes, it's available in Black." in reply["text"]


async def test_a_broken_catalog_file_stops_the_start_naming_the_product_and_field(tmp_path):
    path = catalog_config(tmp_path)
    (tmp_path / "catalog.json").write_text(json.dumps([{"id": "x", "title": "X", "variants": [{"price": "cheap"}]}]))
    with pytest.raises(Exception, match=r"catalog.json product 1 \(x\): field 'variants\[0\].price'"):
        async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=False):
            pass


async def test_a_missing_catalog_file_stops_the_start_naming_it(tmp_path):
    from commerce.sources.catalog_file import CatalogFileError

    path = catalog_config(tmp_path)
    index = with_cold_index(path)
    (tmp_path / "catalog.json").unlink(missing_ok=True)
    with pytest.raises(CatalogFileError, match=r"catalog.json: cannot be read: No such file or directory"):
        async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=False):
            pass
    assert not index.exists() or not any(index.iterdir())  # said before a minute of encoding the FAQ, not after


def test_catalog_settings_are_checked_with_the_key_named(tmp_path):
    path = write_config(tmp_path, '[catalog]\nsource = "shopify"\n[catalog.shopify]\nshop_url = "https://x.myshopify.com"\n')
    with pytest.raises(ConfigError, match=r"catalog\.shopify\.client_id_env"):
        load_config(path, environ={})
    path = write_config(tmp_path, '[catalog]\nsource = "file"\n')
    with pytest.raises(ConfigError, match=r"catalog\.file\.path"):
        load_config(path, environ={})


async def test_a_shopify_catalog_is_read_and_answered_from(tmp_path):
    from fake_shopify import FakeShopify, variant

    async with FakeShopify(api_version="2025-07") as shopify:
        shopify.add_product(title="Storm shell jacket", product_type="Jackets", handle="storm-shell",
                            description="A fully waterproof shell for mountain hikes.", tags=["waterproof"],
                            variants=[variant("M", price="159.00", inventory_quantity=0, options={"Size": "M"}),
                                      variant("L", price="159.00", inventory_quantity=3, options={"Size": "L"})])
        extra = (f'[catalog]\nsource = "shopify"\n[catalog.shopify]\nshop_url = "{shopify.url}"\n'
                 'api_version = "2025-07"\ntoken_env = "SHOPIFY_TOKEN"\n')
        config = load_config(write_config(tmp_path, extra), environ={"SHOPIFY_TOKEN": shopify.token})
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            reply = await ask(app, "is the storm shell jacket available in M?")
    assert reply["text"].startswith("Storm shell jacket — 159.00 EUR\nSorry, it isn't available in M right now.")
    assert "In stock: L" in reply["text"]


def test_telegram_shows_the_offered_links_as_url_buttons_after_the_suggestions():
    from adapters.telegram import quick_reply_keyboard
    from bot.messages import Link

    keyboard = quick_reply_keyboard(("How long does shipping take?",),
                                    (Link("Waxed cotton rain jacket", "https://lanternlane.example/p/rain-jacket"),))
    rows = keyboard.inline_keyboard
    assert rows[0][0].callback_data == "q:0"
    assert (rows[1][0].text, rows[1][0].url) == ("Waxed cotton rain jacket", "https://lanternlane.example/p/rain-jacket")
    assert quick_reply_keyboard((), ()) is None


async def test_a_kind_of_product_named_in_another_language_keeps_the_recommendation_to_that_kind(tmp_path):
    config = load_config(catalog_config(tmp_path).parent / "kefu.toml", environ={})
    text = config.path.read_text(encoding="utf-8").replace('languages = ["en", "zh"]',
                                                           'languages = ["en", "zh", "de", "es"]')
    config.path.write_text(text, encoding="utf-8")
    async with KefuApp(load_config(config.path, environ={}), channels=["webhook"], serve_http=True) as app:
        jackets = await ask(app, "Könnt ihr mir eine warme Jacke unter 120 Euro empfehlen?", conversation="de")
        backpack = await ask(app, "¿me recomiendas una mochila de menos de 70 euros?", conversation="es")
        tote = await ask(app, "推荐一个50欧以内的手提包", conversation="zh")
        ids = {name: stored_meta(app, reply)["products"]["ids"] for name, reply in
               (("jackets", jackets), ("backpack", backpack), ("tote", tote))}
    assert ids["jackets"] and set(ids["jackets"]) <= {"fleece-jacket", "rain-jacket"}  # not the 95 EUR jumper
    assert ids["backpack"] == []  # the shop sells no backpack: not the canvas tote instead
    assert ids["tote"] == ["canvas-tote"]


@pytest.mark.parametrize(("text", "kinds"), [
    ("Ich suche einen Rucksack bis 60 Euro", {"backpack"}),
    ("vous me conseillez un sac à dos ?", {"backpack"}),  # not a bag
    ("looking for a sleeping bag below 150 eur", {"sleeping bag"}),  # not a bag
    ("¿qué saco de dormir me recomiendas?", {"sleeping bag"}),
    ("Könnt ihr mir eine Regenjacke empfehlen?", {"jacket"}),  # a German compound, by its head
    ("Wanderstiefel in 42", {"boots"}),
    ("推荐一个80欧以内的背包", {"backpack"}),
    ("包邮吗", set()),  # free shipping, not a bag
    ("top quality hoodies", {"hoodie"}),  # "top" is no shirt
    ("is it in stock?", set()),
    ("Do you have any of those under 50 EUR?", set()),  # "those" is no German Hose
    ("can you pull up something under 30?", set()),  # "pull" is a sweater in French only
])
def test_kinds_of_product_are_read_in_the_shoppers_language(text, kinds):
    from commerce.product_types import kinds_in

    assert kinds_in(text, "en" if text.isascii() else None) == kinds


def test_words_that_are_kinds_in_one_language_only_count_in_it():
    from commerce.product_types import kinds_in

    assert kinds_in("je cherche un pull bleu", "fr") == {"sweater"} and kinds_in("pull it", "en") == set()
    assert kinds_in("eine Latzhose in M", "de") == {"trousers"}


def test_a_products_kinds_come_from_its_category_and_its_title():
    from commerce.product_types import product_kinds

    assert product_kinds("Shoes", "Trail hiking boots") == {"shoes", "boots"}
    assert product_kinds("Accessories", "Merino wool scarf") == {"scarf"}
    assert product_kinds("Sleeping bags", "Down mummy bag") == {"sleeping bag"}  # not a bag to carry
    assert product_kinds("", "Canvas tote bag") == {"bag"}


async def test_products_far_closer_to_the_message_than_any_faq_entry_are_listed(shop):
    found = await ask(shop, "jackets", conversation="found")
    assert found["text"].startswith("Here's what I found for you:\n1. ")
    assert set(stored_meta(shop, found)["products"]["ids"]) == {"fleece-jacket", "rain-jacket", "down-parka"}
    torn = await ask(shop, "my jacket arrived torn", conversation="torn")  # as close to the damaged-item entry
    assert torn["kind"] == "not_sure" and "products" not in stored_meta(shop, torn)


async def test_the_one_product_of_the_kind_named_is_the_one_meant(shop):
    reply = await ask(shop, "Wollsocken", conversation="socks")  # closer in meaning to the wool jumper
    assert stored_meta(shop, reply)["products"]["ids"] == ["wool-socks"]


async def test_what_the_shopper_bought_in_a_verified_order_is_what_a_follow_up_is_about(tmp_path):
    order = {"number": "LL-100001", "status": "delivered", "created_at": "2026-11-20T10:00:00Z",
             "email": "ana.silva@example.com", "items": [{"title": "Merino wool scarf", "quantity": 1,
                                                         "variant": "Charcoal"}],
             "shipments": [{"carrier": "DHL", "tracking_number": "0034", "shipped_at": "2026-11-21T08:00:00Z",
                            "delivered_at": "2026-11-23T12:00:00Z"}]}
    (tmp_path / "orders.json").write_text(json.dumps({"orders": [order]}), encoding="utf-8")
    orders = ('[orders]\nsource = "file"\nnumber_pattern = "LL-\\\\d{6}"\nnumber_example = "LL-123456"\n'
              '[orders.file]\npath = "orders.json"\n')
    config = load_config(catalog_config(tmp_path, orders), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        shown = await ask(app, "LL-100001 ana.silva@example.com", conversation="bought")
        assert shown["text"].startswith("Order LL-100001 was delivered")
        reply = await ask(app, "do you have it in red too?", conversation="bought")
    assert stored_meta(app, reply)["products"]["ids"] == ["merino-scarf"]
    assert "Yes, it's available in Red." in reply["text"]
