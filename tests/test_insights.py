"""Dashboard figures from a real store filled through its own write path, and question clusters
grouped by the real multilingual encoder."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bot.handoff import Action
from bot.handoff.store import HandoffStore, QueuedEvent
from bot.insights import CSV_HEADER, InsightsService, QuestionCluster, clusters_csv, nearest_rank
from bot.messages import Message, Reply, ReplyKind, Role
from bot.store import Store

UTC = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NO_EVENT = QueuedEvent((), "test", {})

pytestmark = pytest.mark.both_engines


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Shop:
    """A real store and a way to write turns into it the way the pipeline does."""

    store: Store
    records: HandoffStore

    async def turn(self, conversation: str, text: str, when: str, *, kind: ReplyKind | None = None,
                   language: str = "en", reply_language: str | None = None, latency: float = 100.0, sentiment: float | None = None,
                   reason: str = "upset", reason_in_meta: bool = True, forwarded: bool = False, traced: bool = True,
                   channel: str = "webhook", role: Role = Role.SHOPPER, detected: str | None = None,
                   tried: Sequence[str] = ()) -> int:
        record = await self.store.record_inbound(Message(channel, conversation, f"u-{conversation}", text,
                                                         role=role, timestamp=at(when)))
        inbound = record.message
        if sentiment is not None:
            await self.records.record_sentiment(inbound.id, inbound.conversation_key, sentiment, sentiment)
        trace: dict = {"language": {"language": language, "confidence": 0.9, "reason": "test"}} if traced else {}
        if traced and detected is not None:  # the shopper's language, which the shop may not have enabled
            trace["language"].update(detected=detected, enabled=detected == language)
        if tried:
            trace["retrieval"] = [{"faq_id": faq_id, "score": 0.2, "why": "test"} for faq_id in tried]
        if forwarded:
            await self.records.forward(inbound.id, meta=trace, event=NO_EVENT)
            return inbound.id
        if kind is None:
            return inbound.id  # still pending
        reply = Reply(channel, conversation, f"u-{conversation}", f"reply to {text}", reply_language or language, kind,
                      in_reply_to=inbound.id, created_at=at(when) + timedelta(seconds=1))
        if kind == ReplyKind.ERROR:  # as the pipeline answers a failed turn
            await self.store.answer_failed_turn(inbound.id, reply, latency_ms=latency, deliver=False,
                                                meta={"error": "test"})
        elif kind == ReplyKind.HANDOFF:
            meta = {**trace, "handoff": {"reason": reason, "detail": "test"}} if reason_in_meta else trace
            await self.records.start_handoff(inbound.id, reply, reason=reason, detail="test", latency_ms=latency,
                                             deliver=False, meta=meta, event=NO_EVENT)
        else:
            await self.store.record_reply(inbound.id, reply, latency_ms=latency, deliver=False, meta=trace)
        return inbound.id


@pytest.fixture
async def shop(storage: Path | str) -> AsyncIterator[Shop]:
    store = Store(storage)
    await store.open()
    try:
        yield Shop(store, HandoffStore(store))
    finally:
        await store.close()


class CachedEncoder:
    """The real multilingual encoder, loaded once per module; each text is embedded once."""

    parallel = 1
    cost = 1.0

    def __init__(self) -> None:
        from knowledge.encoders import UseEncoder

        self._encoder = UseEncoder()
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self._cache]
        if missing:
            self._cache.update(zip(missing, self._encoder.encode(missing)))
        return np.stack([self._cache[text] for text in texts])


@pytest.fixture(scope="module")
def encoder() -> CachedEncoder:
    return CachedEncoder()


# -- figures ---------------------------------------------------------------------


async def fill_three_days(shop: Shop) -> None:
    """Nov 27: 5 turns; Nov 28: none; Nov 29: 4; Nov 30: 1 — plus messages that must not count."""
    await shop.turn("c1", "hello", "2026-11-27T09:00:00+00:00", kind=ReplyKind.ANSWER, latency=100, sentiment=0.5)
    await shop.turn("c1", "where is my parcel", "2026-11-27T09:01:00+00:00", kind=ReplyKind.ANSWER, latency=300,
                    sentiment=0.1)
    await shop.turn("c2", "你们几点关门", "2026-11-27T10:00:00+00:00", kind=ReplyKind.NOT_SURE, language="zh",
                    latency=200, sentiment=-0.4, channel="telegram")
    await shop.turn("c3", "human please", "2026-11-27T11:00:00+00:00", kind=ReplyKind.HANDOFF,
                    reason="explicit_request", latency=400, sentiment=-0.3)
    await shop.records.agent_message("webhook:c3", "alice", Reply("webhook", "c3", "u-c3", "Hi, Alice here", "en",
                                                                   ReplyKind.AGENT), deliver=False)
    await shop.turn("c3", "hello?", "2026-11-27T11:05:00+00:00", forwarded=True)
    await shop.turn("c3", "agent note", "2026-11-27T11:06:00+00:00", role=Role.AGENT)  # not a shopper: no turn
    await shop.turn("c4", "verkauft ihr Hüte", "2026-11-29T08:00:00+00:00", kind=ReplyKind.NO_MATCH, language="de",
                    reply_language="en", latency=50)  # detected German; the reply was written in English
    await shop.turn("c5", "this is awful", "2026-11-29T08:30:00+00:00", kind=ReplyKind.HANDOFF, reason="upset",
                    reason_in_meta=False, latency=600, sentiment=-0.9)
    await shop.turn("c6", "/start", "2026-11-29T09:00:00+00:00", kind=ReplyKind.INFO, language="fr", latency=10,
                    traced=False)
    await shop.turn("c7", "still waiting", "2026-11-29T10:00:00+00:00", language="")  # pending: no reply yet
    await shop.turn("c8", "late question", "2026-11-30T23:59:59.999+00:00", kind=ReplyKind.ANSWER,
                    latency=1000, channel="telegram")
    await shop.turn("c9", "too early", "2026-11-26T23:59:59.999+00:00", kind=ReplyKind.ANSWER, latency=5000)
    await shop.turn("c9", "too late", "2026-12-01T00:00:00+00:00", kind=ReplyKind.ANSWER, latency=5000)


async def test_totals_count_turns_by_what_became_of_them(shop):
    await fill_three_days(shop)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 30))
    totals = report.totals
    assert (totals.day, totals.turns, totals.commands, totals.questions) == ("total", 10, 1, 9)
    assert (totals.automated, totals.handoffs, totals.not_sure, totals.no_match) == (3, 2, 1, 1)
    assert (totals.with_agent, totals.errors, totals.no_reply) == (1, 0, 1)
    # Rates are of the 9 questions: the /start command is no question the FAQ could have answered.
    assert (totals.automation_rate, totals.handoff_rate, totals.not_sure_rate, totals.no_match_rate) == (
        pytest.approx(3 / 9), pytest.approx(2 / 9), pytest.approx(1 / 9), pytest.approx(1 / 9))


async def test_only_a_confident_faq_answer_counts_as_automated(shop):
    """The issue's 79.3 %: "not sure" and "no match" replies were counted as answered."""
    for n in range(10):
        await shop.turn(f"a{n}", f"answered {n}", f"2026-11-27T09:{n:02d}:00+00:00", kind=ReplyKind.ANSWER)
    for n, kind in enumerate([ReplyKind.NOT_SURE] * 4 + [ReplyKind.NO_MATCH] * 2 + [ReplyKind.HANDOFF, ReplyKind.ERROR]):
        await shop.turn(f"b{n}", f"unanswered {n}", f"2026-11-27T10:{n:02d}:00+00:00", kind=kind)
    for n, command in enumerate(["/start", "/help"]):
        await shop.turn(f"c{n}", command, f"2026-11-27T11:{n:02d}:00+00:00", kind=ReplyKind.INFO)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 27))
    totals = report.to_json()["totals"]
    assert (totals["turns"], totals["commands"], totals["questions"], totals["automated"]) == (20, 2, 18, 10)
    assert totals["automation_rate"] == round(10 / 18, 4)  # not (10 + 4 + 2 + 2) / 20
    assert (totals["not_sure_rate"], totals["no_match_rate"]) == (round(4 / 18, 4), round(2 / 18, 4))
    assert (totals["handoff_rate"], totals["errors"], totals["error_rate"]) == (round(1 / 18, 4), 1, round(1 / 18, 4))
    assert "confidently from the FAQ" in report.to_json()["definitions"]["automation_rate"]


