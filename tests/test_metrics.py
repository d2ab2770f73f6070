"""GET /metrics: the counters, histogram and gauges of a real kefu, scraped over real HTTP and parsed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import TOKEN, loopback_server, write_config
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from bot.app import KefuApp
from bot.config import load_config
from bot.dispatcher import TurnDispatcher, TurnOutcome
from bot.errors import ConfigError
from bot.messages import Message, Reply, ReplyKind
from bot.metrics import Metrics, fallback_kind
from bot.store import Store, StoredInbound

AGENT_TOKEN = "agent-token-abcdef0123456789"
METRICS_TOKEN = "metrics-token-0123456789"
GROUNDED = ("Standard delivery takes 3-5 business days to the EU and UK. Orders placed before 14:00 CET on a "
            "business day are dispatched the same day.")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers -------------------------------------------------------------------


def parse(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample's value; None when the exposition does not have it at all."""
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str) -> float:
    return sum(found for (sample, _), found in samples.items() if sample == name)


async def scrape(app: KefuApp, path: str = "/metrics", headers: dict[str, str] | None = None
                 ) -> tuple[int, str, str]:
    assert app.http is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(app.http.base_url + path, headers=headers or {}) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()


async def metrics_of(app: KefuApp) -> Samples:
    status, _, text = await scrape(app)
    assert status == 200, text
    return parse(text)


