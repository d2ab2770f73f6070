"""Hostile and careless requests against every JSON endpoint of a real kefu on 127.0.0.1.

Property tests (hypothesis) generate bodies, fields, paths and query strings for the webhook,
the agent API, the console's API and the Telegram webhook, and assert what a client may rely
on: never a 5xx, always a JSON reason for a 4xx, and a store that stays whole (SQLite's
integrity check passes; every stored shopper message ends answered, forwarded or failed with
exactly one reply when answered). Byte-level tests send what no HTTP library would: duplicate
headers, a broken Content-Length, a body that never finishes, a connection that only sends CRLFs.

The examples per property are few in CI (profile "ci"); `bench/hostile.py` runs the same
properties with many more (profile "long").
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from conftest import TOKEN, write_config
from fake_telegram import FakeTelegram
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import KefuApp
from bot.config import load_config
from bot.passwords import hash_password

settings.register_profile("ci", max_examples=25, deadline=None, database=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=int(os.environ.get("KEFU_HYPOTHESIS_EXAMPLES", "400")),
                          deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("KEFU_HYPOTHESIS_PROFILE", "ci"))

TG_TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
WA_SECRET = "hostile-app-secret-0123456789"
WA_PHONE = "106540352242922"
WA_ENVIRON = {"KEFU_WHATSAPP_TOKEN": "EAAG-hostile-token", "KEFU_WHATSAPP_APP_SECRET": WA_SECRET}
AGENT_TOKEN = "agent-token-abcdef0123456789"
CONSOLE_PASSWORD = "hostile-secret-1"
IDLE_SECONDS = 2.0
BODY_SECONDS = 2.0


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LiveKefu:
    """kefu with every JSON channel, served from its own event loop in a background thread,
    so that hypothesis (synchronous) can drive it with real HTTP requests."""

    loop: asyncio.AbstractEventLoop
    app: KefuApp
    base: str
    database: Path
    telegram_secret: str = ""
    console_cookies: dict[str, str] = field(default_factory=dict)
    console_csrf: str = ""

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                cookies: dict[str, str] | None = None) -> Response:
        async def send() -> Response:
            timeout = aiohttp.ClientTimeout(total=60)
            async with aiohttp.ClientSession(timeout=timeout, cookies=cookies) as session:
                async with session.request(method, self.base + path, data=body, headers=headers,
                                           allow_redirects=False) as response:
                    return Response(response.status, response.content_type, await response.read())
        return asyncio.run_coroutine_threadsafe(send(), self.loop).result(90)

    def console(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
                ) -> Response:
        return self.request(method, path, body=body, cookies=self.console_cookies,
                            headers={"Content-Type": content_type, "X-CSRF-Token": self.console_csrf,
                                     "Origin": self.base})

    def rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.database) as db:
            return db.execute(sql).fetchall()


def _kefu_config(tmp_path: Path, telegram_url: str) -> Path:
    return write_config(
        tmp_path,
        webhook=f'agent_token = "{AGENT_TOKEN}"',
        handoff="enabled = true\nagent_wait_seconds = 3600",
        http=f"idle_timeout_seconds = {IDLE_SECONDS}\nbody_timeout_seconds = {BODY_SECONDS}",
        extra=f"""
[console]
enabled = true
sign_in_attempts = 1000

[[console.users]]
name = "ada"
password_hash = "{hash_password(CONSOLE_PASSWORD)}"
roles = ["agent", "merchant"]

[telegram]
enabled = true
token_env = "TEST_TG_TOKEN"
mode = "webhook"
webhook_url = "https://shop.example/telegram/webhook"
api_base_url = "{telegram_url}/bot"

[whatsapp]
enabled = true
phone_number_id = "{WA_PHONE}"
api_base_url = "http://127.0.0.1:9"