async def test_an_answer_that_started_a_handoff_is_not_automated(shop):
    answered = await shop.turn("a", "where is my parcel", "2026-11-27T09:00:00+00:00", kind=ReplyKind.ANSWER)
    await shop.records.apply("webhook:a", Action.HANDOFF, actor="test", reason="keyword", detail="test",
                             message_id=answered)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 27))
    assert (report.totals.automated, report.totals.handoffs) == (0, 1)
    assert report.handoff_reasons == {"keyword": 1}


async def test_each_day_has_its_own_figures_and_empty_days_are_zeros(shop):
    await fill_three_days(shop)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 30))
    assert [day.day for day in report.days] == ["2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"]
    assert [day.turns for day in report.days] == [5, 0, 4, 1]
    assert [day.automated for day in report.days] == [2, 0, 0, 1]
    assert [day.commands for day in report.days] == [0, 0, 1, 0]
    assert [day.handoffs for day in report.days] == [1, 0, 1, 0]
    assert [day.with_agent for day in report.days] == [1, 0, 0, 0]
    assert [day.no_reply for day in report.days] == [0, 0, 1, 0]
    empty = report.days[1].to_json()
    assert empty["automation_rate"] is None and empty["latency_p50_ms"] is None and empty["mood_average"] is None
    assert empty["upset"] == 0