async def say(app: KefuApp, conversation: str, text: str) -> dict:
    assert app.http is not None
    async with aiohttp.ClientSession() as session:
        async with session.post(app.http.base_url + "/v1/messages",
                                json={"conversation_id": conversation, "text": text},
                                headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def agent(app: KefuApp, conversation: str, action: str, **body: str) -> dict:
    assert app.http is not None
    url = f"{app.http.base_url}/v1/agent/conversations/webhook/{conversation}/{action}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers={"Authorization": f"Bearer {AGENT_TOKEN}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def eventually(app: KefuApp, check: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
    """Scrape until `check` holds (deliveries and notifications run in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        samples = await metrics_of(app)
        if check(samples):
            return samples
        if loop.time() > deadline:
            raise AssertionError(f"metrics never met the condition; last scrape: {samples}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(directory: Path, extra: str = "", *, webhook: str = "", handoff: str = "enabled = false",
                  environ: dict[str, str] | None = None) -> AsyncIterator[KefuApp]:
    directory.mkdir(exist_ok=True)
    path = write_config(directory, extra, webhook=webhook, handoff=handoff)
    async with KefuApp(load_config(path, environ=environ or {}), channels=["webhook"], serve_http=True) as app:
        yield app


@dataclass
class Endpoints:
    """The shop's reply endpoint and helpdesk on 127.0.0.1, answering from scripts of statuses (then 204)."""

    reply_statuses: list[int] = field(default_factory=list)
    notify_statuses: list[int] = field(default_factory=list)
    base_url: str = ""

    async def on_reply(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=self.reply_statuses.pop(0) if self.reply_statuses else 204)

    async def on_notify(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=self.notify_statuses.pop(0) if self.notify_statuses else 204)


@pytest.fixture
async def endpoints() -> AsyncIterator[Endpoints]:
    found = Endpoints()
    async with loopback_server({"/replies": found.on_reply, "/notify": found.on_notify}) as base_url:
        found.base_url = base_url
        yield found


# -- what a shop's traffic shows -------------------------------------------------


async def test_turns_handoffs_agent_actions_and_queue_gauges_are_exposed(tmp_path):
    async with running(tmp_path, webhook=f'agent_token = "{AGENT_TOKEN}"', handoff="") as app:
        assert (await say(app, "c1", "how long does shipping take?"))["reply"]["kind"] == "answer"
        assert (await say(app, "c2", "推荐一部电影"))["reply"]["kind"] == "no_match"
        assert (await say(app, "c3", "I want to talk to a real person"))["reply"]["kind"] == "handoff"
        queued = await metrics_of(app)
        assert (await say(app, "c3", "hello? anyone there?"))["reply"] is None
        await agent(app, "c3", "claim", agent="alice")
        await agent(app, "c3", "messages", agent="alice", text="Hi, Alice here.")
        status, content_type, text = await scrape(app)

    assert status == 200 and content_type == CONTENT_TYPE_LATEST
    samples = parse(text)
    assert value(samples, "kefu_turns_total", channel="webhook", outcome="answer") == 1
    assert value(samples, "kefu_turns_total", channel="webhook", outcome="no_match") == 1
    assert value(samples, "kefu_turns_total", channel="webhook", outcome="handoff") == 1
    assert value(samples, "kefu_turns_total", channel="webhook", outcome="forwarded") == 1
    assert total(samples, "kefu_turns_total") == 4
    assert value(samples, "kefu_turn_latency_seconds_count", channel="webhook") == 4
    assert value(samples, "kefu_turn_latency_seconds_bucket", channel="webhook", le="30.0") == 4
    assert 0 < value(samples, "kefu_turn_latency_seconds_sum", channel="webhook") < 30
    assert value(samples, "kefu_handoffs_total", channel="webhook", reason="explicit_request") == 1
    assert total(samples, "kefu_handoffs_total") == 1
    assert value(samples, "kefu_agent_actions_total", action="claim") == 1
    assert value(samples, "kefu_agent_actions_total", action="reply") == 1
    assert value(samples, "kefu_agent_actions_total", action="release") == 0
    assert total(samples, "kefu_errors_total") == 0 and total(samples, "kefu_fallbacks_total") == 0
    # Gauges come from the store at scrape time: queued after the handoff, with alice after her claim.
    assert value(queued, "kefu_conversations_waiting_for_agent") == 1
    assert value(queued, "kefu_conversations_with_agent") == 0
    assert value(samples, "kefu_conversations_waiting_for_agent") == 0
    assert value(samples, "kefu_conversations_with_agent") == 1
    assert value(samples, "kefu_inbound_pending") == 0
    info = [labels for (name, labels), _ in samples.items() if name == "kefu_info"]
    assert len(info) == 1 and ("shop", "Test Shop") in info[0]


async def test_labels_never_carry_conversation_ids_or_text(tmp_path):
    async with running(tmp_path) as app:
        await say(app, "secret-conversation-42", "how long does shipping take? my email is jo@example.com")
        status, _, text = await scrape(app)
    assert status == 200 and "kefu_turns_total" in text
    assert "secret-conversation-42" not in text and "jo@example.com" not in text and "shipping" not in text


async def test_two_apps_in_one_process_count_separately(tmp_path):
    async with running(tmp_path / "a") as first, running(tmp_path / "b") as second:
        await say(first, "c1", "how long does shipping take?")
        await say(first, "c2", "how long does shipping take?")
        mine, theirs = await metrics_of(first), await metrics_of(second)
    assert first.metrics is not None and second.metrics is not None
    assert first.metrics.registry is not second.metrics.registry
    assert value(mine, "kefu_turns_total", channel="webhook", outcome="answer") == 2
    assert value(theirs, "kefu_turns_total", channel="webhook", outcome="answer") is None
    assert total(theirs, "kefu_turns_total") == 0


# -- failures ----------------------------------------------------------------------


async def test_failed_deliveries_and_notifications_are_counted_as_errors(tmp_path, endpoints):
    endpoints.reply_statuses = [503, 400]  # the first reply: retried once, then refused for good
    endpoints.notify_statuses = [500, 500]  # the helpdesk is down for both attempts
    webhook = f"""
[webhook.outgoing]
url = "{endpoints.base_url}/replies"
secret = "outgoing-secret-0123456789"
max_attempts = 3
backoff_seconds = 0.05
"""
    handoff = f"""
[handoff.notify]
url = "{endpoints.base_url}/notify"
secret = "notify-secret-0123456789"
max_attempts = 2
backoff_seconds = 0.05
"""
    async with running(tmp_path, webhook=webhook, handoff=handoff) as app:
        await say(app, "c1", "how long does shipping take?")
        failed = await eventually(app, lambda s: value(s, "kefu_deliveries_total", channel="webhook",
                                                       result="failed") == 1)
        await say(app, "c1", "/human")
        done = await eventually(app, lambda s: value(s, "kefu_errors_total", channel="http",
                                                     stage="notification") == 2
                                and value(s, "kefu_deliveries_total", channel="webhook", result="sent") == 1)
    assert value(failed, "kefu_deliveries_total", channel="webhook", result="retry") == 1
    assert value(failed, "kefu_deliveries_total", channel="webhook", result="sent") is None
    assert value(failed, "kefu_errors_total", channel="webhook", stage="delivery") == 2
    assert value(done, "kefu_errors_total", channel="webhook", stage="delivery") == 2
    assert value(done, "kefu_handoffs_total", channel="webhook", reason="command") == 1
    assert value(done, "kefu_deliveries_pending") == 0
    assert value(done, "kefu_errors_total", channel="webhook", stage="turn") is None


async def test_a_failed_turn_is_counted_as_an_error(tmp_path):
    store = Store(tmp_path / "kefu.db")
    await store.open()
    metrics = Metrics(shop="Test Shop")

    async def broken(inbound: StoredInbound) -> TurnOutcome:
        raise ValueError("the FAQ index exploded")

    async def apologise(inbound: StoredInbound, reason: str, elapsed_ms: float) -> TurnOutcome:
        reply = Reply(channel=inbound.channel, conversation=inbound.conversation, user_id=inbound.user_id,
                      text="sorry", language="en", kind=ReplyKind.ERROR, in_reply_to=inbound.id)
        stored, state = await store.answer_failed_turn(inbound.id, reply, latency_ms=elapsed_ms, deliver=False,
                                                       meta={})
        return TurnOutcome(stored, state)

    dispatcher = TurnDispatcher(store=store, run_turn=broken, fail_turn=apologise, on_reply=lambda reply: None,
                                turn_timeout=5.0, metrics=metrics)
    try:
        for number in (1, 2):
            result = await dispatcher.submit(Message(channel="test", conversation="c", user_id="u", text="hi",
                                                     external_id=str(number)))
            assert result.reply.kind == ReplyKind.ERROR
        samples = parse(metrics.render(await store.stats()).decode())
    finally:
        await store.close()
    assert value(samples, "kefu_errors_total", channel="test", stage="turn") == 2
    assert value(samples, "kefu_inbound_pending") == 0
    assert total(samples, "kefu_turns_total") == 0


# -- LLM fallbacks -----------------------------------------------------------------


@dataclass
class ModelServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1; each entry of `script` is a text or a delay."""

    script: list[str | float] = field(default_factory=list)
    base_url: str = ""

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        content = self.script.pop(0) if self.script else GROUNDED
        if isinstance(content, float):
            await asyncio.sleep(content)
            content = GROUNDED
        return web.json_response({"model": body["model"], "choices": [{"message": {"role": "assistant",
                                                                                    "content": content}}]})


async def test_llm_fallbacks_are_counted_with_a_bounded_reason(tmp_path):
    server = ModelServer(script=["", "", 3.0, GROUNDED])  # an empty reply twice: the second try too
    async with loopback_server({"/v1/chat/completions": server.completions}) as base_url:
        extra = f"""
[responder]
backend = "openai"
deadline_seconds = 1.0
style = "write"

[responder.openai]
base_url = "{base_url}/v1"
model = "tiny"
max_retries = 0
"""
        async with running(tmp_path, extra) as app:
            for text in ("how long does shipping take?", "how long does shipping take to the UK?",
                         "how long does shipping take?"):
                await say(app, "c1", text)
            samples = await metrics_of(app)
    assert value(samples, "kefu_fallbacks_total", channel="webhook", reason="empty") == 1
    assert value(samples, "kefu_fallbacks_total", channel="webhook", reason="timeout") == 1
    assert total(samples, "kefu_fallbacks_total") == 2  # the grounded generation was used: no fallback
    assert value(samples, "kefu_turns_total", channel="webhook", outcome="answer") == 3


@pytest.mark.parametrize(("reason", "kind"), [
    ("deadline passed after 1 attempt(s); last: http://x/v1/chat/completions answered 503: busy", "timeout"),
    ("deadline passed while waiting for the model", "timeout"),
    ("the model did not finish before the deadline", "timeout"),
    ("http://127.0.0.1:9/v1/chat/completions unreachable: TimeoutError ", "timeout"),
    ("http://127.0.0.1:9/v1/chat/completions unreachable: ClientConnectorError refused", "unavailable"),
    ("http://127.0.0.1:9/v1/chat/completions answered 500: overloaded", "unavailable"),
    ("the server's message content is not text", "unavailable"),
    ("the model is busy (4 turns already waiting)", "busy"),
    ("the model returned nothing", "empty"),
    ("the output repeats itself", "degenerate"),
    ("the output has no words", "degenerate"),
    ("the reply is in 'en', the shopper writes 'zh'", "wrong_language"),
    ("not in the FAQ: number 6", "ungrounded"),
    ("claim not backed by the FAQ: 'we ship before the deadline' (similarity 0.41)", "ungrounded"),
    ("the reply uses 2 words the FAQ never does: also, drone", "ungrounded"),
    ("the reply sends the shopper somewhere the FAQ does not mention: website", "ungrounded"),
    ("the reply repeats the shopper's words the FAQ never uses: drone", "ungrounded"),
    ("the reply states nothing from the FAQ (greetings or apologies only)", "ungrounded"),
    ("the reply names personal data the shopper did not write in this message", "personal_data"),
    ("the model's copy matches no sentence of the answer", "unfaithful_copy"),
    ("something new went wrong", "other"),
])
def test_fallback_reasons_map_to_a_few_kinds(reason, kind):
    assert fallback_kind(reason) == kind


# -- access and config -------------------------------------------------------------


async def test_a_token_is_required_when_configured(tmp_path):
    extra = '[metrics]\npath = "/internal/metrics"\ntoken_env = "KEFU_METRICS_TOKEN"\n'
    async with running(tmp_path, extra, environ={"KEFU_METRICS_TOKEN": METRICS_TOKEN}) as app:
        bare = await scrape(app, "/internal/metrics")
        wrong = await scrape(app, "/internal/metrics", {"Authorization": "Bearer not-the-metrics-token"})
        shop_token = await scrape(app, "/internal/metrics", {"Authorization": f"Bearer {TOKEN}"})
        right = await scrape(app, "/internal/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
        default_path = await scrape(app, "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    for status, content_type, text in (bare, wrong, shop_token):
        assert status == 401 and content_type.startswith("application/json")
        assert '"error": "unauthorized"' in text
    assert right[0] == 200 and right[1] == CONTENT_TYPE_LATEST
    assert any(name == "kefu_info" for name, _ in parse(right[2]))
    assert default_path[0] == 404


async def test_disabled_metrics_are_not_served(tmp_path):
    async with running(tmp_path, "[metrics]\nenabled = false\n") as app:
        status, content_type, text = await scrape(app)
        assert app.metrics is None
    assert status == 404 and content_type.startswith("application/json") and '"error": "not_found"' in text


async def test_without_an_http_server_no_metrics_are_kept(tmp_path):
    app = KefuApp(load_config(write_config(tmp_path), environ={}), channels=[], serve_http=False)
    try:
        assert app.metrics is None
    finally:
        await app.stop()


def test_metrics_config_defaults(tmp_path):
    config = load_config(write_config(tmp_path), environ={})
    assert (config.metrics.enabled, config.metrics.path, config.metrics.token) == (True, "/metrics", "")


@pytest.mark.parametrize(("text", "environ", "key", "problem"), [
    ('token_env = "KEFU_METRICS_TOKEN"', {}, "metrics.token_env",
     "environment variable KEFU_METRICS_TOKEN is not set or empty"),
    ('token = "short"', {}, "metrics.token", "at least 16 characters"),
    ('path = "metrics"', {}, "metrics.path", "must start with /"),
    ('path = "/healthz"', {}, "metrics.path", "taken by another kefu route"),
    ('path = "/v1/metrics"', {}, "metrics.path", "taken by another kefu route"),
    ("port = 9100", {}, "metrics.port", "unknown key"),
])
def test_bad_metrics_config_names_the_key_and_line(tmp_path, text, environ, key, problem):
    path = tmp_path / "kefu.toml"
    path.write_text(f"[metrics]\nenabled = true\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ)
    assert info.value.key == key and info.value.line == 3
    assert problem in str(info.value)
