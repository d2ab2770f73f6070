"""Handoff end to end over real HTTP: shopper → bot → agents' helpdesk → agent API → shopper, and back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import TOKEN, loopback_server, write_config
from conftest import rows as read_rows

from bot.app import KefuApp
from bot.config import load_config
from bot.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

AGENT_TOKEN = "agent-token-abcdef0123456789"
REPLY_SECRET = "outgoing-secret-0123456789"
NOTIFY_SECRET = "notify-secret-0123456789"

pytestmark = pytest.mark.both_engines


@dataclass
class Receiver:
    """A loopback stand-in for the shop's site (replies) and helpdesk (agent notifications)."""

    replies: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    fail_notifications: int = 0  # answer 503 to this many notification attempts first
    notify_attempts: int = 0
    bad_signatures: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""

    def _verified(self, request: web.Request, body: bytes, secret: str) -> bool:
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        if request.headers.get(SIGNATURE_HEADER) != sign(secret, stamp, body, method=request.method, target=request.raw_path):
            self.bad_signatures += 1
            return False
        return True

    async def on_reply(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self._verified(request, body, REPLY_SECRET):
            return web.Response(status=401)
        self.replies.append(json.loads(body)["reply"])
        self.arrived.set()
        return web.Response(status=204)

    async def on_notify(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.notify_attempts += 1
        self.arrived.set()  # a refused attempt is news too: a test may wait for attempts, not deliveries
        if not self._verified(request, body, NOTIFY_SECRET):
            return web.Response(status=401)
        if self.fail_notifications > 0:
            self.fail_notifications -= 1
            return web.Response(status=503, text="helpdesk is restarting")
        self.notifications.append(json.loads(body))
        return web.Response(status=204)

    async def wait_for(self, predicate, timeout: float = 20.0):
        async def poll():
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with loopback_server({"/replies": found.on_reply, "/notify": found.on_notify}) as base_url:
        found.base_url = base_url
        yield found


def handoff_config(tmp_path: Path, receiver: Receiver, handoff: str = "", extra: str = "",
                   storage: Path | str | None = None, notify_attempts: int = 6) -> Path:
    return write_config(
        tmp_path,
        extra=extra,
        storage=storage,
        webhook=f"""agent_token = "{AGENT_TOKEN}"

[webhook.outgoing]
url = "{receiver.base_url}/replies"
secret = "{REPLY_SECRET}"
backoff_seconds = 0.05
""",
        handoff=f"""keywords = ["lawyer"]
{handoff}

[handoff.notify]
url = "{receiver.base_url}/notify"
secret = "{NOTIFY_SECRET}"
backoff_seconds = 0.05
max_attempts = {notify_attempts}
""",
    )


@pytest.fixture
async def shop(tmp_path: Path, storage: Path | str, receiver: Receiver, request) -> AsyncIterator[KefuApp]:
    options = getattr(request, "param", {})
    path = handoff_config(tmp_path, receiver, handoff=options.get("handoff", ""), storage=storage)
    async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=True) as running:
        yield running


class Client:
    """The shop's site and the agents, both talking to kefu over HTTP."""

    def __init__(self, app: KefuApp, session: aiohttp.ClientSession):
        assert app.http is not None
        self.base = app.http.base_url
        self.session = session

    async def say(self, conversation: str, text: str, message_id: str | None = None) -> dict:
        body = {"conversation_id": conversation, "text": text}
        if message_id:
            body["message_id"] = message_id
        async with self.session.post(f"{self.base}/v1/messages", json=body,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def agent(self, method: str, path: str, token: str = AGENT_TOKEN, **body) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.request(method, f"{self.base}/v1/agent{path}", headers=headers,
                                        json=body if method == "POST" else None) as response:
            return response.status, await response.json()


@pytest.fixture
async def client(shop: KefuApp, http: aiohttp.ClientSession) -> Client:
    return Client(shop, http)


def rows(app: KefuApp, sql: str, *params) -> list[tuple]:
    return read_rows(app.config.storage.location, sql, *params)


async def test_full_cycle_shopper_agent_and_back_to_the_bot(shop, client, receiver):
    receiver.fail_notifications = 2  # the helpdesk is briefly down: kefu retries
    first = await client.say("c1", "where is my order??", "m1")
    assert first["reply"]["kind"] == "answer" and first["state"] == "bot"

    asked = await client.say("c1", "I want to talk to a real person", "m2")
    assert asked["state"] == "waiting_agent"
    assert asked["reply"]["kind"] == "handoff"
    assert "person" in asked["reply"]["text"]

    await receiver.wait_for(lambda: receiver.notifications)
    note = receiver.notifications[0]
    assert note["event"] == "handoff.requested"
    assert note["reason"] == "explicit_request"
    assert note["conversation_id"] == "c1" and note["language"] == "en"
    assert [m["text"] for m in note["last_messages"]][:2] == ["where is my order??", first["reply"]["text"]]
    assert note["faq_tried"] and note["agent_api"] == "/v1/agent/conversations/webhook/c1"
    assert receiver.notify_attempts == 3 and receiver.bad_signatures == 0

    # While queued the bot is silent; the message reaches the agents.
    quiet = await client.say("c1", "hello? how long does shipping take?", "m3")
    assert quiet["reply"] is None and quiet["state"] == "waiting_agent"
    await receiver.wait_for(lambda: len(receiver.notifications) >= 2)
    assert receiver.notifications[1]["event"] == "handoff.shopper_message"
    assert receiver.notifications[1]["text"] == "hello? how long does shipping take?"

    status, queue = await client.agent("GET", "/handoffs")
    assert status == 200
    assert [(h["conversation"], h["state"], h["reason"]) for h in queue["handoffs"]] == [
        ("c1", "waiting_agent", "explicit_request")]

    status, claimed = await client.agent("POST", "/conversations/webhook/c1/claim", agent="alice")
    assert status == 200 and claimed["state"] == "agent" and claimed["agent"] == "alice"
    status, taken = await client.agent("POST", "/conversations/webhook/c1/claim", agent="bob")
    assert status == 409 and taken["agent"] == "alice"

    status, sent = await client.agent("POST", "/conversations/webhook/c1/messages", agent="alice",
                                      text="Hi, I'm Alice. Your parcel left our warehouse today.")
    assert status == 200 and sent["message"]["kind"] == "agent"
    await receiver.wait_for(lambda: any(r["kind"] == "agent" for r in receiver.replies))
    kinds = [(r["kind"], r["text"]) for r in receiver.replies]
    assert ("system", "alice from the Test Shop team is here to help you.") in kinds
    assert ("agent", "Hi, I'm Alice. Your parcel left our warehouse today.") in kinds

    status, released = await client.agent("POST", "/conversations/webhook/c1/release", agent="alice")
    assert status == 200 and released["state"] == "bot"

    # The bot is back, and nothing said during the handoff leaks into its context.
    back = await client.say("c1", "and for Canada?", "m4")
    assert back["state"] == "bot" and back["reply"] is not None
    meta = rows(shop, "SELECT meta FROM messages WHERE reply_to = (SELECT id FROM messages WHERE external_id = 'm4')")
    assert "context" not in json.loads(meta[0][0])
    answered = await client.say("c1", "how long does shipping take?", "m5")
    assert answered["reply"]["kind"] == "answer" and answered["reply"]["faq_ids"] == ["shipping-time"]

    status, view = await client.agent("GET", "/conversations/webhook/c1")
    assert status == 200
    assert [(t["from"], t["to"], t["reason"], t["actor"]) for t in view["transitions"]] == [
        ("bot", "waiting_agent", "explicit_request", "bot"),
        ("waiting_agent", "agent", "claimed", "alice"),
        ("agent", "bot", "released", "alice"),
    ]
    roles = [m["role"] for m in view["messages"]]
    assert roles.count("agent") == 1 and "shopper" in roles


async def test_a_redelivered_message_during_a_handoff_is_not_forwarded_twice(shop, client, receiver):
    await client.say("c2", "/human", "m1")
    first = await client.say("c2", "still there?", "m2")
    again = await client.say("c2", "still there?", "m2")
    assert first["reply"] is None and again["reply"] is None and again["duplicate"] is True
    await receiver.wait_for(lambda: len(receiver.notifications) >= 2)
    await asyncio.sleep(0.2)
    assert [n["event"] for n in receiver.notifications] == ["handoff.requested", "handoff.shopper_message"]


async def test_concurrent_angry_messages_hand_over_only_once(shop, client, receiver):
    texts = ["human please", "real person now", "get me an agent", "/human", "talk to a human", "human!!"]
    results = await asyncio.gather(*(client.say("c3", text, f"m{n}") for n, text in enumerate(texts)))
    assert [r["reply"]["kind"] if r["reply"] else None for r in results].count("handoff") == 1
    assert all(r["state"] == "waiting_agent" for r in results)
    transitions = rows(shop, "SELECT from_state, to_state FROM handoff_transitions WHERE conversation_key = ?",
                       "webhook:c3")
    assert transitions == [("bot", "waiting_agent")]
    await receiver.wait_for(lambda: len(receiver.notifications) >= len(texts))
    events = [n["event"] for n in receiver.notifications]
    assert events.count("handoff.requested") == 1 and events.count("handoff.shopper_message") == len(texts) - 1


@pytest.mark.parametrize(("texts", "reason"), [
    (["I'll get my lawyer involved"], "keyword"),
    (["my sweater arrived with a hole in it"], "faq_flagged"),
    (["xqzv plorb", "blarf wibble snorf", "zzkk qwop"], "unconfident"),
    (["我要转人工"], "explicit_request"),
])
async def test_each_trigger_is_recorded_as_the_reason(shop, client, texts, reason):
    for n, text in enumerate(texts):
        result = await client.say("c4", text, f"m{n}")
    assert result["state"] == "waiting_agent"
    status, view = await client.agent("GET", "/conversations/webhook/c4")
    assert view["transitions"][0]["reason"] == reason
    if reason == "faq_flagged":
        assert result["reply"]["faq_ids"] == ["damaged-or-wrong-item"]
        assert result["reply"]["text"].startswith("Sorry about that!")
    if reason == "explicit_request":
        assert "人工客服" in result["reply"]["text"]


@pytest.mark.parametrize(("text", "faq_id"), [
    ("are you a bot?", "bot-capabilities"),
    ("你是机器人吗", "bot-capabilities"),
    ("人工客服几点上班", "service-hours"),
])
async def test_a_question_the_faq_lists_is_answered_although_it_mentions_a_person(shop, client, text, faq_id):
    result = await client.say("asks-about", text)
    assert result["state"] == "bot" and result["reply"]["kind"] == "answer", result
    assert result["reply"]["faq_ids"][:1] == [faq_id]


@pytest.mark.parametrize("text", ["talk to a human", "i want to speak to someone", "我要人工客服",
                                  "担当者につないでください", "Ich möchte mit einem Mitarbeiter sprechen"])
async def test_asking_for_a_person_hands_over_even_where_the_faq_lists_the_words(shop, client, text):
    # "talk to a human" is a phrasing of contact-human, whose questions mostly ask for a person:
    # the handoff itself answers it better than the entry's "type agent in this chat".
    result = await client.say("asks-for", text)
    assert result["state"] == "waiting_agent" and result["reply"]["kind"] == "handoff", result


async def test_a_shopper_who_gets_angrier_is_handed_over_with_an_apology_first(shop, client):
    replies = []
    for n, text in enumerate(["where is my order", "it's been three weeks and my order is still not here!!",
                              "this is ridiculous, WHERE IS MY PARCEL???", "worst shop ever, I want a chargeback"]):
        replies.append(await client.say("c5", text, f"m{n}"))
        if replies[-1]["state"] != "bot":
            break
    assert replies[-1]["state"] == "waiting_agent"
    status, view = await client.agent("GET", "/conversations/webhook/c5")
    assert view["transitions"][0]["reason"] == "upset"
    assert view["mood"] <= -0.5
    scores = [m["sentiment"] for m in view["messages"] if m["role"] == "shopper"]
    assert scores[-1] < scores[0]
    assert any(r["reply"]["text"].startswith("I'm sorry about the trouble.") for r in replies)


@pytest.mark.parametrize(("text", "faq_id"), [
    ("WHY IS MY REFUND TAKING SO LONG???", "refund-timing"),
    ("运费到底多少钱？？？气死我了！", "shipping-cost"),
])
async def test_an_upset_shopper_whose_question_the_faq_answers_gets_the_answer_with_the_handoff(
        shop, client, text, faq_id):
    result = await client.say("upset-asks", text)
    assert result["state"] == "waiting_agent" and result["reply"]["kind"] == "handoff", result
    status, view = await client.agent("GET", "/conversations/webhook/upset-asks")
    assert view["transitions"][0]["reason"] == "upset"
    entry = shop.knowledge.current.faq.by_id[faq_id]
    answer = entry.variant(result["reply"]["language"]).answer.strip()
    assert result["reply"]["faq_ids"] == [faq_id], json.dumps(result)
    before, _, notice = result["reply"]["text"].partition(answer)
    assert notice.strip() and len(before) < 40, result["reply"]["text"]  # an apology, the answer, the notice


async def test_a_request_for_a_person_gets_the_handoff_notice_alone_even_when_the_faq_answers(shop, client):
    result = await client.say("asks-and-wants", "where is my refund? I want to talk to a human")
    assert result["reply"]["kind"] == "handoff" and result["reply"]["faq_ids"] == [], result


@pytest.mark.parametrize("shop", [{"handoff": "agent_wait_seconds = 0.3"}], indirect=True)
async def test_a_queued_shopper_is_told_to_wait_once_when_nobody_claims_in_time(shop, client, receiver):
    await client.say("c6", "/human", "m1")
    await receiver.wait_for(lambda: any(r["kind"] == "system" for r in receiver.replies))
    notice = [r for r in receiver.replies if r["kind"] == "system"]
    assert notice[0]["text"].startswith("Our team is busier than usual.")
    await asyncio.sleep(1.0)
    assert len([r for r in receiver.replies if r["kind"] == "system"]) == 1


def closed_days() -> str:
    """Every weekday except today and tomorrow (UTC): the team is surely out for the next day."""
    today = datetime.now(timezone.utc).weekday()
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return json.dumps([name for day, name in enumerate(names) if day not in (today, (today + 1) % 7)])


@pytest.mark.parametrize("shop", [{"handoff": f"""agent_wait_seconds = 0.2

[handoff.business_hours]
timezone = "UTC"
days = {closed_days()}
open = "09:00"
close = "17:00"
"""}], indirect=True)
async def test_outside_business_hours_the_shopper_learns_when_the_team_is_back(shop, client, receiver):
    result = await client.say("c7", "human please", "m1")
    assert result["reply"]["kind"] == "handoff"
    assert "back" in result["reply"]["text"] and "09:00 (UTC)" in result["reply"]["text"]
    await asyncio.sleep(0.8)
    assert not [r for r in receiver.replies if r["kind"] == "system"]  # already told when: no second notice
    status, queue = await client.agent("GET", "/handoffs?state=waiting_agent")
    assert [h["conversation"] for h in queue["handoffs"]] == ["c7"]


async def test_closing_ends_the_handoff_and_a_new_message_reopens_with_the_bot(shop, client):
    await client.say("c8", "/human", "m1")
    status, closed = await client.agent("POST", "/conversations/webhook/c8/close", agent="alice")
    assert status == 200 and closed["state"] == "closed"
    again = await client.say("c8", "how long does shipping take?", "m2")
    assert again["state"] == "bot" and again["reply"]["kind"] == "answer"
    reasons = rows(shop, "SELECT reason FROM handoff_transitions WHERE conversation_key = 'webhook:c8' ORDER BY id")
    assert reasons == [("command",), ("closed",), ("shopper_wrote",)]


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("GET", "/handoffs?state=sleeping", {}, 400, "invalid_field"),
    ("GET", "/conversations/webhook/nobody", {}, 404, "not_found"),
    ("POST", "/conversations/webhook/nobody/claim", {"agent": "alice"}, 404, "not_found"),
    ("POST", "/conversations/webhook/c9/claim", {}, 400, "missing_field"),
    ("POST", "/conversations/webhook/c9/claim", {"agent": "alice", "extra": 1}, 400, "unknown_field"),
    ("POST", "/conversations/webhook/c9/release", {"agent": "alice"}, 409, "conflict"),
    ("POST", "/conversations/webhook/c9/messages", {"agent": "alice"}, 400, "missing_field"),
])
async def test_bad_agent_requests_get_a_json_reason(shop, client, method, path, body, status, error):
    await client.say("c9", "hello", "m1")
    got, answer = await client.agent(method, path, **body)
    assert (got, answer["error"]) == (status, error)