async def test_handoff_reasons_fall_back_to_the_recorded_transition(shop):
    await fill_three_days(shop)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 30))
    assert report.handoff_reasons == {"explicit_request": 1, "upset": 1}  # c5's reply meta has no reason


async def test_language_mix_and_channels(shop):
    await fill_three_days(shop)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 30))
    # c4 counts as German, the language detected, not as the English of its reply (stored on the message).
    # c3's forwarded message has no reply: its language comes from its own trace; c6's turn (a command)
    # was not traced: the language stored on the message (its reply's) counts; c7 has none at all.
    assert list(report.languages.items()) == [("en", 6), ("de", 1), ("fr", 1), ("unknown", 1), ("zh", 1)]
    assert list(report.channels.items()) == [("webhook", 8), ("telegram", 2)]


async def test_the_shoppers_detected_language_counts_and_languages_not_enabled_are_named(shop):
    # The shop answers in English and Chinese; German shoppers got English replies.
    await shop.turn("a", "wo ist mein Paket", "2026-11-27T09:00:00+00:00", kind=ReplyKind.ANSWER, language="en",
                    detected="de")
    await shop.turn("b", "wie lange dauert der Versand", "2026-11-27T09:01:00+00:00", kind=ReplyKind.NO_MATCH,
                    language="en", detected="de")
    await shop.turn("c", "Où est mon colis", "2026-11-27T09:02:00+00:00", forwarded=True, language="en",
                    detected="fr")
    await shop.turn("d", "运费多少钱", "2026-11-27T09:03:00+00:00", kind=ReplyKind.ANSWER, language="zh", detected="zh")
    await shop.turn("e", "where is my parcel", "2026-11-27T09:04:00+00:00", kind=ReplyKind.ANSWER)  # no `detected`
    report = await InsightsService(shop.store, timezone=UTC, languages=["en", "zh"]).report(
        date(2026, 11, 27), date(2026, 11, 27))
    assert report.languages == {"de": 2, "en": 1, "fr": 1, "zh": 1}
    assert report.to_json()["not_enabled"] == [{"language": "de", "name": "German", "turns": 2, "share": 0.4},
                                               {"language": "fr", "name": "French", "turns": 1, "share": 0.2}]
    unknown_shop = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 27))
    assert unknown_shop.not_enabled == ()


