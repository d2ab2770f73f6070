"""The website chat widget end to end: a real kefu server on 127.0.0.1, the widget's API over real HTTP,
and the widget itself embedded in a page on another origin in a real headless Chromium (Playwright).

With KEFU_SCREENSHOTS=docs the 360 px phone screenshot lands in docs/ for the README.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import write_config
import test_web_console
from playwright.async_api import Page, expect
from test_web_console import PASSWORDS, live_console, queue_item

from bot.app import KefuApp
from bot.config import load_config
from bot.passwords import hash_password

browser = test_web_console.browser  # the console's headless Chromium fixture
SCREENSHOTS = Path(os.environ["KEFU_SCREENSHOTS"]) if os.environ.get("KEFU_SCREENSHOTS") else None
expect.set_options(timeout=20_000)


@asynccontextmanager
async def host_page(html: str = "") -> AsyncIterator[tuple[str, list[str]]]:
    """A shop's page on its own origin (another port); `html` is filled in once kefu's address is known."""
    pages: list[str] = [html]

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=pages[0], content_type="text/html")

    server = web.Application()
    server.router.add_get("/", page)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", pages
    finally:
        await runner.cleanup()


def shop_page(kefu: str, attributes: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta name="viewport" content="width=device-width, '
            f'initial-scale=1"><title>Shop</title></head><body><h1>A shop</h1><p>Our products.</p>'
            f'<script src="{kefu}/chat.js" async {attributes}></script></body></html>')


def chat_config(tmp_path: Path, origins: list[str], *, chat: str = "", http: str = "") -> Path:
    listed = ", ".join(f'"{origin}"' for origin in origins)
    return write_config(
        tmp_path,
        extra=(f'[web_chat]\nenabled = true\nallowed_origins = [{listed}]\ntitle = "Lantern Lane help"\n'
               f'greeting = {{ en = "Hi! Ask away.", de = "Hallo! Fragen Sie nur." }}\ncolour = "#7c3aed"\n{chat}\n'
               f'[console]\nenabled = true\n[[console.users]]\nname = "alice"\ndisplay_name = "Alice"\n'
               f'password_hash = "{hash_password(PASSWORDS["alice"])}"\nroles = ["agent", "merchant"]\n'),
        handoff="enabled = true\nagent_wait_seconds = 3600", http=http,
    )


@asynccontextmanager
async def kefu_with_chat(tmp_path: Path, origins: list[str], **options) -> AsyncIterator[KefuApp]:
    config = load_config(chat_config(tmp_path, origins, **options), environ={})
    async with KefuApp(config, channels=["web_chat", "web_console"], serve_http=True) as app:
        yield app


def rows(app: KefuApp, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(app.config.storage.database) as db:
        return db.execute(sql, params).fetchall()


def signed_in(customer: str | None) -> dict[str, str]:
    """The fields a shop's page adds for a signed-in shopper (the hash is checked only where orders are)."""
    return {"customer_id": customer, "customer_hash": "ab" * 32} if customer else {}


