"""Prometheus metrics for one running kefu: what happened (counters) and what waits now (gauges).

Each `Metrics` owns its own `CollectorRegistry`, never prometheus_client's global
one, so two apps in one process (tests, or a host embedding kefu) never share a
count. Labels stay bounded: channel names, reply kinds, handoff reasons, stages
and short fallback kinds; never conversation ids or message text. The gauges are
read from the store at each scrape, so they are right even after a restart.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Literal, get_args

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from bot.http import json_error

log = logging.getLogger(__name__)

# A keyword answer takes milliseconds, an LLM turn can take 10 s or more, the turn timeout defaults to 30 s.
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0)

FORWARDED = "forwarded"  # the turn's outcome while a person handles the conversation: the bot stays silent
AgentAction = Literal["claim", "reply", "release", "close"]
DeliveryResult = Literal["sent", "retry", "failed"]  # retry: an attempt failed, another follows; failed: given up
ErrorStage = Literal["turn", "delivery", "notification"]

# Store.stats() key → gauge name and help: read at scrape time.
GAUGES = {
    "waiting_for_agent": ("kefu_conversations_waiting_for_agent", "Conversations queued for a person, unclaimed."),
    "with_agent": ("kefu_conversations_with_agent", "Conversations a person is handling now."),
    "pending_inbound": ("kefu_inbound_pending", "Stored shopper messages not answered yet."),
    "pending_deliveries": ("kefu_deliveries_pending", "Stored replies not yet delivered through a push channel."),
}

# An LLM fallback's reason is free text (it quotes words, sentences and URLs); the metric gets a bounded kind.
# Matched at the start of the reason, where GenerationError's messages (bot/llm.py, bot/responder/llm.py,
# bot/responder/grounding.py) put their fixed words, so quoted text cannot change the kind; first match wins.
FALLBACK_KINDS = tuple((re.compile(pattern), kind) for pattern, kind in (
    (r"deadline passed|the model did not finish|\S+ unreachable: \w*TimeoutError", "timeout"),
    (r"the model is busy", "busy"),
    (r"\S+ (answered \d|unreachable:)|the server's", "unavailable"),
    (r"the model returned nothing", "empty"),
    (r"the output ", "degenerate"),
    (r"the reply is in '", "wrong_language"),
    (r"the reply names personal data", "personal_data"),
    (r"not in the FAQ|claim not backed|the reply (repeats|sends|uses|states) ", "ungrounded"),
    (r"the model's copy matches no sentence", "unfaithful_copy"),  # the compose style
))

Stats = Callable[[], Awaitable[Mapping[str, int]]]


def fallback_kind(reason: str) -> str:
    """A short, bounded label for why a generated reply was not used ("other" for a reason not listed)."""
    for pattern, kind in FALLBACK_KINDS:
        if pattern.match(reason):
            return kind
    return "other"


def kefu_version() -> str:
    try:
        return version("kefu")
    except PackageNotFoundError:
        log.warning("metrics.version_unknown reason=the kefu package is not installed (run: pip install -e .)")
        return "unknown"


class Metrics:
    """The counters kefu's services bump, and the registry `/metrics` renders."""

    def __init__(self, *, shop: str):
        self.registry = CollectorRegistry()
        registry = self.registry
        Info("kefu", "The running kefu: its version and shop.", registry=registry).info(
            {"version": kefu_version(), "shop": shop})
        self._turns = Counter("kefu_turns", "Shopper messages processed, by what the bot did with them.",
                              ["channel", "outcome"], registry=registry)
        self._latency = Histogram("kefu_turn_latency_seconds", "Time to process a stored message until its outcome is stored.",
                                  ["channel"], buckets=TURN_BUCKETS, registry=registry)
        self._handoffs = Counter("kefu_handoffs", "Conversations the bot handed to a person, by trigger.",
                                 ["channel", "reason"], registry=registry)
        self._fallbacks = Counter("kefu_fallbacks", "Generated replies refused or late: the FAQ text was sent.",
                                  ["channel", "reason"], registry=registry)
        self._errors = Counter("kefu_errors", "Failed turns, delivery attempts and agent notification attempts.",
                               ["channel", "stage"], registry=registry)
        self._agent_actions = Counter("kefu_agent_actions", "Agents' actions through the agent desk.",
                                      ["action"], registry=registry)
        self._deliveries = Counter("kefu_deliveries", "Delivery attempts through push channels, by result.",
                                   ["channel", "result"], registry=registry)
        self._gauges = {key: Gauge(name, text, registry=registry) for key, (name, text) in GAUGES.items()}
        for action in get_args(AgentAction):  # present at 0 from the start, so rate() works before the first action
            self._agent_actions.labels(action=action)

    # -- recording -------------------------------------------------------------

    def turn(self, *, channel: str, outcome: str, seconds: float, handoff: str | None = None,
             fallback: str | None = None) -> None:
        """One finished turn: `outcome` is the reply kind or FORWARDED; `fallback` the responder's free-text reason."""
        self._turns.labels(channel=channel, outcome=outcome).inc()
        self._latency.labels(channel=channel).observe(seconds)
        if handoff is not None:
            self._handoffs.labels(channel=channel, reason=handoff).inc()
        if fallback is not None:
            self._fallbacks.labels(channel=channel, reason=fallback_kind(fallback)).inc()

    def error(self, channel: str, stage: ErrorStage) -> None:
        self._errors.labels(channel=channel, stage=stage).inc()

    def delivery(self, channel: str, result: DeliveryResult) -> None:
        """One delivery attempt; a failed one (retried or given up) also counts as a delivery error."""
        self._deliveries.labels(channel=channel, result=result).inc()
        if result != "sent":
            self.error(channel, "delivery")

    def agent_action(self, action: str) -> None:
        """One of AgentAction: "claim", "reply", "release", "close"."""
        self._agent_actions.labels(action=action).inc()

    # -- exposition ------------------------------------------------------------

    def render(self, stats: Mapping[str, int]) -> bytes:
        """The registry in Prometheus' text format, with the gauges set from `stats` (Store.stats())."""
        for key, gauge in self._gauges.items():
            gauge.set(stats.get(key, 0))
        return generate_latest(self.registry)

    def mount(self, app: web.Application, *, path: str, token: str, stats: Stats) -> None:
        """Serve GET `path` on kefu's HTTP server; with a `token`, only to `Authorization: Bearer <token>`."""

        async def scrape(request: web.Request) -> web.Response:
            if token and not _bearer_matches(request, token):
                return json_error(401, "unauthorized", "send 'Authorization: Bearer <metrics token>'")
            body = self.render(await stats())
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get(path, scrape)


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