async def test_mood_is_averaged_per_day_and_upset_turns_counted(shop):
    await fill_three_days(shop)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 30))
    day27, _, day29, day30 = report.days
    assert day27.mood_average == pytest.approx((0.5 + 0.1 - 0.4 - 0.3) / 4)
    assert day27.upset == 2  # -0.4, and -0.3 which is at the threshold
    assert (day29.mood_average, day29.upset) == (pytest.approx(-0.9), 1)
    assert (day30.mood_average, day30.upset) == (None, 0)
    assert report.totals.mood_average == pytest.approx((0.5 + 0.1 - 0.4 - 0.3 - 0.9) / 5)
    stricter = await InsightsService(shop.store, timezone=UTC, upset_below=-0.5).report(
        date(2026, 11, 27), date(2026, 11, 30))
    assert stricter.totals.upset == 1


async def test_latency_percentiles_are_nearest_rank(shop):
    await fill_three_days(shop)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 30))
    day27, _, day29, day30 = report.days
    assert (day27.latency_p50_ms, day27.latency_p95_ms) == (200, 400)  # of 100, 200, 300, 400 (numpy: 250, 385)
    assert (day29.latency_p50_ms, day29.latency_p95_ms) == (50, 600)  # of 10, 50, 600
    assert (day30.latency_p50_ms, day30.latency_p95_ms) == (1000, 1000)
    assert (report.totals.latency_p50_ms, report.totals.latency_p95_ms) == (200, 1000)


@pytest.mark.parametrize(("values", "percent", "expected"), [
    ([10, 20, 30, 40, 50], 50, 30),  # rank ceil(2.5) = 3
    ([10, 20, 30, 40, 50], 95, 50),
    (list(range(1, 21)), 95, 19),  # rank 19 of 20: 95% of the values are at or below it
    ([7], 95, 7),
    ([], 50, None),
])
def test_nearest_rank(values, percent, expected):
    assert nearest_rank(values, percent) == expected


async def test_report_json_rounds_rates(shop):
    await shop.turn("a", "q1", "2026-11-27T09:00:00+00:00", kind=ReplyKind.ANSWER)
    await shop.turn("a", "q2", "2026-11-27T09:01:00+00:00", kind=ReplyKind.NO_MATCH)
    await shop.turn("a", "q3", "2026-11-27T09:02:00+00:00", kind=ReplyKind.NOT_SURE)
    report = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 27))
    data = report.to_json()
    assert (data["start"], data["end"], data["timezone"]) == ("2026-11-27", "2026-11-27", "UTC")
    assert data["totals"]["automation_rate"] == 0.3333
    assert data["totals"]["no_match_rate"] == 0.3333
    assert data["days"][0]["not_sure_rate"] == 0.3333 and data["days"][0]["handoff_rate"] == 0.0


async def test_days_are_calendar_days_in_the_shops_timezone(shop):
    await shop.turn("a", "next morning in Shanghai", "2026-11-27T23:30:00+00:00", kind=ReplyKind.ANSWER)
    await shop.turn("a", "last second of the 27th in Shanghai", "2026-11-27T15:59:59+00:00", kind=ReplyKind.ANSWER)
    await shop.turn("a", "first minute of the 29th in Shanghai", "2026-11-28T16:00:00+00:00", kind=ReplyKind.ANSWER)
    service = InsightsService(shop.store, timezone=SHANGHAI)
    one_day = await service.report(date(2026, 11, 28), date(2026, 11, 28))
    assert (one_day.timezone, one_day.totals.turns) == ("Asia/Shanghai", 1)
    three = await service.report(date(2026, 11, 27), date(2026, 11, 29))
    assert [day.turns for day in three.days] == [1, 1, 1]
    in_utc = await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 27), date(2026, 11, 27))
    assert in_utc.totals.turns == 2


async def test_timestamps_stored_with_another_offset_fall_on_their_real_day(shop):
    # 05:00 in Shanghai on the 28th is 21:00 UTC on the 27th; as text it would sort into the 28th.
    await shop.turn("a", "written with +08:00", "2026-11-28T05:00:00+08:00", kind=ReplyKind.ANSWER)
    service = InsightsService(shop.store, timezone=UTC)
    report = await service.report(date(2026, 11, 27), date(2026, 11, 28))
    assert [day.turns for day in report.days] == [1, 0]
    assert (await service.report(date(2026, 11, 28), date(2026, 11, 28))).totals.turns == 0


