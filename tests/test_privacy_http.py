"""Privacy over HTTP against a real kefu on 127.0.0.1: the agent API's routes, the console's (merchant role,
CSRF), masking at rest in a real turn, and no shopper text in INFO logs. One kefu serves the whole module."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from conftest import TOKEN, write_config

from bot.app import KefuApp
from bot.config import load_config
from bot.passwords import hash_password

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGENT_TOKEN = "agent-token-abcdef0123456789"
PASSWORDS = {"alice": "alice-secret-1", "mia": "mia-secret-333"}
WORDS = "Quetzal lantern seventeen shipping question"  # a shopper's distinctive words, no personal data in them


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(tmp_path_factory) -> AsyncIterator[KefuApp]:
    folder = tmp_path_factory.mktemp("privacy-http")
    users = "".join(f'\n[[console.users]]\nname = "{name}"\npassword_hash = "{hash_password(password)}"\n'
                    f'roles = ["{"merchant" if name == "mia" else "agent"}"]\n' for name, password in PASSWORDS.items())
    path = write_config(folder, extra=f"[privacy]\nmask_stored = true\n\n[console]\nenabled = true\n{users}",
                        webhook=f'agent_token = "{AGENT_TOKEN}"',
                        handoff='enabled = true\nkeywords = ["lawyer"]\nagent_wait_seconds = 3600')
    async with KefuApp(load_config(path, environ={}), channels=["webhook", "web_console"], serve_http=True) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def base(app: KefuApp) -> str:
    assert app.http is not None
    return app.http.base_url


async def say(app: KefuApp, http: aiohttp.ClientSession, conversation: str, text: str) -> dict:
    async with http.post(f"{base(app)}/v1/messages", json={"conversation_id": conversation, "text": text},
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def agent(app: KefuApp, http: aiohttp.ClientSession, method: str, path: str, token: str = AGENT_TOKEN,
                **body) -> tuple[int, dict]:
    async with http.request(method, f"{base(app)}/v1/agent{path}", headers={"Authorization": f"Bearer {token}"},
                            json=body if method == "POST" else None) as response:
        return response.status, await response.json()


def files_containing(root: Path, needle: str) -> list[str]:
    pattern = needle.encode("utf-8")
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and pattern in p.read_bytes())


async def test_the_agent_api_exports_erases_and_shows_the_audit_log(shop, http):
    await say(shop, http, "gdpr-1", f"{WORDS}: how long does shipping take?")
    await say(shop, http, "gdpr-1", "and to Canada?")
    await say(shop, http, "keep-me", "how long does shipping take to Norway?")

    status, found = await agent(shop, http, "GET", "/privacy/export?conversation=webhook/gdpr-1&agent=alice")
    assert status == 200
    texts = [m["text"] for m in found["conversations"][0]["messages"]]
    assert texts[0] == f"{WORDS}: how long does shipping take?" and len(texts) == 4
    assert found["conversations"][0]["messages"][1]["direction"] == "out"

    assert (await agent(shop, http, "GET", "/privacy/export?conversation=webhook/gdpr-1"))[0] == 400  # who asks?
    status, bad = await agent(shop, http, "GET", "/privacy/export?conversation=gdpr-1&agent=alice")
    assert status == 400 and bad["field"] == "conversation"
    assert (await agent(shop, http, "GET", "/privacy/export?user=webhook:nobody&agent=alice"))[0] == 404
    assert (await agent(shop, http, "GET", "/privacy/export?conversation=webhook/gdpr-1&agent=alice",
                        token="wrong-token-0123456789"))[0] == 401

    asked = await say(shop, http, "gdpr-2", "I will call my lawyer about this")
    assert asked["state"] == "waiting_agent"
    status, refused = await agent(shop, http, "POST", "/privacy/erase", agent="alice", conversation="webhook/gdpr-2")
    assert status == 409 and refused["state"] == "waiting_agent"
    status, _ = await agent(shop, http, "POST", "/privacy/erase", agent="alice", conversation="webhook/gdpr-2",
                            force="yes")
    assert status == 400
    status, done = await agent(shop, http, "POST", "/privacy/erase", agent="alice", conversation="webhook/gdpr-2",
                               force=True)
    assert status == 200 and done["erased"]["forced"] == 1
    assert (await agent(shop, http, "GET", "/handoffs"))[1]["handoffs"] == []

    status, done = await agent(shop, http, "POST", "/privacy/erase", agent="alice", conversation="webhook/gdpr-1")
    assert status == 200 and done["erased"]["messages"] == 4 and done["wal_truncated"] is True
    assert (await agent(shop, http, "GET", "/privacy/export?conversation=webhook/gdpr-1&agent=alice"))[0] == 404
    for root in (shop.config.storage.database.parent, shop.config.storage.index_dir):
        assert files_containing(root, WORDS) == []

    await say(shop, http, "gdpr-3", "a real person please, my lawyer insists")
    assert (await agent(shop, http, "POST", "/conversations/webhook/gdpr-3/claim", agent="alice"))[0] == 200
    assert (await agent(shop, http, "POST", "/conversations/webhook/gdpr-3/close", agent="alice"))[0] == 200
    status, log = await agent(shop, http, "GET", "/audit?limit=20")
    assert status == 200
    actions = [(e["actor"], e["action"], e["target"]) for e in log["entries"]]
    assert actions[:2] == [("alice", "close", "webhook/gdpr-3"), ("alice", "claim", "webhook/gdpr-3")]
    assert ("alice", "erase", None) in actions and ("alice", "export", None) in actions
    status, only = await agent(shop, http, "GET", "/audit?conversation=webhook/gdpr-1")
    assert [e["action"] for e in only["entries"]] == ["erase", "export"]
    assert (await agent(shop, http, "GET", "/audit?limit=-3"))[0] == 400


async def sign_in(app: KefuApp, http: aiohttp.ClientSession, name: str, page: str = "privacy") -> str:
    """Sign in through the real form; returns the session's CSRF token from the signed-in page."""
    http.cookie_jar.clear()
    async with http.get(f"{base(app)}/console/insights") as response:
        form_token = re.search(r'name="csrf" value="([^"]+)"', await response.text()).group(1)
    async with http.post(f"{base(app)}/console/sign-in", data={"name": name, "password": PASSWORDS[name],
                                                             "csrf": form_token, "next": "insights"}) as response:
        assert response.status == 200, await response.text()
    async with http.get(f"{base(app)}/console/{page}") as response:
        text = await response.text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', text)
    return found.group(1) if found else ""


