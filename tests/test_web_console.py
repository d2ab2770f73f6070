"""The web console end to end: a real kefu server on 127.0.0.1, real HTTP from the shop's side,
and agents and a merchant in a real headless Chromium (Debian's, driven by Playwright).

Each run takes a screenshot of the console and of the dashboard; with KEFU_SCREENSHOTS=docs they land
in docs/ for the README (otherwise in the test's temporary folder, so a test run leaves the tree clean).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import REPO, TOKEN, loopback_server, write_config
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.app import KefuApp
from bot.config import load_config
from bot.messages import Message, Reply, ReplyKind
from bot.passwords import hash_password

CHROMIUM = os.environ.get("KEFU_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "mia": "mia-secret-333"}
HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}
SCREENSHOTS = Path(os.environ["KEFU_SCREENSHOTS"]) if os.environ.get("KEFU_SCREENSHOTS") else None
WAIT_MS = 15_000
expect.set_options(timeout=WAIT_MS)


class Shopper:
    """The shop's site: posts shopper messages to kefu and receives pushed replies (outgoing webhook)."""

    def __init__(self, base: str, session: aiohttp.ClientSession):
        self.base = base
        self.session = session
        self.pushed: list[dict] = []
        self.arrived = asyncio.Event()

    async def on_reply(self, request: web.Request) -> web.Response:
        self.pushed.append(json.loads(await request.read())["reply"])
        self.arrived.set()
        return web.Response(status=204)

    async def say(self, conversation: str, text: str, name: str | None = None) -> dict:
        body = {"conversation_id": conversation, "text": text}
        if name:
            body["display_name"] = name
        async with self.session.post(f"{self.base}/v1/messages", json=body,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def pushed_reply(self, predicate, timeout: float = 15.0) -> dict:
        async def poll() -> dict:
            while True:
                for reply in self.pushed:
                    if predicate(reply):
                        return reply
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(poll(), timeout)


def console_config(tmp_path: Path, replies_url: str) -> Path:
    users = "".join(
        f'\n[[console.users]]\nname = "{name}"\ndisplay_name = "{name.title()}"\npassword_hash = "{HASHES[name]}"\n'
        f'roles = [{", ".join(f"{chr(34)}{r}{chr(34)}" for r in roles)}]\n'
        for name, roles in (("alice", ["agent", "merchant"]), ("bob", ["agent"]), ("mia", ["merchant"]))
    )
    return write_config(
        tmp_path,
        extra=f"[console]\nenabled = true\nsign_in_attempts = 3\n{users}",
        webhook=f'\n[webhook.outgoing]\nurl = "{replies_url}"\nsecret = "outgoing-secret"\nbackoff_seconds = 0.05\n',
        handoff="enabled = true\nagent_wait_seconds = 3600",
    )


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[tuple[KefuApp, Shopper]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        shopper = Shopper("", session)
        async with loopback_server({"/replies": shopper.on_reply}) as receiver:
            config = load_config(console_config(tmp_path, f"{receiver}/replies"), environ={})
            async with KefuApp(config, channels=["webhook", "web_console"], serve_http=True) as app:
                assert app.http is not None
                shopper.base = app.http.base_url
                yield app, shopper


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("the browser tests need Chromium: `make test` installs Debian's chromium; "
                    "or point KEFU_CHROMIUM at a Chromium binary")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield launched
        finally:
            await launched.close()


async def sign_in(browser: Browser, base: str, name: str, *, password: str | None = None,
                  viewport: dict | None = None, page: Page | None = None) -> Page:
    if page is None:
        context = await browser.new_context(viewport=viewport or {"width": 1280, "height": 820})
        page = await context.new_page()
        await page.goto(f"{base}/console")
    await page.fill("#name", name)
    await page.fill("#password", password or PASSWORDS[name])
    await page.click("#sign-in-button")
    return page


async def live_console(browser: Browser, base: str, name: str, **options) -> Page:
    page = await sign_in(browser, base, name, **options)
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    return page


def queue_item(page: Page, conversation: str):
    return page.locator(f'.queue-item[data-conversation="{conversation}"]')


def rows(app: KefuApp, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(app.config.storage.database) as db:
        return db.execute(sql, params).fetchall()


async def csrf_of(page: Page) -> str:
    return await page.get_attribute('meta[name="csrf-token"]', "content")


async def post_from_page(page: Page, path: str, headers: dict | None = None) -> tuple[int, dict]:
    """A state change sent by the signed-in page's own JavaScript, with exactly the headers given."""
    found = await page.evaluate(
        """async ([path, headers]) => {
            const response = await fetch(path, {method: "POST", credentials: "same-origin",
                                               headers: {"Content-Type": "application/json", ...headers}, body: "{}"});
            return [response.status, await response.json()];
        }""",
        [path, headers or {}],
    )
    return found[0], found[1]


# -- signing in ----------------------------------------------------------------------


async def test_a_wrong_password_is_refused_and_the_right_one_opens_the_console(shop, browser):
    app, _ = shop
    base = app.http.base_url
    page = await sign_in(browser, base, "alice", password="not-her-password")
    await expect(page.locator("#sign-in-error")).to_have_text("Wrong name or password.")
    assert await page.context.cookies() and all(c["name"] != "kefu_console" for c in await page.context.cookies())
    await sign_in(browser, base, "alice", page=page)
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await expect(page.locator("#queue-empty")).to_be_visible()
    session = next(c for c in await page.context.cookies() if c["name"] == "kefu_console")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict" and session["path"] == "/console"
    assert await page.evaluate("document.cookie") == ""  # the page's scripts cannot read the session
    await page.click("text=Sign out")
    await expect(page.locator("#sign-in-form")).to_be_visible()
    async with aiohttp.ClientSession(cookies={"kefu_console": session["value"]}) as stolen:
        async with stolen.get(f"{base}/console/api/handoffs") as response:
            assert response.status == 401  # signing out ended the session on the server too


async def test_sign_in_is_rate_limited_per_name_even_with_the_right_password(shop):
    app, _ = shop
    base = app.http.base_url

    async def attempt(session: aiohttp.ClientSession, password: str) -> tuple[int, str]:
        async with session.get(f"{base}/console") as page:
            token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
        form = {"csrf": token, "name": "bob", "password": password, "next": "console"}
        async with session.post(f"{base}/console/sign-in", data=form, allow_redirects=False) as response:
            return response.status, await response.text()

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # unsafe: an IP host
        for _ in range(3):
            status, _ = await attempt(session, "guess")
            assert status == 401
        status, body = await attempt(session, PASSWORDS["bob"])
        assert status == 429 and "Too many failed sign-ins" in body
        async with session.post(f"{base}/console/sign-in", data={"name": "bob", "password": PASSWORDS["bob"]},
                                allow_redirects=False) as response:
            assert response.status == 403  # no form token: a sign-in posted from another site


async def test_roles_keep_merchants_out_of_the_queue_and_agents_out_of_the_dashboard(shop, browser):
    app, _ = shop
    base = app.http.base_url
    merchant = await sign_in(browser, base, "mia")
    await expect(merchant).to_have_url(f"{base}/console/insights")
    status, body = await post_from_page(merchant, "/console/api/handoffs")
    assert status == 405 or body["error"] in ("forbidden", "method_not_allowed")
    reply = await merchant.evaluate("fetch('/console/api/handoffs').then(r => r.status)")
    assert reply == 403
    agent = await live_console(browser, base, "bob")
    response = await agent.goto(f"{base}/console/insights")
    assert response.status == 403
    assert not await agent.locator("#insights-link").is_visible()


# -- working a handoff -------------------------------------------------------------------


def screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = SCREENSHOTS if SCREENSHOTS is not None else tmp_path
    if not folder.is_absolute():
        folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


async def test_an_agent_works_a_handoff_from_queue_to_release(shop, browser, tmp_path):
    app, shopper = shop
    base = app.http.base_url
    page = await live_console(browser, base, "alice")

    answer = await shopper.say("c-1", "I want to talk to a human please", name="Lena")
    assert answer["reply"]["kind"] == "handoff"
    item = queue_item(page, "c-1")
    await expect(item).to_be_visible()  # arrived live, without a reload
    await expect(item).to_contain_text("Lena")
    await expect(item).to_contain_text("asked for a person")
    await item.click()
    await expect(page.locator("#transcript .msg.shopper .text").first).to_have_text("I want to talk to a human please")
    await expect(page.locator("#transcript .event").first).to_contain_text("Handed to a person")
    await expect(page.locator("#conversation-meta")).to_contain_text("speaks en")

    await page.click("#claim")
    await expect(page.locator("#conversation-meta")).to_contain_text("with you")
    await expect(page.locator("#claim")).to_be_hidden()
    assert rows(app, "SELECT handoff_state, agent FROM conversations WHERE key = 'webhook:c-1'") == [("agent", "alice")]
    joined = await shopper.pushed_reply(lambda r: r["kind"] == "system" and r["conversation"] == "c-1")
    assert joined["text"]

    # The shopper writes again: it shows up live in the open conversation.
    forwarded = await shopper.say("c-1", "My parcel 4471 never arrived")
    assert forwarded["reply"] is None and forwarded["state"] == "agent"
    await expect(page.locator("#transcript .msg.shopper .text").last).to_have_text("My parcel 4471 never arrived")

    # FAQ search from the reply box inserts the merchant's answer.
    await page.fill("#faq-query", "how long does shipping take")
    await page.click("#faq-go")
    first = page.locator("#faq-results li").first
    await expect(first).to_have_attribute("data-faq-id", "shipping-time")
    faq_answer = await first.locator(".answer").text_content()
    await first.locator("button.insert").click()
    await expect(page.locator("#reply-text")).to_have_value(faq_answer)
    await page.fill("#reply-text", "Sorry about that, Lena! " + faq_answer)
    shot = screenshot_path(tmp_path, "console.png")
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    await page.click("#send")
    await expect(page.locator("#reply-text")).to_have_value("")
    delivered = await shopper.pushed_reply(lambda r: r["kind"] == "agent")
    assert delivered["text"] == "Sorry about that, Lena! " + faq_answer and delivered["conversation"] == "c-1"
    await expect(page.locator("#transcript .msg.agent .text")).to_have_text(delivered["text"])
    async with shopper.session.get(f"{base}/v1/conversations/c-1",
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        transcript = await response.json()
    assert [m["text"] for m in transcript["messages"] if m["role"] == "agent"] == [delivered["text"]]

    await page.click("#release")
    await expect(page.locator("#conversation-meta")).to_contain_text("the bot answers")
    await expect(queue_item(page, "c-1")).to_have_count(0)
    again = await shopper.say("c-1", "how long does shipping take?")
    assert again["reply"]["kind"] == "answer" and again["reply"]["faq_ids"] == ["shipping-time"]
    await expect(page.locator("#transcript .msg.bot .text").last).to_have_text(again["reply"]["text"])


async def test_a_sent_reply_scrolls_into_view_while_the_faq_results_are_open(shop, browser):
    app, shopper = shop
    page = await live_console(browser, app.http.base_url, "alice")
    await shopper.say("c-9", "human please", name="Noor")
    for number in range(12):  # a transcript longer than its pane
        await shopper.say("c-9", f"Message {number}: " + "my order is late and nobody answers my emails. " * 5)
    await app.claim("webhook", "c-9", "alice")
    await queue_item(page, "c-9").click()
    await expect(page.locator("#transcript .msg.shopper .text").last).to_contain_text("Message 11:")
    await page.fill("#faq-query", "how long does shipping take")
    await page.click("#faq-go")  # the results take room from the transcript, so its latest message slips down
    await expect(page.locator("#faq-results li").first).to_have_attribute("data-faq-id", "shipping-time")
    await page.fill("#reply-text", "Thanks Noor, I am checking your order now.")
    await page.click("#send")
    await expect(page.locator("#transcript .msg.agent .text")).to_have_text("Thanks Noor, I am checking your order now.")
    scrolls, shown = await page.evaluate("""() => {
        const list = document.getElementById("transcript");
        const pane = list.getBoundingClientRect();
        const sent = [...list.querySelectorAll(".msg.agent")].pop().getBoundingClientRect();
        return [list.scrollHeight > list.clientHeight, sent.top >= pane.top - 1 && sent.bottom <= pane.bottom + 1];
    }""")
    assert scrolls and shown  # the agent sees the reply they just sent
    await expect(page.locator("#faq-results li").first).to_be_visible()  # and the FAQ results stay open


async def test_a_queue_entry_stays_the_same_element_while_the_queue_changes_around_it(shop, browser):
    """The queue re-renders on every event; an agent's click that lands mid-render must still open the chat."""
    app, shopper = shop
    page = await live_console(browser, app.http.base_url, "alice")
    await shopper.say("c-3", "human please", name="Ola")
    entry = await queue_item(page, "c-3").element_handle()
    await shopper.say("c-4", "I want to talk to a person", name="Pia")  # a new handoff re-renders the queue
    await expect(queue_item(page, "c-4")).to_be_visible()
    await app.claim("webhook", "c-3", "alice")  # and moves c-3 from "Waiting" to "With an agent"
    await expect(page.locator("#active .queue-item")).to_have_count(1)
    assert await entry.evaluate("(node) => node.isConnected && node.closest('#active') !== null")
    await expect(queue_item(page, "c-3")).to_have_count(1)
    await entry.click()
    await expect(page.locator("#transcript .msg.shopper .text").first).to_have_text("human please")
    await expect(queue_item(page, "c-3")).to_have_class(re.compile(r"\bselected\b"))


async def test_a_second_agent_cannot_claim_a_conversation_another_agent_holds(shop, browser):
    app, shopper = shop
    base = app.http.base_url
    alice = await live_console(browser, base, "alice")
    bob = await live_console(browser, base, "bob")
    await shopper.say("c-2", "human please")
    for page in (alice, bob):
        await queue_item(page, "c-2").click()
        await expect(page.locator("#claim")).to_be_visible()
    await alice.click("#claim")
    await expect(alice.locator("#conversation-meta")).to_contain_text("with you")
    # Bob's open view follows live: Alice holds it, his reply box is closed.
    await expect(bob.locator("#composer-hint")).to_have_text("alice is handling this conversation.")
    await expect(bob.locator("#reply-text")).to_be_disabled()
    status, body = await post_from_page(bob, "/console/api/conversations/webhook/c-2/claim",
                                        {"X-CSRF-Token": await csrf_of(bob)})
    assert status == 409 and body["agent"] == "alice"
    status, _ = await post_from_page(bob, "/console/api/conversations/webhook/c-2/release",
                                     {"X-CSRF-Token": await csrf_of(bob)})
    assert status == 409
    assert rows(app, "SELECT agent FROM conversations WHERE key = 'webhook:c-2'") == [("alice",)]


async def test_shopper_text_is_shown_as_text_never_run_as_html(shop, browser):
    app, shopper = shop
    base = app.http.base_url
    page = await live_console(browser, base, "alice", viewport={"width": 390, "height": 844})  # a phone
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    handed = await shopper.say("c-3", "human please", name='<b onmouseover="window.pwned=3">Mallory</b>')
    assert handed["reply"]["kind"] == "handoff"
    await shopper.say("c-3", "x" * 500)  # one unbroken 500-character word
    await shopper.say("c-3", payload)
    item = queue_item(page, "c-3")
    await expect(item.locator(".who")).to_have_text('<b onmouseover="window.pwned=3">Mallory</b>')
    await expect(item.locator(".preview")).to_have_text(payload)
    await item.click()
    await expect(page.locator("#queue-pane")).to_be_hidden()  # on a phone the conversation takes the screen
    texts = page.locator("#transcript .msg.shopper .text")
    await expect(texts.nth(1)).to_have_text("x" * 500)
    await expect(texts.last).to_have_text(payload)
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("#transcript img, #transcript script, .queue img, #conversation-title b").count() == 0
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0  # the long word wraps instead of widening the page
    await page.click("#back")
    await expect(page.locator("#queue-pane")).to_be_visible()


async def test_changes_without_the_csrf_token_or_from_another_site_are_refused(shop, browser):
    app, shopper = shop
    base = app.http.base_url
    page = await live_console(browser, base, "alice")
    await shopper.say("c-4", "human please")
    claim = "/console/api/conversations/webhook/c-4/claim"
    status, body = await post_from_page(page, claim)
    assert (status, body["error"]) == (403, "csrf")
    status, body = await post_from_page(page, claim, {"X-CSRF-Token": "forged"})
    assert (status, body["error"]) == (403, "csrf")
    assert rows(app, "SELECT handoff_state FROM conversations WHERE key = 'webhook:c-4'") == [("waiting_agent",)]
    cookie = next(c for c in await page.context.cookies() if c["name"] == "kefu_console")
    async with aiohttp.ClientSession(cookies={"kefu_console": cookie["value"]}) as other_site:
        async with other_site.post(base + claim, json={}, headers={"X-CSRF-Token": await csrf_of(page),
                                                                   "Origin": "http://evil.example"}) as response:
            assert response.status == 403 and (await response.json())["error"] == "csrf"
    status, body = await post_from_page(page, claim, {"X-CSRF-Token": await csrf_of(page)})
    assert status == 200 and body["agent"] == "alice"


async def test_an_open_event_stream_does_not_hold_up_shutdown(tmp_path, browser):
    async def accept(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async with loopback_server({"/replies": accept}) as receiver:
        config = load_config(console_config(tmp_path, f"{receiver}/replies"), environ={})
        app = KefuApp(config, channels=["webhook", "web_console"], serve_http=True)
        await app.start()
        try:
            page = await live_console(browser, app.http.base_url, "bob")
        finally:
            started = asyncio.get_running_loop().time()
            await app.stop()
        assert asyncio.get_running_loop().time() - started < config.http.shutdown_timeout_seconds
        await expect(page.locator("#live")).to_have_attribute("data-state", "lost")


# -- the merchant dashboard --------------------------------------------------------------


async def record_old_turn(app: KefuApp, conversation: str, text: str, *, at: datetime, kind: ReplyKind,
                          latency_ms: float, language: str, sentiment: float) -> None:
    """A turn from an earlier day, written the way the pipeline writes one."""
    stored = await app.store.record_inbound(Message(channel="webhook", conversation=conversation, user_id=conversation,
                                                    text=text, timestamp=at))
    await app.store.write(lambda db: db.execute("UPDATE messages SET sentiment = ? WHERE id = ?",
                                                [sentiment, stored.message.id]))
    reply = Reply(channel="webhook", conversation=conversation, user_id=conversation, text="…", language=language,
                  kind=kind, created_at=at + timedelta(seconds=1))
    await app.store.record_reply(stored.message.id, reply, latency_ms=latency_ms, deliver=False,
                                 meta={"language": {"language": language, "confidence": 1.0}})


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %"


async def test_the_dashboard_shows_the_true_figures_of_a_known_store(shop, browser, tmp_path):
    app, shopper = shop
    base = app.http.base_url
    today = datetime.now(timezone.utc)
    two_days_ago = (today - timedelta(days=2)).replace(hour=12, minute=0)
    await record_old_turn(app, "old-1", "运费多少钱", at=two_days_ago, kind=ReplyKind.ANSWER, latency_ms=120,
                          language="zh", sentiment=0.5)
    await record_old_turn(app, "old-2", "你们卖礼品卡吗", at=two_days_ago + timedelta(minutes=5),
                          kind=ReplyKind.NO_MATCH, latency_ms=480, language="zh", sentiment=-0.5)
    kinds = []
    for conversation, text in (("d-1", "how long does shipping take?"), ("d-2", "how do I return an item?"),
                               ("d-3", "human please"), ("d-4", "do you have a store in Reykjavik"),
                               ("d-5", "is there a store in Reykjavik?")):
        kinds.append((await shopper.say(conversation, text))["reply"]["kind"])
    automated = kinds.count("answer")  # only a confident FAQ answer counts as automated
    handoffs = kinds.count("handoff")
    not_sure = kinds.count("not_sure")
    assert handoffs == 1 and automated == 2, kinds
    turns = len(kinds) + 2

    page = await sign_in(browser, base, "mia", viewport={"width": 1280, "height": 900})
    await expect(page).to_have_url(f"{base}/console/insights")
    await expect(page.locator("body")).to_have_attribute("data-loaded", re.compile(r"\d{4}-\d\d-\d\d\.\.\d{4}"))
    card = lambda figure: page.locator(f'[data-figure="{figure}"] .value')  # noqa: E731
    await expect(card("turns")).to_have_text(str(turns))
    await expect(page.locator("#automated")).to_have_text(percent(automated + 1, turns))
    await expect(page.locator("#automated-definition")).to_contain_text("answered confidently from the FAQ")
    share = lambda figure: page.locator(f'#beside [data-figure="{figure}"]')  # noqa: E731
    await expect(share("handoff_rate")).to_have_text("Handed over: " + percent(handoffs, turns))
    await expect(share("not_sure_rate")).to_have_text("Not sure: " + percent(not_sure, turns))
    await expect(share("error_rate")).to_have_text("Errors: 0.0 %")
    old_day = page.locator(f'#days tr[data-day="{two_days_ago.date().isoformat()}"] td')
    await expect(old_day).to_have_text([two_days_ago.date().isoformat(), "2", "1 (50.0 %)", "0", "0", "1", "0",
                                        "0", "0", "120 ms", "480 ms", "0.00", "1"])
    today_row = page.locator(f'#days tr[data-day="{today.date().isoformat()}"] td')
    await expect(today_row.nth(1)).to_have_text(str(len(kinds)))
    await expect(today_row.nth(3)).to_have_text(str(handoffs))
    await expect(page.locator('#languages li[data-key="zh"] .num')).to_have_text("2")
    await expect(page.locator('#reasons li[data-key="explicit_request"] .num')).to_have_text("1")
    await expect(page.locator("#mood-chart circle")).to_have_count(2)  # two days have scored turns

    # The two questions about a store in Reykjavik are one unanswered topic (the bot had no entry for it).
    unanswered = [text for (_, text), kind in zip((("", "do you have a store in Reykjavik"),
                                                     ("", "is there a store in Reykjavik?")), kinds[3:])
                  if kind in ("no_match", "not_sure")]
    assert len(unanswered) == 2, kinds
    reykjavik = page.locator("#clusters tbody tr", has_text="Reykjavik")
    await expect(reykjavik).to_have_count(1)
    await expect(reykjavik.locator("td").nth(1)).to_have_text("2")
    shot = screenshot_path(tmp_path, "insights.png")
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    async with page.expect_download() as download_info:
        await page.click("#csv")
    download = await download_info.value
    saved = tmp_path / "unanswered.csv"
    await download.save_as(saved)
    lines = saved.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("rank,count,conversations,representative")
    assert any("Reykjavik" in line and line.split(",")[1] == "2" for line in lines[1:])
    assert any("礼品卡" in line for line in lines[1:])


async def test_a_telegram_shoppers_handoff_is_worked_in_the_browser(tmp_path, browser):
    from fake_telegram import FakeTelegram
    from test_telegram import SHOPPER, TOKEN as TELEGRAM_TOKEN, telegram_config

    async with FakeTelegram(TELEGRAM_TOKEN, group_members=[]) as tg:
        path = telegram_config(tmp_path, tg, handoff="enabled = true")
        users = f'\n[console]\nenabled = true\n[[console.users]]\nname = "alice"\npassword_hash = "{HASHES["alice"]}"\n'
        path.write_text(path.read_text(encoding="utf-8").replace("agents_chat_id", "# agents_chat_id") + users,
                        encoding="utf-8")
        config = load_config(path, environ={"TEST_TG_TOKEN": TELEGRAM_TOKEN})
        async with KefuApp(config, channels=["telegram", "web_console"], serve_http=True) as app:
            page = await live_console(browser, app.http.base_url, "alice")
            tg.push_update(tg.text_update(SHOPPER, "/human", first_name="Mia"))
            [notice] = await tg.wait_for_messages(SHOPPER, 1)
            item = queue_item(page, str(SHOPPER))
            await expect(item).to_contain_text("Mia")
            await expect(item).to_contain_text("telegram")
            await item.click()
            await page.fill("#reply-text", "Hi Mia, Alice here. Let me look at your order.")
            await page.click("#send")  # replying to a queued conversation claims it
            sent = await tg.wait_for_messages(SHOPPER, 2)  # the handoff notice, then the reply
            assert sent[-1]["text"] == "Hi Mia, Alice here. Let me look at your order."
            assert "passing this conversation" in notice["text"]
            await expect(page.locator("#conversation-meta")).to_contain_text("with you")


async def test_an_order_handed_over_is_shown_beside_the_transcript(tmp_path, browser):
    from test_orders import ORDERS_TOML, sample_orders

    (tmp_path / "orders.json").write_text(json.dumps(sample_orders()), encoding="utf-8")
    orders = ORDERS_TOML.format(source="file", extra='[orders.file]\npath = "orders.json"\n')
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        shopper = Shopper("", session)
        async with loopback_server({"/replies": shopper.on_reply}) as receiver:
            path = console_config(tmp_path, f"{receiver}/replies")
            path.write_text(path.read_text(encoding="utf-8") + orders, encoding="utf-8")
            async with KefuApp(load_config(path, environ={}), channels=["webhook", "web_console"],
                               serve_http=True) as app:
                shopper.base = app.http.base_url
                page = await live_console(browser, app.http.base_url, "alice")
                answer = await shopper.say("o-1", "where is LL-100003? my email is stuck@example.com", name="Kai")
                assert answer["reply"]["kind"] == "handoff"
                item = queue_item(page, "o-1")
                await expect(item).to_contain_text("an order needs a person")
                await item.click()
                panel = page.locator("#orders")
                await expect(panel).to_be_visible()
                await expect(panel.locator("h3")).to_have_text("Order LL-100003 · shipped (shipped)")
                await expect(panel.locator(".item")).to_have_text("1 × Boots")
                await expect(panel.locator(".shipment")).to_contain_text("GLS · GLS998877")
                await expect(panel.locator(".shipment")).to_contain_text("last scan")
                assert "stuck@example.com" not in await panel.text_content()
                # a conversation without a verified order shows no panel
                await shopper.say("o-2", "I want to talk to a human please")
                await queue_item(page, "o-2").click()
                await expect(page.locator("#conversation-title")).to_have_text("o-2")
                await expect(panel).to_be_hidden()