async def test_the_agent_api_needs_the_agent_token_not_the_shops(shop, client):
    got, answer = await client.agent("GET", "/handoffs", token=TOKEN)
    assert got == 401 and answer["error"] == "unauthorized"
    got, answer = await client.agent("GET", "/handoffs", token="")
    assert got == 401


async def test_without_an_agent_token_the_agent_api_says_how_to_turn_it_on(tmp_path, http):
    config = load_config(write_config(tmp_path), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        async with http.get(f"{app.http.base_url}/v1/agent/handoffs",
                            headers={"Authorization": "Bearer whatever-0123456789"}) as response:
            body = await response.json()
    assert response.status == 403 and "agent_token_env" in body["detail"]


async def test_a_notification_the_helpdesk_refuses_is_marked_failed_not_lost(shop, client, receiver):
    receiver.fail_notifications = 100
    await client.say("c10", "/human", "m1")
    for _ in range(200):
        status = rows(shop, "SELECT status, attempts FROM notifications WHERE conversation_key = 'webhook:c10'")
        if status and status[0][0] == "failed":
            break
        await asyncio.sleep(0.05)
    assert status == [("failed", 6)]


async def test_a_queued_notification_survives_a_restart(tmp_path, storage, receiver, http):
    # Attempts enough that kefu cannot give up before it stops, however slowly it stops.
    config = load_config(handoff_config(tmp_path, receiver, handoff="agent_wait_seconds = 3600", storage=storage,
                                        notify_attempts=100), environ={})
    receiver.fail_notifications = 10**6  # the helpdesk is down while the shopper asks
    async with KefuApp(config, channels=["webhook"], serve_http=True) as first:
        await Client(first, http).say("c11", "/human", "m1")
        await receiver.wait_for(lambda: receiver.notify_attempts >= 1)
    assert receiver.notifications == []
    # Still queued, not given up. However slowly the first kefu stopped (its backoff doubled meanwhile:
    # 26 s after 9 attempts in CI), its wait has passed by the time the helpdesk is back.
    queued = read_rows(config.storage.location, "UPDATE notifications SET next_attempt_at = NULL "
                       "WHERE status = 'pending' RETURNING id")
    assert len(queued) == 1
    receiver.fail_notifications = 0
    async with KefuApp(config, channels=["webhook"], serve_http=True):
        await receiver.wait_for(lambda: receiver.notifications, timeout=30)
    assert [(n["event"], n["conversation_id"]) for n in receiver.notifications] == [("handoff.requested", "c11")]
