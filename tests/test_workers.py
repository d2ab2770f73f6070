"""Several `kefu serve` workers on one PostgreSQL, as behind a load balancer, one of them killed (-9)
mid-load: not one message lost, stored twice, answered twice or answered out of order."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field

import aiohttp
import psycopg
from conftest import TOKEN, ask, rows, wait_for, write_config
from fake_telegram import FakeTelegram
from test_reliability import Receiver, outgoing_config
from test_telegram import AGENT, SHOPPER, telegram_config
from test_telegram import TOKEN as TELEGRAM_TOKEN
from test_telegram import start_app as start_telegram_app
from test_web_chat import Visitor
from workers import Balancer, Worker, start_workers

from adapters.telegram import POLLING_ROLE
from bot.app import KefuApp
from bot.config import load_config
from bot.cluster.claims import CLUSTER_POLL_SECONDS

QUESTIONS = (
    "how long does shipping take?", "运费多少钱？", "can I return a lamp?", "do you ship to Iceland?",
    "where is my order??", "what payment methods do you take", "我可以退货吗", "is there a discount code",
    "how do I change my address", "do you gift wrap",
)
CONVERSATIONS = 100
MESSAGES = 10
AT_ONCE = 24  # shoppers writing at the same time
KILL_AFTER = 300  # answered messages before one worker is killed
REDELIVER_EVERY = 7  # every 7th message is sent a second time, to another worker
ATTEMPTS = 60


@dataclass
class Load:
    answers: dict[str, dict] = field(default_factory=dict)  # message id -> the reply the shopper got
    answered: int = 0
    retried: int = 0  # sends that failed (worker killed, connection cut) and went to another worker
    redelivered: int = 0
    killed: Worker | None = None


async def send(session: aiohttp.ClientSession, entry: str, body: dict, load: Load) -> dict:
    """POST the message to the load balancer until it answers, as a shop's site would on an error."""
    for _ in range(ATTEMPTS):
        try:
            async with session.post(f"{entry}/v1/messages", json=body,
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
                if answer.status == 200:
                    return await answer.json()
                assert answer.status in (429, 503), (answer.status, await answer.text())
        except (aiohttp.ClientError, TimeoutError):
            pass
        load.retried += 1
        await asyncio.sleep(0.25)
    raise AssertionError(f"no worker answered {body['message_id']} after {ATTEMPTS} attempts")


async def shopper(session: aiohttp.ClientSession, entry: str, workers: list[Worker], number: int, load: Load,
                  gate: asyncio.Semaphore) -> None:
    async with gate:
        conversation = f"shopper-{number}"
        for n in range(MESSAGES):
            body = {"conversation_id": conversation, "message_id": f"{conversation}-m{n}",
                    "text": QUESTIONS[(number + n) % len(QUESTIONS)]}
            answer = await send(session, entry, body, load)
            assert answer["reply"] is not None, answer
            load.answers[body["message_id"]] = answer
            load.answered += 1
            if load.answered == KILL_AFTER and load.killed is None:
                load.killed = random.Random(7).choice(workers)
                load.killed.kill()
            if n % REDELIVER_EVERY == REDELIVER_EVERY - 1:
                again = await send(session, entry, body, load)
                load.redelivered += 1
                assert again["duplicate"] is True and again["inbound_id"] == answer["inbound_id"], again
                assert again["reply"]["text"] == answer["reply"]["text"]


async def test_three_workers_behind_nginx_lose_double_and_reorder_nothing_when_one_is_killed(tmp_path, postgres_url):
    """The sample shop's FAQ on 3 workers behind nginx with deploy/nginx.conf's settings (round robin, no sticky
    sessions: a conversation's messages land on every worker), 100 shoppers x 10 messages, every 7th sent twice,
    one worker killed -9 a third of the way in."""
    workers = start_workers(tmp_path, postgres_url, 3)
    balancer = Balancer(tmp_path / "nginx", [worker.port for worker in workers])
    load = Load()
    try:
        timeout = aiohttp.ClientTimeout(total=90)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            gate = asyncio.Semaphore(AT_ONCE)
            await asyncio.gather(*(shopper(session, balancer.base, workers, number, load, gate)
                                   for number in range(CONVERSATIONS)))
    finally:
        balancer.stop()
        for worker in workers:
            worker.stop()
    print(f"answered={load.answered} resent by the shoppers={load.retried} redelivered={load.redelivered}")
    assert load.killed is not None and load.killed.process.returncode == -9

    inbound = rows(postgres_url, "SELECT id, conversation_key, external_id, status FROM messages "
                                 "WHERE direction = 'in' ORDER BY id")
    assert len(inbound) == CONVERSATIONS * MESSAGES  # none lost, none stored twice
    assert {status for *_, status in inbound} == {"answered"}
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for _, key, external_id, _ in inbound:
        by_conversation[key].append(external_id)
    for number in range(CONVERSATIONS):
        conversation = f"shopper-{number}"
        assert by_conversation[f"webhook:{conversation}"] == [f"{conversation}-m{n}" for n in range(MESSAGES)]

    replies = rows(postgres_url, "SELECT r.reply_to, r.text, m.conversation_key FROM messages r "
                                 "JOIN messages m ON m.id = r.reply_to WHERE r.direction = 'out' ORDER BY r.id")
    assert len(replies) == CONVERSATIONS * MESSAGES  # one reply each: nothing answered twice
    answered_in_order: dict[str, list[int]] = defaultdict(list)
    for reply_to, _, key in replies:
        answered_in_order[key].append(reply_to)
    assert all(ids == sorted(ids) for ids in answered_in_order.values())  # every conversation answered in order
    stored = {reply_to: text for reply_to, text, _ in replies}
    assert all(stored[answer["inbound_id"]] == answer["reply"]["text"] for answer in load.answers.values())
    assert load.redelivered == CONVERSATIONS * (MESSAGES // REDELIVER_EVERY)


async def test_two_workers_push_each_reply_once_and_in_order(tmp_path, postgres_url):
    """Both workers run the outgoing webhook's outbox: each reply is claimed by one of them, even while the
    receiver fails now and then and the retries of both workers' passes race."""
    receiver = Receiver(statuses=[503, 200, 503, 200, 200, 503] * 6)
    await receiver.start()
    apps = []
    try:
        for number in range(2):
            (tmp_path / f"worker-{number}").mkdir()
            config = outgoing_config(tmp_path / f"worker-{number}", postgres_url, receiver.port, max_attempts=20)
            apps.append(await KefuApp(config, channels=["webhook"], serve_http=True).__aenter__())
        async with aiohttp.ClientSession() as http:
            async def shopper(conversation: int) -> None:
                for n in range(5):
                    app = apps[(conversation + n) % 2]
                    async with http.post(app.http.base_url + "/v1/messages",
                                         json={"conversation_id": f"c{conversation}", "text": QUESTIONS[n],
                                               "message_id": f"c{conversation}-{n}"},
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                        assert response.status == 200

            await asyncio.gather(*(shopper(conversation) for conversation in range(10)))
        await wait_for(lambda: len({item["delivery"] for item in receiver.received}) == 50)
        await asyncio.sleep(CLUSTER_POLL_SECONDS + 1)  # a second sending would come within a poll
    finally:
        for app in apps:
            await app.__aexit__(None, None, None)
        await receiver.stop()
    deliveries = [item["delivery"] for item in receiver.received]
    assert len(deliveries) == len(set(deliveries)) == 50  # each reply pushed once
    by_conversation: dict[str, list[int]] = defaultdict(list)
    for item in receiver.received:
        by_conversation[item["reply"]["conversation"]].append(int(item["delivery"]))
    assert all(ids == sorted(ids) and len(ids) == 5 for ids in by_conversation.values())  # in each one's order
    assert rows(postgres_url, "SELECT DISTINCT delivery FROM messages WHERE direction = 'out'") == [("sent",)]


async def test_a_visitors_stream_and_the_console_feed_on_one_worker_see_another_workers_reply_at_once(
        tmp_path, postgres_url):
    """The widget's token works on any worker, and a reply stored by one worker reaches the stream and the
    console's change feed on another by NOTIFY, long before their 15 s re-read."""
    origin = "https://shop.example"
    apps = []
    try:
        for number in range(2):
            folder = tmp_path / f"worker-{number}"
            folder.mkdir()
            config = load_config(write_config(
                folder, f'[web_chat]\nenabled = true\nallowed_origins = ["{origin}"]\n', storage=postgres_url),
                environ={})
            apps.append(await KefuApp(config, channels=["webhook", "web_chat"], serve_http=True).__aenter__())
        for app in apps:
            await asyncio.wait_for(app.broadcast.listening.wait(), 10)
            await ask(app, "how long does shipping take?", conversation="warm-up")  # encoders warm
        async with aiohttp.ClientSession() as session:
            here = Visitor(apps[0].http.base_url, origin, session)
            await here.open()
            there = Visitor(apps[1].http.base_url, origin, session)
            there.token = here.token  # the same visitor, routed to the other worker by the load balancer
            version = apps[0].changes_version()
            feed = asyncio.create_task(apps[0].wait_for_change(version, 14.0))
            stream = asyncio.create_task(here.events(until=1, timeout=30))
            await asyncio.sleep(0.5)  # the stream is open on worker 0
            started = asyncio.get_running_loop().time()
            status, _ = await there.say("how long does shipping take?", "client-0001")
            assert status == 202
            events = await stream
            elapsed = asyncio.get_running_loop().time() - started
            assert await feed > version
    finally:
        for app in apps:
            await app.__aexit__(None, None, None)
    assert [event["from"] for kind, event in events if kind == "message"] == ["shopper", "bot"]
    assert elapsed < 10, elapsed  # the NOTIFY, not the keepalive re-read


async def test_one_worker_polls_telegram_and_another_takes_over_when_it_stops(tmp_path, postgres_url):
    """Telegram lets one getUpdates caller per bot: two workers polling would end each other's polls (409)."""
    async with FakeTelegram(TELEGRAM_TOKEN, group_members=[AGENT]) as tg:
        apps = []
        try:
            for number in range(2):
                folder = tmp_path / f"worker-{number}"
                folder.mkdir()
                path = telegram_config(folder, tg)
                path.write_text(path.read_text(encoding="utf-8").replace(
                    'database = "data/kefu.db"', f'url = "{postgres_url}"'), encoding="utf-8")
                apps.append(await start_telegram_app(path).__aenter__())
            tg.push_update(tg.text_update(SHOPPER, "how long does shipping take?"))
            await tg.wait_for_messages(SHOPPER, 1, timeout=30)
            await asyncio.sleep(3)  # polls of 1 s: two pollers would have ended each other's by now
            assert tg.poll_conflicts == 0
            leader = next(app for app in apps if app.leads(POLLING_ROLE))
            await leader.__aexit__(None, None, None)  # gives its leases back
            apps.remove(leader)
            tg.push_update(tg.text_update(SHOPPER, "运费多少钱？"))
            await tg.wait_for_messages(SHOPPER, 2, timeout=30)  # the other worker polls now
            assert apps[0].leads(POLLING_ROLE) and tg.poll_conflicts == 0
        finally:
            for app in apps:
                await app.__aexit__(None, None, None)


async def test_a_worker_without_its_database_answers_503_and_recovers(tmp_path, postgres_server, postgres_url):
    """PostgreSQL refusing connections (a restart, a network cut): a clear 503 to retry, never a 500."""
    config = load_config(write_config(tmp_path, storage=postgres_url), environ={})
    name = postgres_url.rsplit("/", 1)[1]
    admin = postgres_server.admin_url

    def connections(allowed: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])

    async with KefuApp(config, channels=["webhook"], serve_http=True) as app, aiohttp.ClientSession() as http:
        assert (await ask(app, "how long does shipping take?"))["kind"] == "answer"
        connections(False)
        try:
            async with http.post(f"{app.http.base_url}/v1/messages", headers={"Authorization": f"Bearer {TOKEN}"},
                                 json={"conversation_id": "c2", "text": "运费多少钱？", "message_id": "m1"}) as answer:
                assert answer.status == 503, await answer.text()
                assert "unavailable" in (await answer.json())["detail"]
        finally:
            connections(True)
        reply = await ask(app, "运费多少钱？", conversation="c2")  # the same worker, the database back
        assert reply["faq_ids"] == ["shipping-cost"]