async def test_a_message_on_a_day_boundary_counts_on_exactly_one_day(shop):
    # SQLite keeps milliseconds: 23:59:59.9996 is midnight, for the filter and the day alike.
    await shop.turn("a", "a hair before midnight", "2026-11-27T23:59:59.9996+00:00", kind=ReplyKind.ANSWER)
    service = InsightsService(shop.store, timezone=UTC)
    both = await service.report(date(2026, 11, 27), date(2026, 11, 28))
    first = await service.report(date(2026, 11, 27), date(2026, 11, 27))
    second = await service.report(date(2026, 11, 28), date(2026, 11, 28))
    assert [day.turns for day in both.days] == [0, 1]
    assert (first.totals.turns, second.totals.turns) == (0, 1)


async def test_a_backwards_period_is_refused(shop):
    with pytest.raises(ValueError, match="before it starts"):
        await InsightsService(shop.store, timezone=UTC).report(date(2026, 11, 28), date(2026, 11, 27))


async def test_a_period_over_366_days_is_refused(shop):
    service = InsightsService(shop.store, timezone=UTC)
    with pytest.raises(ValueError, match="367 days long; at most 366"):
        await service.unanswered(date(2027, 1, 1), date(2028, 1, 2))
    leap_year = await service.report(date(2028, 1, 1), date(2028, 12, 31))
    assert len(leap_year.days) == 366


# -- unanswered questions --------------------------------------------------------

REFUND = ["where is my refund", "I still haven't received my refund", "我的退款在哪里", "退款什么时候到账",
          "Wo bleibt meine Rückerstattung?"]
CANADA = ["do you ship to Canada?", "can you deliver to Canada", "你们发货到加拿大吗", "Liefert ihr nach Kanada?"]
PAYPAL = ["can I pay with PayPal?", "可以用PayPal付款吗", "Kann ich mit PayPal bezahlen?", "Akzeptiert ihr PayPal?"]
OTHERS = ["do you offer gift wrapping?", "where is my package"]


def language_of(text: str) -> str:
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return "zh"
    return "de" if any(word in text for word in ("Wo ", "ihr", "Kann")) else "en"


async def ask_all(shop: Shop, texts: Sequence[str], *, day: str = "2026-11-27", kind: ReplyKind = ReplyKind.NO_MATCH,
                  start_minute: int = 0) -> None:
    for n, text in enumerate(texts):
        minute = start_minute + n
        await shop.turn(f"q{minute}", text, f"{day}T{10 + minute // 60:02d}:{minute % 60:02d}:00+00:00", kind=kind,
                        language=language_of(text))


def groups(clusters: Sequence[QuestionCluster]) -> list[set[str]]:
    return [set(cluster.examples) for cluster in clusters]


async def test_paraphrases_in_three_languages_group_by_meaning(shop, encoder):
    await ask_all(shop, [*REFUND, *CANADA, *PAYPAL, *OTHERS])
    service = InsightsService(shop.store, timezone=UTC, encode=encoder.encode)
    clusters = await service.unanswered(date(2026, 11, 27), date(2026, 11, 27))
    assert sorted(map(sorted, groups(clusters))) == sorted(map(sorted, [REFUND, CANADA, PAYPAL, OTHERS[:1],
                                                                         OTHERS[1:]]))


async def test_the_default_similarity_keeps_paraphrases_that_0_6_would_split(shop, encoder):
    """Why the default is 0.5: with this encoder, cross-language paraphrases are often 0.4-0.6 alike."""
    await ask_all(shop, REFUND)
    at_06 = await InsightsService(shop.store, timezone=UTC, encode=encoder.encode, similarity=0.6).unanswered(
        date(2026, 11, 27), date(2026, 11, 27))
    default = await InsightsService(shop.store, timezone=UTC, encode=encoder.encode).unanswered(
        date(2026, 11, 27), date(2026, 11, 27))
    assert len(at_06) > 1
    assert len(default) == 1