[web_chat]
enabled = true
allowed_origins = ["{CHAT_ORIGIN}"]
address_sessions_per_hour = 100000
address_messages_per_minute = 100000
""",
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKefu]:
    tmp_path = tmp_path_factory.mktemp("hostile")
    loop = asyncio.new_event_loop()
    ready: asyncio.Future[LiveKefu] = loop.create_future()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with FakeTelegram(TG_TOKEN) as telegram:
                config = load_config(_kefu_config(tmp_path, telegram.url),
                                     environ={"TEST_TG_TOKEN": TG_TOKEN, **WA_ENVIRON})
                async with KefuApp(config, channels=["webhook", "web_console", "telegram", "whatsapp",
                                                                "web_chat"],
                                   serve_http=True) as app:
                    assert app.http is not None
                    [registered] = telegram.calls("setWebhook")
                    ready.set_result(LiveKefu(loop=loop, app=app, base=app.http.base_url,
                                              database=config.storage.database,
                                              telegram_secret=registered["secret_token"]))
                    await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), name="kefu-hostile", daemon=True)
    thread.start()
    kefu = asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(ready), 600), loop).result(620)
    _sign_in(kefu)
    try:
        yield kefu
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


def _sign_in(kefu: LiveKefu) -> None:
    page = kefu.request("GET", "/console")
    form_token = re.search(rb'name="csrf" value="([^"]+)"', page.body).group(1).decode()

    async def sign_in() -> tuple[dict[str, str], str]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            session.cookie_jar.update_cookies({"kefu_console_sign_in": form_token})
            async with session.post(kefu.base + "/console/sign-in", allow_redirects=False,
                                    data={"name": "ada", "password": CONSOLE_PASSWORD, "csrf": form_token},
                                    headers={"Origin": kefu.base}) as response:
                assert response.status == 303, await response.text()
                cookie = response.cookies["kefu_console"].value
            async with session.get(kefu.base + "/console", cookies={"kefu_console": cookie}) as response:
                html = await response.text()
        return {"kefu_console": cookie}, re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)

    kefu.console_cookies, kefu.console_csrf = asyncio.run_coroutine_threadsafe(sign_in(), kefu.loop).result(60)


# -- what every answer must be ----------------------------------------------------


def assert_no_server_error(response: Response, *, json_reason: bool = True) -> None:
    assert response.status < 500, (response.status, response.body[:300])
    if response.status >= 400 and json_reason:
        assert response.content_type == "application/json", (response.status, response.body[:200])
        reason = response.json()
        assert isinstance(reason.get("error"), str) and reason.get("detail"), reason


def assert_store_whole(kefu: LiveKefu) -> None:
    """SQLite is intact and no turn is half-written, once the turns in flight have ended."""
    deadline = time.monotonic() + 60
    while kefu.rows("SELECT COUNT(*) FROM messages WHERE direction = 'in' AND status = 'pending'") != [(0,)]:
        assert time.monotonic() < deadline, "stored messages stayed unanswered"
        time.sleep(0.1)
    assert kefu.rows("PRAGMA integrity_check") == [("ok",)]
    assert kefu.rows("PRAGMA foreign_key_check") == []
    assert kefu.rows(
        "SELECT i.id FROM messages i WHERE i.direction = 'in' AND i.status = 'answered' AND "
        "(SELECT COUNT(*) FROM messages o WHERE o.direction = 'out' AND o.reply_to = i.id "
        "AND o.kind NOT IN ('system', 'agent')) != 1"
    ) == []


# -- strategies -----------------------------------------------------------------------

LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udc00\ud800", "ok\ud83d"])
TEXT = st.one_of(st.text(max_size=60), LONE_SURROGATES, st.sampled_from(["", " ", "\x00", "hi", "运费多少钱？",
                                                                          "<script>alert(1)</script>", "/start",
                                                                          "/human", "/lang zh", "a" * 5000]))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)


def deep(depth: int) -> bytes:
    return b'{"text":' + b"[" * depth + b"]" * depth + b"}"


def objects(fields: list[str]) -> st.SearchStrategy[Any]:
    """Objects that mostly use the endpoint's own field names, so examples get past the first check."""
    return st.dictionaries(st.one_of(st.sampled_from(fields), TEXT), st.one_of(TEXT, JSON), max_size=len(fields) + 1)


def bodies(fields: list[str]) -> st.SearchStrategy[bytes]:
    as_json = st.one_of(objects(fields), JSON).map(lambda value: json.dumps(value).encode())
    return st.one_of(as_json, as_json, st.binary(max_size=200), st.integers(1, 3000).map(deep),
                     st.sampled_from([b"", b"[" * 5000, b'{"text": "\\ud800"}', b"\xff\xfe{}", b"null", b"1e999999"]))