class Visitor:
    """The widget's API as a browser on `origin` calls it."""

    def __init__(self, base: str, origin: str, session: aiohttp.ClientSession):
        self.base, self.origin, self.session = base, origin, session
        self.token: str | None = None

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Origin": self.origin, **extra}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def open(self, language: str = "en", customer: str | None = None, **headers: str) -> dict:
        body = {"token": self.token, "language": language, **signed_in(customer)}
        async with self.session.post(f"{self.base}/chat/v1/session", headers=self.headers(**headers),
                                     json=body) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Access-Control-Allow-Origin"] == self.origin
            data = await response.json()
        self.token = data["token"]
        return data

    async def say(self, text: str, client_id: str, customer: str | None = None, **headers: str) -> tuple[int, dict]:
        async with self.session.post(f"{self.base}/chat/v1/messages", headers=self.headers(**headers),
                                     json={"text": text, "client_id": client_id, **signed_in(customer)}) as response:
            return response.status, await response.json()

    async def events(self, after: int = 0, *, until: int = 1, timeout: float = 60.0) -> list[tuple[str, dict]]:
        """Events from the stream until `until` messages from kefu (not the shopper) have arrived."""
        seen: list[tuple[str, dict]] = []
        async with self.session.get(f"{self.base}/chat/v1/events", headers=self.headers(**{"Last-Event-ID": str(after)}),
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            kind = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    seen.append((kind, json.loads(line[6:])))
                    if sum(1 for k, e in seen if k == "message" and e["from"] != "shopper") >= until:
                        return seen
        return seen


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[tuple[KefuApp, Visitor]]:
    origin = "https://shop.example"
    async with kefu_with_chat(tmp_path, [origin]) as app, aiohttp.ClientSession() as session:
        assert app.http is not None
        yield app, Visitor(app.http.base_url, origin, session)


async def test_a_visitor_asks_and_the_answer_arrives_on_the_event_stream(chat):
    app, visitor = chat
    opened = await visitor.open("de-DE")
    assert opened["language"] == "de" and opened["greeting"] == "Hallo! Fragen Sie nur."
    assert opened["title"] == "Lantern Lane help" and opened["colour"] == "#7c3aed"
    assert opened["labels"]["send"] == "Senden"
    status, accepted = await visitor.say("how long does shipping take?", "client-0001")
    assert status == 202 and not accepted["duplicate"]
    events = await visitor.events()
    messages = [event for kind, event in events if kind == "message"]
    assert messages[0]["from"] == "shopper" and messages[0]["client_id"] == "client-0001"
    assert messages[1]["from"] == "bot" and "business days" in messages[1]["text"]
    assert ("typing", {"on": True}) in events or ("typing", {"on": False}) in events
    # The same message sent again after a network drop is stored and answered once.
    status, again = await visitor.say("how long does shipping take?", "client-0001")
    assert status == 202 and again["duplicate"] and again["id"] == accepted["id"]
    assert rows(app, "SELECT count(*) FROM messages WHERE direction = 'in'") == [(1,)]
    # A reconnect after the last id it saw gets only what came later.
    await visitor.say("and returns?", "client-0002")
    later = await visitor.events(after=messages[1]["id"])
    assert [e["from"] for k, e in later if k == "message"] == ["shopper", "bot"]
    assert all(e["id"] > messages[1]["id"] for k, e in later if k == "message")


async def test_a_returning_visitor_keeps_the_conversation_and_no_token_reads_another(chat):
    app, visitor = chat
    first = await visitor.open()
    await visitor.say("hello", "client-0001")
    await visitor.events()
    again = await visitor.open()
    assert again["visitor"] == first["visitor"]
    stranger = Visitor(visitor.base, visitor.origin, visitor.session)
    other = await stranger.open()
    assert other["visitor"] != first["visitor"]
    await stranger.say("my own question about returns", "client-0001")
    theirs = await stranger.events()
    assert "hello" not in [e["text"] for _, e in theirs if "text" in e]
    forged = first["token"].rsplit(".", 1)[0].replace(first["visitor"], other["visitor"]) + "." + "0" * 64
    for token in (forged, "v1.x.1.y", "nonsense"):
        stranger.token = token
        status, body = await stranger.say("hi", "client-0009")
        assert status == 401 and body["error"] == "unauthorized"
    assert rows(app, "SELECT count(*) FROM messages WHERE direction = 'in'") == [(2,)]


async def test_pages_from_other_sites_bad_bodies_and_floods_are_refused_with_a_reason(chat):
    app, visitor = chat
    await visitor.open()
    async with visitor.session.options(f"{visitor.base}/chat/v1/messages", headers={
            "Origin": visitor.origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"}) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == visitor.origin
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    evil = Visitor(visitor.base, "https://evil.example", visitor.session)
    evil.token = visitor.token
    status, body = await evil.say("hi", "client-0001")
    assert status == 403 and body["error"] == "origin_not_allowed"
    async with visitor.session.post(f"{visitor.base}/chat/v1/session", headers={"Origin": "https://evil.example"},
                                    json={}) as response:
        assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    for payload, code in (({"text": "x" * 2001, "client_id": "client-0002"}, 413),
                          ({"text": " ", "client_id": "client-0002"}, 400),
                          ({"text": "hi"}, 400), ({"text": "hi", "client_id": "a/b"}, 400),
                          ({"text": "hi", "client_id": "client-0002", "admin": True}, 400),
                          ({"text": "hi", "client_id": "client-0002", "customer_id": "7"}, 400)):
        async with visitor.session.post(f"{visitor.base}/chat/v1/messages", headers=visitor.headers(),
                                        json=payload) as response:
            assert response.status == code, payload
            assert (await response.json())["detail"]
    for raw in (b"{", b"[1]", b'{"text": "\xff"}'):
        async with visitor.session.post(f"{visitor.base}/chat/v1/messages", data=raw, headers=visitor.headers(
                **{"Content-Type": "application/json"})) as response:
            assert response.status == 400, raw
    for after in ("²", "-1", "9" * 19):  # "²".isdigit() is True, but it is no message id
        async with visitor.session.get(f"{visitor.base}/chat/v1/events", params={"after": after},
                                       headers=visitor.headers()) as response:
            assert response.status == 400 and (await response.json())["error"] == "invalid_field"
    assert rows(app, "SELECT count(*) FROM messages") == [(0,)]
    statuses = [(await visitor.say(f"question {n}", f"client-1{n:03d}"))[0] for n in range(14)]
    assert statuses[:12] == [202] * 12 and statuses[12:] == [429, 429]
    assert rows(app, "SELECT count(*) FROM messages WHERE direction = 'in'") == [(12,)]


async def test_the_script_is_small_cacheable_and_loadable_from_any_page(chat):
    app, visitor = chat
    async with visitor.session.get(f"{visitor.base}/chat.js", headers={"Accept-Encoding": "gzip"}) as response:
        assert response.status == 200 and response.content_type == "application/javascript"
        assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert "max-age" in response.headers["Cache-Control"]
    sizes = []
    for name in ("chat.js", "chat.css"):
        async with visitor.session.get(f"{visitor.base}/{name}", headers={"Accept-Encoding": "gzip"},
                                       auto_decompress=False) as response:
            assert response.headers.get("Content-Encoding") == "gzip"
            sizes.append(len(await response.read()))
    assert sum(sizes) < 30 * 1024


# -- in the browser --------------------------------------------------------------------------------------


def widget(page: Page):
    return page.locator("#kefu-chat")


async def open_widget(page: Page) -> None:
    await page.get_by_role("button", name="Chat with us").click()
    await expect(widget(page)).to_have_attribute("data-live", "true")


async def send(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name="Type your message…").fill(text)
    await page.get_by_role("button", name="Send").click()


async def test_the_widget_on_another_sites_page_answers_hands_over_and_survives_reload_and_a_drop(tmp_path, browser):
    async with host_page() as (site, html):
        async with kefu_with_chat(tmp_path, [site]) as app:
            kefu = app.http.base_url
            html[0] = shop_page(kefu)
            context = await browser.new_context(viewport={"width": 1280, "height": 820}, locale="en-US")
            page = await context.new_page()
            await page.goto(site)
            await open_widget(page)
            log = page.get_by_role("log")
            await expect(log).to_contain_text("Hi! Ask away.")
            await expect(page.get_by_role("textbox", name="Type your message…")).to_be_focused()
            # A vague question: the bot offers quick replies, and one tap asks it.
            await send(page, "refund")
            chip = page.locator("#kefu-chat .chip").first
            await expect(chip).to_be_visible()
            asked = await chip.inner_text()
            await chip.click()
            await expect(log.locator(".from-shopper").last).to_have_text(f"You: {asked}")
            await expect(log.locator(".from-bot").last).not_to_have_attribute("data-kind", "not_sure")
            # Shopper text is shown as text, never run as HTML.
            await send(page, '<img src=x onerror="window.pwned=1">')
            await expect(log.locator(".from-shopper").last).to_contain_text("<img src=x")
            assert await page.evaluate("window.pwned") is None
            # A person is asked for; an agent answers in the console and it appears live in the widget.
            await send(page, "I want to talk to a human")
            await expect(log.locator(".from-bot").last).to_be_visible()
            agent = await live_console(browser, kefu, "alice")
            conversation = (await page.evaluate("key => localStorage.getItem(key)", f"kefu-chat:{kefu}")).split(".")[1]
            await queue_item(agent, conversation).click()
            await agent.click("#claim")
            await agent.fill("#reply-text", "Hello, this is Alice. Your refund left today.")
            await agent.click("#send")
            await expect(log).to_contain_text("Hello, this is Alice. Your refund left today.")
            await page.screenshot(path=str((SCREENSHOTS or tmp_path) / "web-chat-desktop.png"))
            # Reload: the same conversation, in order, once each.
            await page.reload()
            await open_widget(page)
            await expect(log).to_contain_text("Hello, this is Alice.")
            assert await log.locator(".from-shopper", has_text="I want to talk to a human").count() == 1
            # The network drops; the agent writes meanwhile; on reconnect nothing is missed.
            await context.set_offline(True)
            await agent.fill("#reply-text", "Tracking: LL-TRACK-42.")
            await agent.click("#send")
            await asyncio.sleep(1.0)
            await context.set_offline(False)
            await expect(log).to_contain_text("Tracking: LL-TRACK-42.", timeout=30_000)
            assert await log.locator(".bubble", has_text="Tracking: LL-TRACK-42.").count() == 1
            # Escape closes the panel and gives focus back to the launcher.
            await page.keyboard.press("Escape")
            await expect(page.get_by_role("button", name="Chat with us")).to_be_focused()
            inbound = rows(app, "SELECT count(*) FROM messages WHERE direction = 'in' AND channel = 'web_chat'")
            assert inbound == [(4,)]
            await context.close()


async def test_after_sign_out_the_next_person_on_the_computer_sees_none_of_the_shoppers_chat(tmp_path, browser):
    signed_in_page = 'data-customer-id="cust-42" data-customer-hash="' + "ab" * 32 + '"'
    async with host_page() as (site, html):
        async with kefu_with_chat(tmp_path, [site]) as app:
            kefu = app.http.base_url
            html[0] = shop_page(kefu, signed_in_page)
            context = await browser.new_context(viewport={"width": 1280, "height": 820}, locale="en-US")
            page = await context.new_page()
            await page.goto(site)
            await open_widget(page)
            log = page.get_by_role("log")
            await send(page, "where is my order LL-100002?")
            await expect(log.locator(".from-bot").last).to_be_visible()
            html[0] = shop_page(kefu)  # signed out: the shop's pages name nobody
            await page.reload()
            await open_widget(page)
            await send(page, "how much is shipping?")
            await expect(log.locator(".from-bot").last).to_be_visible()
            await expect(log).not_to_contain_text("LL-100002")
            # A single-page shop signs out without a reload: reset() clears the screen and the browser.
            await page.evaluate("window.kefuChat.reset()")
            await expect(log).not_to_contain_text("how much is shipping?")
            await expect(log).to_contain_text("Hi! Ask away.")  # the greeting stays
            await expect(widget(page)).to_have_attribute("data-live", "true")  # a new chat, ready
            await send(page, "do you ship to Iceland?")
            await expect(log.locator(".from-bot").last).to_be_visible()
            await expect(log).not_to_contain_text("how much is shipping?")
            # A single-page shop that only changes the tag's attributes: signing in keeps the chat ...
            tag = 'document.querySelector("script[src$=\'/chat.js\']")'
            await page.evaluate(f"{tag}.dataset.customerId = 'cust-42'; {tag}.dataset.customerHash = '{'ab' * 32}'")
            await send(page, "where is my order LL-100003?")
            await expect(log.locator(".from-shopper").last).to_have_attribute("data-id", re.compile(r"\d+"))
            await expect(log).to_contain_text("do you ship to Iceland?")
            # ... and signing out starts a new one, without what the signed-in shopper asked.
            await page.evaluate(f"delete {tag}.dataset.customerId; delete {tag}.dataset.customerHash")
            await send(page, "what payment methods do you accept?")
            await expect(log.locator(".from-shopper").last).to_have_attribute("data-id", re.compile(r"\d+"))
            await expect(log).not_to_contain_text("LL-100003")
            await expect(log).not_to_contain_text("do you ship to Iceland?")
            conversations = rows(app, "SELECT count(DISTINCT conversation) FROM messages WHERE channel = 'web_chat'")
            assert conversations == [(4,)]
            await context.close()


async def test_a_page_from_a_site_not_allowed_gets_no_chat_and_stores_nothing(tmp_path, browser):
    async with host_page() as (site, html), host_page() as (other, other_html):
        async with kefu_with_chat(tmp_path, [site]) as app:
            other_html[0] = shop_page(app.http.base_url)
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(other)
            await page.locator("#kefu-chat").get_by_role("button").first.click()
            await expect(page.locator("#kefu-chat .status")).to_contain_text("unavailable")
            await expect(widget(page)).to_have_attribute("data-live", "false")
            assert rows(app, "SELECT count(*) FROM messages") == [(0,)]
            await context.close()


async def test_on_a_360_px_phone_the_panel_fills_the_screen_in_the_shoppers_language(tmp_path, browser):
    async with host_page() as (site, html):
        async with kefu_with_chat(tmp_path, [site]) as app:
            html[0] = shop_page(app.http.base_url)
            context = await browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN",
                                                device_scale_factor=2, is_mobile=True, has_touch=True)
            page = await context.new_page()
            await page.goto(site)
            await page.get_by_role("button", name="在线客服").click()
            await expect(widget(page)).to_have_attribute("data-live", "true")
            await page.get_by_role("textbox", name="请输入您的消息…").fill("运费多少钱？")
            await page.get_by_role("button", name="发送").click()
            await expect(page.get_by_role("log").locator(".from-bot").last).to_contain_text("4.95")
            box = await page.locator("#kefu-chat .panel").bounding_box()
            assert box is not None and box["width"] == 360 and box["x"] == 0
            target = (SCREENSHOTS or tmp_path) / "web-chat-phone.png"
            await page.screenshot(path=str(target))
            assert target.stat().st_size > 10_000
            await context.close()


async def test_behind_a_proxy_each_shopper_is_limited_by_their_own_address_and_an_ipv6_one_by_its_64(tmp_path):
    """Behind nginx every request comes from 127.0.0.1: counting that, one busy shopper used up the whole
    shop's per-address allowance. Counting single IPv6 addresses, anyone could rotate past it."""
    origin = "https://shop.example"
    async with kefu_with_chat(tmp_path, [origin], chat="address_messages_per_minute = 3",
                              http="proxy_hops = 1") as app, aiohttp.ClientSession() as session:
        visitors = [Visitor(app.http.base_url, origin, session) for _ in range(4)]
        for visitor in visitors:
            await visitor.open()

        async def statuses(visitor: Visitor, address: str, count: int, tag: str) -> list[int]:
            forwarded = {"X-Forwarded-For": f"198.51.100.250, {address}"}  # the first entry is the client's forgery
            return [(await visitor.say(f"question {n}", f"client-{tag}{n:03d}", **forwarded))[0] for n in range(count)]

        assert await statuses(visitors[0], "203.0.113.7", 4, "a") == [202, 202, 202, 429]
        assert await statuses(visitors[1], "203.0.113.8", 3, "b") == [202, 202, 202]  # a neighbour is not limited
        rotated = [await statuses(visitors[2], f"2001:db8:1:2::{n:x}", 1, f"c{n}") for n in range(1, 5)]
        assert rotated == [[202], [202], [202], [429]]  # one /64, however many of its addresses
        assert await statuses(visitors[3], "2001:db8:1:3::1", 1, "d") == [202]  # the next /64 is someone else
        async with session.post(f"{app.http.base_url}/chat/v1/messages", headers=visitors[0].headers(
                **{"X-Forwarded-For": "not-an-address"}), json={"text": "hi", "client_id": "client-e000"}) as response:
            assert response.status == 202  # a proxy that wrote nonsense: the peer (127.0.0.1) is counted, logged
    assert rows(app, "SELECT count(*) FROM messages WHERE direction = 'in'") == [(11,)]


async def test_a_signed_in_shoppers_conversation_never_opens_for_the_next_person_on_that_browser(chat):
    """A shared computer: after sign-out (or with another shopper signed in) the saved token gets a new
    conversation, not the one with the first shopper's orders; a guest who signs in keeps theirs."""
    app, visitor = chat
    guest = (await visitor.open())["visitor"]
    assert (await visitor.say("hi, a question first", "client-g001"))[0] == 202
    status, body = await visitor.say("where is my order LL-100002?", "client-a001", customer="cust-42")
    assert status == 409 and body["error"] == "account_changed"  # signed in since: the session first
    assert (await visitor.open(customer="cust-42"))["visitor"] == guest  # the guest signed in: same chat
    assert (await visitor.say("where is my order LL-100002?", "client-a001", customer="cust-42"))[0] == 202
    status, body = await visitor.say("and my address?", "client-a002")  # the page names nobody now
    assert status == 409 and body["error"] == "account_changed"
    assert (await visitor.open(customer="cust-42"))["visitor"] == guest  # the same shopper, back: same chat
    kept = visitor.token
    after_sign_out = (await visitor.open())["visitor"]
    assert after_sign_out != guest
    assert (await visitor.say("how much is shipping?", "client-n001"))[0] == 202
    shown = [event["text"] for kind, event in await visitor.events(until=1) if kind == "message"]
    assert shown[0] == "how much is shipping?" and not any("LL-100002" in text for text in shown)
    visitor.token = kept
    assert (await visitor.open(customer="cust-77"))["visitor"] not in (guest, after_sign_out)  # someone else
    mine = visitor.token
    visitor.token = mine.replace(mine.split(".")[3], "-")  # a token made a guest's by hand: not signed
    status, body = await visitor.say("hello", "client-x001")
    assert status == 401 and body["error"] == "unauthorized"
    assert rows(app, "SELECT count(*) FROM messages WHERE direction = 'in' AND conversation = ?", guest) == [(2,)]


def test_a_token_from_before_accounts_still_opens_its_guest_conversation(tmp_path):
    import hashlib
    import hmac

    from adapters.web_chat.tokens import GUEST, VisitorTokens

    tokens = VisitorTokens(secret=b"s" * 32, days=2)
    payload = "v1.AAAAAAAAAAAAAAAAAAAAAA.1000000"
    old = f"{payload}.{hmac.new(b's' * 32, payload.encode(), hashlib.sha256).hexdigest()}"
    checked = tokens.check(old, 1_000_100)
    assert checked is not None and checked.visitor == "AAAAAAAAAAAAAAAAAAAAAA" and checked.account == GUEST
    assert checked.may_continue_as(tokens.account("cust-42"))  # a guest may sign in and go on
    token, issued = tokens.issue(checked.visitor, 1_000_100, tokens.account("cust-42"))
    assert tokens.check(token, 1_000_100) == issued and not issued.may_continue_as(GUEST)
    assert tokens.account("cust-42") != tokens.account("cust-43") and "cust-42" not in token
    forged = (old + "\n", old.replace(".1000000.", ".²000000."), token.replace("v2.", "v3.", 1), token[:-1] + "\udcff")
    for bad in forged:
        assert tokens.check(bad, 1_000_100) is None


# -- tokens and limits -------------------------------------------------------------------------------------


def test_a_visitor_token_expires_and_is_bound_to_its_secret(tmp_path):
    from adapters.web_chat.tokens import VisitorTokens, load_or_create_secret

    secret = load_or_create_secret(tmp_path / "data" / "web_chat.secret")
    assert load_or_create_secret(tmp_path / "data" / "web_chat.secret") == secret  # a restart keeps it
    assert oct((tmp_path / "data" / "web_chat.secret").stat().st_mode & 0o777) == "0o600"
    tokens = VisitorTokens(secret=secret, days=2)
    token, issued = tokens.issue(None, 1_000_000)
    assert tokens.check(token, 1_000_000 + 2 * 86400) == issued
    assert tokens.check(token, 1_000_000 + 2 * 86400 + 1) is None
    assert VisitorTokens(secret=b"another secret, 32 characters long", days=2).check(token, 1_000_000) is None


def test_the_rate_limit_counts_a_sliding_window_per_key():
    from adapters.web_chat.limits import WindowLimiter

    now = [0.0]
    limiter = WindowLimiter(limit=2, window_seconds=60.0, clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a"), limiter.take("b")] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == 60.0
    now[0] = 30.0
    assert limiter.take("a") == 30.0
    now[0] = 60.0
    assert limiter.take("a") == 0.0


def test_the_rate_limit_forgets_the_least_recently_used_key_when_full():
    from adapters.web_chat.limits import WindowLimiter

    limiter = WindowLimiter(limit=1, window_seconds=60.0, clock=lambda: 0.0, max_keys=3)
    assert [limiter.take(key) for key in "abc"] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == 60.0  # "a" is used again: "b" is now the oldest
    assert limiter.take("d") == 0.0 and len(limiter) == 3
    assert limiter.take("a") == 60.0 and limiter.take("c") == 60.0  # still counted
    assert limiter.take("b") == 0.0  # forgotten to make room: memory stays bounded under a flood of new keys