# A labelled set for the grouping: 10 questions a shop's FAQ may lack, in English, German, Chinese and
# Spanish, with pairs that share a frame but ask different things ("how long does shipping / a refund
# take", "how much does shipping / a return cost", "can I cancel my order / change my address").
LABELLED = {
    "shipping_time": ["how long does shipping take", "when will my order arrive?", "wie lange dauert der Versand?",
                      "发货要多久", "¿cuánto tarda el envío?"],
    "refund_time": ["how long does a refund take", "when will I get my money back?",
                    "wie lange dauert eine Rückerstattung?", "退款要多久", "¿cuánto tarda el reembolso?"],
    "shipping_cost": ["how much does shipping cost", "is shipping free?", "Was kostet der Versand?", "运费多少钱"],
    "return_cost": ["how much does a return cost", "do I have to pay for returns?", "Was kostet eine Rücksendung?",
                    "退货要多少钱"],
    "ship_canada": ["do you ship to Canada?", "can you deliver to Canada", "Liefert ihr nach Kanada?",
                    "你们发货到加拿大吗"],
    "paypal": ["can I pay with PayPal?", "do you accept PayPal", "Kann ich mit PayPal bezahlen?", "可以用PayPal付款吗"],
    "gift_wrap": ["do you offer gift wrapping?", "can you wrap it as a gift", "Bietet ihr Geschenkverpackung an?",
                  "可以礼品包装吗"],
    "store_berlin": ["do you have a store in Berlin?", "Habt ihr einen Laden in Berlin?", "你们在柏林有实体店吗"],
    "cancel_order": ["can I cancel my order?", "I want to cancel my order", "Kann ich meine Bestellung stornieren?",
                     "我可以取消订单吗", "¿puedo cancelar mi pedido?"],
    "change_address": ["can I change my delivery address?", "Kann ich meine Lieferadresse ändern?",
                       "我可以修改收货地址吗", "¿puedo cambiar la dirección de entrega?"],
}
FRAME_PAIRS = [("how long does shipping take", "how long does a refund take"),
               ("wie lange dauert der Versand?", "wie lange dauert eine Rückerstattung?"), ("发货要多久", "退款要多久")]