async def console(app: KefuApp, http: aiohttp.ClientSession, method: str, path: str, csrf: str | None = None,
                  **body) -> tuple[int, dict]:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    async with http.request(method, f"{base(app)}/console/api{path}", headers=headers,
                            json=body if method == "POST" else None) as response:
        return response.status, await response.json()


async def test_the_console_privacy_routes_need_the_merchant_role_and_the_csrf_token(shop, http):
    await say(shop, http, "console-1", f"{WORDS} from the console shopper")
    csrf = await sign_in(shop, http, "mia")
    assert csrf
    async with http.get(f"{base(shop)}/console/privacy") as page:
        html = await page.text()
        assert page.status == 200 and "/console/privacy/privacy.js" in html and "script-src 'self'" in \
            page.headers["Content-Security-Policy"]
    async with http.get(f"{base(shop)}/console/privacy/privacy.js") as script:
        assert script.status == 200 and "textContent" in await script.text()

    assert (await console(shop, http, "POST", "/privacy/export", conversation="webhook/console-1"))[0] == 403
    status, found = await console(shop, http, "POST", "/privacy/export", csrf, conversation="webhook/console-1")
    assert status == 200 and found["counts"]["messages"] == 2
    status, bad = await console(shop, http, "POST", "/privacy/erase", csrf, conversation="console-1")
    assert status == 400 and bad["field"] == "conversation"
    assert (await console(shop, http, "POST", "/privacy/erase", csrf, conversation="webhook/console-1",
                          extra=1))[0] == 400
    status, done = await console(shop, http, "POST", "/privacy/erase", csrf, conversation="webhook/console-1")
    assert status == 200 and done["erased"]["conversations"] == 1
    status, log = await console(shop, http, "GET", "/audit")
    assert status == 200 and [(e["actor"], e["action"]) for e in log["entries"][:2]] == [("mia", "erase"),
                                                                                       ("mia", "export")]

    agent_csrf = await sign_in(shop, http, "alice", page="")
    assert agent_csrf
    async with http.get(f"{base(shop)}/console/privacy") as page:
        assert page.status == 403
    for method, path in (("POST", "/privacy/export"), ("POST", "/privacy/erase"), ("GET", "/audit")):
        status, refused = await console(shop, http, method, path, agent_csrf, conversation="webhook/keep-me")
        assert status == 403 and refused["error"] == "forbidden"
    http.cookie_jar.clear()
    assert (await console(shop, http, "GET", "/audit"))[0] == 401


async def test_stored_texts_are_masked_but_keep_order_numbers_and_no_text_reaches_info_logs(shop, http, caplog):
    text = ("Where is my order 1234567890? Mail me at li.na@example.com or call +49 151 23456789, "
            "I paid with 4111 1111 1111 1111")
    with caplog.at_level(logging.DEBUG):
        answered = await say(shop, http, "masked-1", text)
    assert answered["reply"] is not None and answered["reply"]["kind"] in ("answer", "not_sure")
    with sqlite3.connect(shop.config.storage.database) as db:
        stored = db.execute("SELECT text FROM messages WHERE conversation_key = 'webhook:masked-1' AND direction = 'in'"
                            ).fetchone()[0]
    assert stored == ("Where is my order 1234567890? Mail me at [EMAIL] or call [PHONE], I paid with [CARD …1111]")
    info = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert info and not any("Where is my order" in line or "li.na" in line for line in info)