PATH_PART = st.one_of(st.text(min_size=1, max_size=40), LONE_SURROGATES, st.sampled_from(
    ["..", "%2e%2e", "%ED%A0%80", "%FF", "a%00b", "webhook", "x" * 3000]))


def segment(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="%")


MESSAGE_FIELDS = ["conversation_id", "text", "user_id", "message_id", "language", "set_language", "display_name"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AGENT_AUTH = {"Authorization": f"Bearer {AGENT_TOKEN}"}
JSON_TYPE = {"Content-Type": "application/json"}


# -- properties -----------------------------------------------------------------------


@given(body=bodies(MESSAGE_FIELDS), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_the_webhook_never_fails_with_a_server_error(live: LiveKefu, body: bytes, content_type: str) -> None:
    response = live.request("POST", "/v1/messages", body=body, headers={**AUTH, "Content-Type": content_type})
    assert_no_server_error(response)


@given(conversation=st.one_of(TEXT, st.integers()), text=TEXT, extra=st.dictionaries(
    st.sampled_from(MESSAGE_FIELDS[2:]), st.one_of(TEXT, st.integers()), max_size=3))
def test_webhook_messages_with_hostile_fields_are_stored_whole_or_refused(live: LiveKefu, conversation: Any,
                                                                          text: str, extra: dict) -> None:
    body = json.dumps({"conversation_id": conversation, "text": text, **extra}).encode()
    response = live.request("POST", "/v1/messages", body=body, headers={**AUTH, **JSON_TYPE})
    assert_no_server_error(response)
    if response.status == 200:
        assert response.json()["inbound_id"] > 0


@given(conversation=PATH_PART)
def test_reading_a_conversation_by_any_id_never_fails(live: LiveKefu, conversation: str) -> None:
    response = live.request("GET", "/v1/conversations/" + segment(conversation), headers=AUTH)
    assert_no_server_error(response)


@given(channel=PATH_PART, conversation=PATH_PART, action=st.sampled_from(["claim", "messages", "release", "close"]),
       body=bodies(["agent", "text"]))
def test_the_agent_api_never_fails_with_a_server_error(live: LiveKefu, channel: str, conversation: str,
                                                       action: str, body: bytes) -> None:
    path = f"/v1/agent/conversations/{segment(channel)}/{segment(conversation)}/{action}"
    assert_no_server_error(live.request("POST", path, body=body, headers={**AGENT_AUTH, **JSON_TYPE}))
    assert_no_server_error(live.request("GET", path.rsplit("/", 1)[0], headers=AGENT_AUTH))


@given(state=st.one_of(TEXT, st.lists(st.sampled_from(["waiting_agent", "agent", "bot", "closed", ""]))
                       .map(",".join)))
def test_the_agent_queue_takes_any_state_filter(live: LiveKefu, state: str) -> None:
    path = "/v1/agent/handoffs?state=" + quote(state.encode("utf-8", "surrogatepass"))
    assert_no_server_error(live.request("GET", path, headers=AGENT_AUTH))


@given(channel=st.sampled_from(["webhook", "telegram"]), conversation=PATH_PART,
       action=st.sampled_from(["claim", "messages", "release", "close"]), body=bodies(["text"]))
def test_the_console_api_never_fails_with_a_server_error(live: LiveKefu, channel: str, conversation: str,
                                                         action: str, body: bytes) -> None:
    path = f"/console/api/conversations/{channel}/{segment(conversation)}"
    assert_no_server_error(live.console("POST", f"{path}/{action}", body))
    assert_no_server_error(live.console("GET", path))


DATES = st.one_of(st.dates().map(str), TEXT, st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30", "2026-W01"]))


@given(start=DATES, end=DATES, query=TEXT, language=TEXT,
       route=st.sampled_from(["/console/api/insights", "/console/api/insights/unanswered",
                              "/console/insights/unanswered.csv", "/console/api/faq"]))
def test_console_queries_never_fail(live: LiveKefu, start: str, end: str, query: str, language: str,
                                    route: str) -> None:
    params = "&".join(f"{key}={quote(value.encode('utf-8', 'surrogatepass'))}"
                      for key, value in (("from", start), ("to", end), ("q", query), ("language", language)))
    response = live.console("GET", f"{route}?{params}")
    assert_no_server_error(response)


@given(body=bodies(["name", "password", "csrf", "next"]), content_type=st.sampled_from(
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "multipart/form-data",
     "application/json", ""]), origin=st.sampled_from(["http://[::1", "null", "http://evil.example", "::::"]))
def test_the_sign_in_form_never_fails_with_a_server_error(live: LiveKefu, body: bytes, content_type: str,
                                                          origin: str) -> None:
    response = live.request("POST", "/console/sign-in", body=body,
                            headers={"Content-Type": content_type, "Origin": origin})
    assert response.status < 500, response.body[:300]


@given(update=st.one_of(objects(["update_id", "message", "edited_message", "callback_query"]), JSON,
                        st.fixed_dictionaries({"update_id": st.integers(), "message": st.one_of(JSON, objects(
                            ["message_id", "date", "chat", "from", "text"]))})))
def test_the_telegram_webhook_never_fails_with_a_server_error(live: LiveKefu, update: Any) -> None:
    response = live.request("POST", "/telegram/webhook", body=json.dumps(update).encode(),
                            headers={"X-Telegram-Bot-Api-Secret-Token": live.telegram_secret, **JSON_TYPE})
    assert_no_server_error(response)


WA_MESSAGE = objects(["from", "id", "type", "timestamp", "text", "interactive", "button", "image", "audio", "errors"])
WA_STATUS = objects(["id", "status", "timestamp", "recipient_id", "errors"])
WA_VALUE = st.one_of(JSON, st.fixed_dictionaries({
    "metadata": st.one_of(JSON, st.just({"phone_number_id": WA_PHONE})),
    "contacts": st.one_of(JSON, st.lists(objects(["wa_id", "profile"]), max_size=2)),
    "messages": st.one_of(JSON, st.lists(st.one_of(WA_MESSAGE, st.fixed_dictionaries(
        {"from": TEXT, "id": TEXT, "type": st.sampled_from(["text", "interactive", "image", "button", "x"]),
         "text": st.one_of(JSON, st.fixed_dictionaries({"body": st.one_of(TEXT, JSON)})),
         "interactive": JSON, "timestamp": st.one_of(TEXT, st.integers())})), max_size=3)),
    "statuses": st.one_of(JSON, st.lists(WA_STATUS, max_size=2))}))
WA_NOTIFICATION = st.one_of(JSON, objects(["object", "entry"]), st.fixed_dictionaries({
    "object": st.just("whatsapp_business_account"),
    "entry": st.one_of(JSON, st.lists(st.fixed_dictionaries({"id": TEXT, "changes": st.one_of(JSON, st.lists(
        st.fixed_dictionaries({"field": st.sampled_from(["messages", "other"]), "value": WA_VALUE}),
        max_size=2))}), max_size=2))}))


@given(notification=WA_NOTIFICATION)
def test_the_whatsapp_webhook_never_fails_with_a_server_error(live: LiveKefu, notification: Any) -> None:
    raw = json.dumps(notification).encode()
    signature = "sha256=" + hmac.new(WA_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = live.request("POST", "/whatsapp/webhook", body=raw,
                            headers={"X-Hub-Signature-256": signature, **JSON_TYPE})
    assert_no_server_error(response)


CHAT_ORIGIN = "https://shop.example"
CHAT_FIELDS = ["text", "client_id", "language", "customer_id", "customer_hash", "token"]
NOT_A_MESSAGE_ID = st.one_of(TEXT, st.sampled_from(["²", "١٢", "-1", "1e3"])).filter(
    lambda text: text != "" and re.fullmatch(r"[0-9]+", text) is None)  # an id (or none: 0) opens a stream


def _header_safe(text: str) -> str:
    """What a client can put in a header: the text's bytes as Latin-1 without control characters."""
    return "".join(ch for ch in text.encode("utf-8", "surrogatepass").decode("latin-1")[:200]
                   if " " <= ch <= "~" or ch >= "\xa0")


@given(body=bodies(CHAT_FIELDS), origin=st.one_of(st.just(CHAT_ORIGIN), TEXT), token=TEXT, after=NOT_A_MESSAGE_ID)
def test_the_chat_widgets_api_never_fails_with_a_server_error(live: LiveKefu, body: bytes, origin: str, token: str,
                                                              after: str) -> None:
    opened = live.request("POST", "/chat/v1/session", body=b"{}", headers={"Origin": CHAT_ORIGIN, **JSON_TYPE})
    assert opened.status == 200, opened.body[:200]
    visitor = {"Authorization": "Bearer " + opened.json()["token"], **JSON_TYPE}
    origin_header = {"Origin": _header_safe(origin)}
    assert_no_server_error(live.request("POST", "/chat/v1/session", body=body, headers={**origin_header, **JSON_TYPE}))
    assert_no_server_error(live.request("POST", "/chat/v1/messages", body=body, headers={**visitor, **origin_header}))
    assert_no_server_error(live.request("POST", "/chat/v1/messages", body=body, headers={
        "Authorization": "Bearer " + _header_safe(token), **JSON_TYPE}))
    assert_no_server_error(live.request("GET", "/chat/v1/events?after=" + quote(after.encode("utf-8", "surrogatepass")),
                                        headers=visitor))
    assert_no_server_error(live.request("GET", "/chat/v1/settings?language=" +
                                        quote(token.encode("utf-8", "surrogatepass")), headers=origin_header))


SUBJECT = st.one_of(TEXT, st.sampled_from(["webhook/hi", "webhook:hi", "telegram/", "/x", "nochannel", ":u",
                                            "webhook/" + "x" * 500]))
PRIVACY_FIELDS = ["agent", "conversation", "user", "force"]


@given(body=bodies(PRIVACY_FIELDS), conversation=SUBJECT, user=SUBJECT, agent=TEXT,
       limit=st.one_of(TEXT, st.integers().map(str)), before=st.one_of(TEXT, st.integers().map(str)))
def test_the_privacy_routes_of_the_agent_api_never_fail(live: LiveKefu, body: bytes, conversation: str, user: str,
                                                        agent: str, limit: str, before: str) -> None:
    def query(**values: str) -> str:
        return "&".join(f"{key}={quote(value.encode('utf-8', 'surrogatepass'))}" for key, value in values.items())

    assert_no_server_error(live.request("POST", "/v1/agent/privacy/erase", body=body,
                                        headers={**AGENT_AUTH, **JSON_TYPE}))
    assert_no_server_error(live.request("GET", "/v1/agent/privacy/export?" + query(conversation=conversation,
                                        agent=agent), headers=AGENT_AUTH))
    assert_no_server_error(live.request("GET", "/v1/agent/privacy/export?" + query(user=user, agent=agent),
                                        headers=AGENT_AUTH))
    assert_no_server_error(live.request("GET", "/v1/agent/audit?" + query(limit=limit, before=before, user=user),
                                        headers=AGENT_AUTH))


@given(body=bodies(["conversation", "user", "force"]), limit=TEXT,
       route=st.sampled_from(["/console/api/privacy/export", "/console/api/privacy/erase"]))
def test_the_consoles_privacy_routes_never_fail(live: LiveKefu, body: bytes, limit: str, route: str) -> None:
    assert_no_server_error(live.console("POST", route, body))
    assert_no_server_error(live.console("GET", "/console/api/audit?limit=" +
                                        quote(limit.encode("utf-8", "surrogatepass"))))


def test_the_store_is_whole_after_the_hostile_requests(live: LiveKefu) -> None:
    """Runs after the properties above (file order): everything they stored is whole."""
    assert live.rows("SELECT COUNT(*) FROM messages WHERE direction = 'in'")[0][0] > 0
    assert_store_whole(live)


# -- the findings, one by one -----------------------------------------------------------


@pytest.mark.parametrize("body", [b"[" * 1000 + b"]" * 1000, b'{"conversation_id":"' + b"[" * 1 + b'","text":' +
                                  b"[" * 1000 + b"]" * 1000 + b"}"])
def test_deeply_nested_json_is_a_400_everywhere(live: LiveKefu, body: bytes) -> None:
    answers = [
        live.request("POST", "/v1/messages", body=body, headers={**AUTH, **JSON_TYPE}),
        live.request("POST", "/v1/agent/conversations/webhook/x/messages", body=body,
                     headers={**AGENT_AUTH, **JSON_TYPE}),
        live.console("POST", "/console/api/conversations/webhook/x/messages", body),
        live.request("POST", "/telegram/webhook", body=body,
                     headers={"X-Telegram-Bot-Api-Secret-Token": live.telegram_secret, **JSON_TYPE}),
    ]
    assert [answer.status for answer in answers] == [400, 400, 400, 400]
    assert all(answer.json()["error"] in ("invalid_json", "invalid_update") for answer in answers)


def test_a_lone_surrogate_is_refused_with_a_reason_and_nothing_is_stored(live: LiveKefu) -> None:
    before = live.rows("SELECT COUNT(*) FROM messages")
    for body in (b'{"conversation_id":"\\ud800","text":"hi"}', b'{"conversation_id":"s","text":"a\\udfffb"}'):
        response = live.request("POST", "/v1/messages", body=body, headers={**AUTH, **JSON_TYPE})
        assert response.status == 400
        assert response.json()["error"] == "invalid_text" and "surrogate" in response.json()["detail"]
    assert live.rows("SELECT COUNT(*) FROM messages") == before
    paired = json.dumps({"conversation_id": "s", "text": "ok 😀"}).encode()  # \ud83d\ude00: a valid pair
    assert live.request("POST", "/v1/messages", body=paired, headers={**AUTH, **JSON_TYPE}).status == 200


@pytest.mark.parametrize("query", ["from=0001-01-01&to=0001-01-01", "to=0001-01-01", "from=9999-12-31",
                                   "from=9999-12-31&to=9999-12-31", "from=2026-01-01&to=2026-13-01"])
def test_insight_periods_at_the_calendars_edges_are_a_400(live: LiveKefu, query: str) -> None:
    for route in ("/console/api/insights", "/console/api/insights/unanswered", "/console/insights/unanswered.csv"):
        response = live.console("GET", f"{route}?{query}")
        assert response.status == 400, (route, query, response.body[:200])
        assert response.json()["error"] == "invalid_period"


def test_an_unparseable_origin_is_refused_not_a_500(live: LiveKefu) -> None:
    response = live.request("POST", "/console/api/conversations/webhook/x/claim", body=b"{}",
                            cookies=live.console_cookies,
                            headers={"Origin": "http://[::1", "X-CSRF-Token": live.console_csrf, **JSON_TYPE})
    assert response.status == 403 and response.json()["error"] == "csrf"


def test_a_malformed_multipart_sign_in_is_a_4xx(live: LiveKefu) -> None:
    response = live.request("POST", "/console/sign-in", body=b"--xyz\r\nContent-Disposition: form-data\r\n\r\n",
                            headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert response.status == 415 and response.json()["error"] == "unsupported_media_type"


# -- byte level: what no HTTP library sends --------------------------------------------------


def raw_exchange(kefu: LiveKefu, payload: bytes, *, wait: float = 10.0) -> bytes:
    host, port = kefu.base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        conn.sendall(payload)
        received = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return received
            received += chunk


@pytest.mark.parametrize("request_bytes", [
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n{}",
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_requests_the_http_parser_rejects_get_a_json_reason(live: LiveKefu, request_bytes: bytes) -> None:
    answer = raw_exchange(live, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, head
    assert b"Content-Type: application/json" in head, head
    assert json.loads(body)["error"]


@pytest.mark.parametrize("payload", [b"", b"\r\n" * 3, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"],
                         ids=["idle", "crlf only", "headers never finished"])
def test_connections_without_a_complete_request_are_closed(live: LiveKefu, payload: bytes) -> None:
    """An idle or slow-header (slowloris) connection is closed after http.idle_timeout_seconds."""
    host, port = live.base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=IDLE_SECONDS * 10) as conn:
        started = time.monotonic()
        conn.sendall(payload)
        if payload:
            for _ in range(3):  # keep trickling: the deadline is for the whole request, not between bytes
                time.sleep(IDLE_SECONDS / 4)
                conn.sendall(b"\r\n" if payload.startswith(b"\r\n") else b"X-Slow: 1\r\n")
        assert conn.recv(65536) == b""  # closed by kefu (a timeout would raise instead)
        assert time.monotonic() - started < IDLE_SECONDS * 8


def test_a_body_that_never_finishes_gets_a_408(live: LiveKefu) -> None:
    head = (f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"conv").encode()
    answer = raw_exchange(live, head, wait=BODY_SECONDS * 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"