def pairwise_scores(clusters: Sequence[QuestionCluster], intents: dict[str, list[str]]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of the groups against the labelled intents."""
    intent = {text: name for name, texts in intents.items() for text in texts}
    group = {text: n for n, cluster in enumerate(clusters) for text in cluster.examples}
    assert set(group) == set(intent), "every question is in exactly one group (and at most 5 per group)"
    texts = sorted(intent)
    pairs = [(a, b) for i, a in enumerate(texts) for b in texts[i + 1:]]
    same_group = {(a, b) for a, b in pairs if group[a] == group[b]}
    same_intent = {(a, b) for a, b in pairs if intent[a] == intent[b]}
    precision = len(same_group & same_intent) / len(same_group) if same_group else 1.0
    recall = len(same_group & same_intent) / len(same_intent)
    return precision, recall, 2 * precision * recall / (precision + recall)


async def test_questions_sharing_a_frame_stay_apart_while_paraphrases_group_across_languages(shop, encoder):
    texts = [text for texts in LABELLED.values() for text in texts]
    await ask_all(shop, texts)
    service = InsightsService(shop.store, timezone=UTC, encode=encoder.encode)
    clusters = await service.unanswered(date(2026, 11, 27), date(2026, 11, 27))
    group = {text: n for n, cluster in enumerate(clusters) for text in cluster.examples}
    for shipping, refund in FRAME_PAIRS:
        assert group[shipping] != group[refund], (shipping, refund)
    assert len({group[text] for text in LABELLED["refund_time"][::2]}) == 1  # en, de, es: one group
    precision, recall, f1 = pairwise_scores(clusters, LABELLED)
    print(f"pairwise precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}")
    # Measured: 0.899 / 0.899 / 0.899; average linkage alone (as before) gave 0.716 / 0.841 / 0.773.
    assert precision >= 0.85 and recall >= 0.8


async def test_not_sure_questions_the_search_read_as_different_entries_never_group(shop, encoder):
    """A lone frame-sharing pair is 0.64 alike; the FAQ entries the bot tried tell them apart."""
    for n, (text, tried) in enumerate([("how long does shipping take", ["shipping-times", "delivery-areas"]),
                                       ("how long does a refund take", ["refunds", "returns"]),
                                       ("wie lange dauert eine Rückerstattung?", ["returns", "payment"])]):
        await shop.turn(f"t{n}", text, f"2026-11-27T10:0{n}:00+00:00", kind=ReplyKind.NOT_SURE, tried=tried)
    service = InsightsService(shop.store, timezone=UTC, encode=encoder.encode)
    clusters = await service.unanswered(date(2026, 11, 27), date(2026, 11, 27))
    assert sorted(map(sorted, groups(clusters))) == [
        ["how long does a refund take", "wie lange dauert eine Rückerstattung?"], ["how long does shipping take"]]


async def test_a_cluster_describes_its_questions(shop, encoder):
    await shop.turn("a", "where is my refund", "2026-11-27T09:00:00+00:00", kind=ReplyKind.NO_MATCH)
    await shop.turn("b", "  Where is  my REFUND ", "2026-11-27T12:00:00+00:00", kind=ReplyKind.NOT_SURE)
    await shop.turn("a", "where is my refund", "2026-11-28T09:00:00+00:00", kind=ReplyKind.NO_MATCH)
    await shop.turn("c", "我的退款在哪里", "2026-11-28T10:00:00+00:00", kind=ReplyKind.HANDOFF, reason="unconfident",
                    language="zh")
    await shop.turn("d", "do you ship to Canada?", "2026-11-28T11:00:00+00:00", kind=ReplyKind.NO_MATCH)
    service = InsightsService(shop.store, timezone=SHANGHAI, encode=encoder.encode)
    refund, canada = await service.unanswered(date(2026, 11, 27), date(2026, 11, 28))
    assert (refund.count, refund.conversations) == (4, 3)
    assert refund.representative == "where is my refund"  # asked 3 times: the medoid
    assert refund.examples == ("我的退款在哪里", "where is my refund")  # distinct, most recent first
    assert refund.languages == {"en": 3, "zh": 1}
    assert refund.kinds == {"no_match": 2, "not_sure": 1, "handoff": 1}
    assert (refund.first_seen, refund.last_seen) == ("2026-11-27T17:00:00+08:00", "2026-11-28T18:00:00+08:00")
    assert (canada.count, canada.representative) == (1, "do you ship to Canada?")


async def test_only_unanswered_questions_count_and_asking_for_a_person_is_not_one(shop, encoder):
    await shop.turn("a", "where is my refund", "2026-11-27T09:00:00+00:00", kind=ReplyKind.HANDOFF, reason="upset")
    await shop.turn("b", "I want to talk to a human", "2026-11-27T09:00:00+00:00", kind=ReplyKind.HANDOFF,
                    reason="explicit_request")
    await shop.turn("c", "/human", "2026-11-27T09:00:00+00:00", kind=ReplyKind.HANDOFF, reason="command")
    await shop.turn("d", "how much is shipping", "2026-11-27T09:00:00+00:00", kind=ReplyKind.ANSWER)
    await shop.turn("e", "do you ship to Canada?", "2026-11-28T09:00:00+00:00", kind=ReplyKind.NO_MATCH)
    clusters = await InsightsService(shop.store, timezone=UTC, encode=encoder.encode).unanswered(
        date(2026, 11, 27), date(2026, 11, 27))
    assert groups(clusters) == [{"where is my refund"}]


async def test_clusters_are_sorted_by_count_then_recency_and_limited(shop, encoder):
    await ask_all(shop, ["do you offer gift wrapping?"], start_minute=0)
    await ask_all(shop, ["can I pay with PayPal?", "可以用PayPal付款吗"], start_minute=1)
    await ask_all(shop, ["do you ship to Canada?"], start_minute=3)
    service = InsightsService(shop.store, timezone=UTC, encode=encoder.encode)
    clusters = await service.unanswered(date(2026, 11, 27), date(2026, 11, 27))
    assert [cluster.count for cluster in clusters] == [2, 1, 1]
    assert clusters[1].representative == "do you ship to Canada?"  # the more recent single
    limited = await service.unanswered(date(2026, 11, 27), date(2026, 11, 27), limit=1)
    assert len(limited) == 1 and limited.clusters_total == 3


async def test_only_the_most_recent_max_questions_are_clustered_and_the_result_says_so(shop, encoder):
    await ask_all(shop, ["q one", "q two", "q three", "q four", "q five"])
    service = InsightsService(shop.store, timezone=UTC, encode=encoder.encode, max_questions=3)
    clusters = await service.unanswered(date(2026, 11, 27), date(2026, 11, 27))
    assert {text for cluster in clusters for text in cluster.examples} == {"q three", "q four", "q five"}
    assert (clusters.questions, clusters.questions_in_period, clusters.capped) == (3, 5, True)
    assert "most recent 3 of 5" in clusters.to_json()["note"]
    roomy = await InsightsService(shop.store, timezone=UTC, max_questions=5).unanswered(
        date(2026, 11, 27), date(2026, 11, 27))
    assert (roomy.questions, roomy.capped, roomy.to_json()["note"]) == (5, False, None)


async def test_without_an_encoder_only_identical_text_is_grouped_and_a_warning_says_why(shop, caplog):
    await shop.turn("a", "Where is my refund?", "2026-11-27T09:00:00+00:00", kind=ReplyKind.NO_MATCH)
    await shop.turn("b", "where  is my REFUND?", "2026-11-27T09:01:00+00:00", kind=ReplyKind.NO_MATCH)
    await shop.turn("c", "I still haven't received my refund", "2026-11-27T09:02:00+00:00", kind=ReplyKind.NO_MATCH)
    service = InsightsService(shop.store, timezone=UTC)
    with caplog.at_level(logging.WARNING, logger="bot.insights"):
        clusters = await service.unanswered(date(2026, 11, 27), date(2026, 11, 27))
        await service.unanswered(date(2026, 11, 27), date(2026, 11, 27))
    assert [(cluster.count, cluster.representative) for cluster in clusters] == [
        (2, "where is my REFUND?"), (1, "I still haven't received my refund")]
    warnings = [record for record in caplog.records if record.name == "bot.insights"]
    assert len(warnings) == 1 and "identical text only" in warnings[0].getMessage()


# -- CSV ---------------------------------------------------------------------------


def cluster(representative: str, examples: tuple[str, ...] = ("x",), **changes) -> QuestionCluster:
    fields = dict(representative=representative, count=4, conversations=3, languages={"en": 3, "zh": 1},
                  examples=examples, first_seen="2026-11-27T09:00:00+00:00", last_seen="2026-11-28T10:00:00+00:00",
                  kinds={"no_match": 2, "not_sure": 1, "handoff": 1})
    fields.update(changes)
    return QuestionCluster(**fields)


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_has_a_header_and_one_row_per_cluster():
    rows = rows_of(clusters_csv([cluster("where is my refund", ("where is my refund", "我的退款在哪里")),
                                 cluster("do you ship to Canada?", count=1)]))
    assert rows[0] == list(CSV_HEADER) == ["rank", "count", "conversations", "representative", "languages",
                                           "examples", "first_seen", "last_seen", "no_match", "not_sure", "handoff"]
    assert rows[1] == ["1", "4", "3", "where is my refund", "en:3 zh:1", "where is my refund | 我的退款在哪里",
                       "2026-11-27T09:00:00+00:00", "2026-11-28T10:00:00+00:00", "2", "1", "1"]
    assert rows[2][:4] == ["2", "1", "3", "do you ship to Canada?"]
    assert len(rows) == 3


@pytest.mark.parametrize("hostile", ["=HYPERLINK(\"http://evil\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_csv_cells_cannot_start_a_formula(hostile):
    row = rows_of(clusters_csv([cluster(hostile, (hostile, "fine"), languages={hostile: 1})]))[1]
    assert row[3] == "'" + hostile
    assert row[4] == "'" + hostile + ":1"
    assert row[5] == "'" + hostile + " | fine"


def test_csv_leaves_ordinary_text_alone():
    row = rows_of(clusters_csv([cluster("how much? = 5 euros", ("a - b", "c"))]))[1]
    assert (row[3], row[5]) == ("how much? = 5 euros", "a - b | c")
