"""bot/responder/lead.py: the "Yes —" / "No —" kefu puts before a composed reply, read off the FAQ sentence.

Unit tests on the sample shop's own answers, then a whole turn over kefu's HTTP API with a real
OpenAI-compatible server on 127.0.0.1 (tests/fake_llm.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import ask, stored_meta
from fake_llm import FakeModelServer, shop_with_model

from bot.app import KefuApp
from bot.config import load_config
from bot.responder.compose import answer_units
from bot.responder.lead import Lead, answer_lead, with_lead
from knowledge.service import load_faq

REPO = Path(__file__).resolve().parent.parent

COUNTRIES = ("We ship to all 27 EU countries, the United Kingdom, the United States, mainland China and more than 60 "
             "other countries worldwide. Enter your address at checkout to confirm delivery to your country; if it "
             "isn't listed, we can't ship there yet.")
COUNTRIES_TOPIC = ("Which countries do you ship to?", "do you ship to the us", "do u deliver to china?",
                   "ship to uk after brexit?", "which countries", "can you send to australia")
PAYMENT = ("We accept Visa, Mastercard, American Express, PayPal, Alipay, WeChat Pay and Apple Pay. All prices "
           "are charged in euros (EUR) when you place your order; if your card is in another currency, your bank "
           "converts the amount. We don't offer cash on delivery.")
PAYMENT_TOPIC = ("Which payment methods do you accept?", "can i pay with paypal", "do you take credit cards",
                 "payment options", "cash on delivery?")
RETURNS = ("You can return most items within 30 days of delivery. Pierced earrings, underwear and swimwear with a "
           "removed hygiene seal, items marked \"Final sale\" and gift cards can't be returned.")
RETURNS_TOPIC = ("What is your return policy?", "can i return something", "how many days to return")
COST = ("Standard shipping to the EU and UK costs EUR 4.95 and is free on orders over EUR 50. Express shipping "
        "(EU and UK) costs EUR 12.")
COST_TOPIC = ("How much does shipping cost?", "is shipping free", "free shiping over how much")
ZH_PAYMENT = "我们支持 Visa、Mastercard、PayPal、支付宝、微信支付和 Apple Pay，暂不支持货到付款。所有价格均以欧元计价。"
ZH_PAYMENT_TOPIC = ("支持哪些支付方式？", "可以用支付宝吗", "能微信支付吗？", "怎么付款", "可以货到付款吗")
ZH_COUNTRIES = "我们可配送至全部 27 个欧盟国家、英国、美国、中国大陆以及全球 60 多个其他国家。结账时填写地址即可确认。"
ZH_COUNTRIES_TOPIC = ("你们可以配送到哪些国家？", "能寄到美国吗", "寄到国内吗", "配送范围")


@pytest.fixture(scope="module")
def sample_faq():
    return load_faq(load_config(REPO / "examples" / "sample-shop" / "kefu.toml"))


def lead_for(question: str, answer: str, topic: tuple[str, ...], language: str = "en") -> list[str]:
    """Each sentence of the answer sent alone, with its lead: the replies that got one."""
    replies = []
    for unit in answer_units(answer):
        lead = answer_lead(question, unit.text, answer, language, topic)
        if lead is not None:
            replies.append(with_lead(lead, unit.text, answer))
    return replies


def test_a_sentence_naming_what_was_asked_is_a_yes():
    assert lead_for("do you ship to china?", COUNTRIES, COUNTRIES_TOPIC) == [
        "Yes — we ship to all 27 EU countries, the United Kingdom, the United States, mainland China and more than "
        "60 other countries worldwide."]
    assert lead_for("可以寄到中国吗", ZH_COUNTRIES, ZH_COUNTRIES_TOPIC, "zh") == [
        "可以，我们可配送至全部 27 个欧盟国家、英国、美国、中国大陆以及全球 60 多个其他国家。"]


def test_a_negated_clause_naming_it_is_a_no():
    assert lead_for("do you take cash on delivery?", PAYMENT, PAYMENT_TOPIC) == [
        "No — we don't offer cash on delivery."]
    # "pay" is the entry's subject ("payment methods"): the clause need not say it
    assert lead_for("can I pay cash on delivery?", PAYMENT, PAYMENT_TOPIC) == ["No — we don't offer cash on delivery."]
    assert lead_for("可以货到付款吗", ZH_PAYMENT, ZH_PAYMENT_TOPIC, "zh") == [
        "不可以，我们支持 Visa、Mastercard、PayPal、支付宝、微信支付和 Apple Pay，暂不支持货到付款。"]


def test_an_item_of_a_denied_list_gets_no_yes():
    # The clause naming 支付宝 says yes, but its sentence denies something else: no lead rather than a guess.
    assert lead_for("能用支付宝付款吗", ZH_PAYMENT, ZH_PAYMENT_TOPIC, "zh") == []
    assert lead_for("do you accept underwear returns?", RETURNS, RETURNS_TOPIC) == []


@pytest.mark.parametrize("question, entry, language", [
    # Wrong leads a first version put on bench questions (it read the answer off any sentence's polarity).
    ("包裹是不是丢了？", "order-late", "zh"),
    ("寄到中国要交税吗？", "international-shipping", "zh"),
    ("退货免费吗", "return-shipping-cost", "zh"),
    ("支持无理由退货吗", "returns-policy", "zh"),
    ("do i pay import tax in the uk", "international-shipping", "en"),
    ("can i delete my account now? i still have a return open", "delete-account", "en"),
    ("can i return stuff i bought in the sale?", "returns-policy", "en"),
])
def test_a_question_a_sentences_polarity_does_not_settle_gets_no_lead(question, entry, language, sample_faq):
    variant = sample_faq.by_id[entry].variant(language)
    assert lead_for(question, variant.answer, variant.questions, language) == []


@pytest.mark.parametrize("question", ["can I pay with klarna?", "do you ship to australia?", "能用银联付款吗"])
def test_a_word_the_entry_never_uses_gets_no_lead(question):
    answer, topic, language = ((ZH_PAYMENT, ZH_PAYMENT_TOPIC, "zh") if not question.isascii()
                               else (PAYMENT, PAYMENT_TOPIC, "en") if "pay" in question else
                               (COUNTRIES, COUNTRIES_TOPIC, "en"))
    assert lead_for(question, answer, topic, language) == []


def test_a_condition_or_a_limit_gets_no_lead():
    # "Express shipping (EU and UK) costs EUR 12" names the UK but not "free"; the other sentence has a limit.
    assert lead_for("is shipping to the uk free?", COST, COST_TOPIC) == []
    assert lead_for("do you accept swimwear returns?", "We accept swimwear returns only with the hygiene seal intact.",
                    RETURNS_TOPIC) == []


@pytest.mark.parametrize("question", ["which countries do you ship to?", "can't you ship to china?",
                                      "do you ship to china in 5 days?", "ship to china"])
def test_only_a_plain_yes_no_question_gets_a_lead(question):
    assert lead_for(question, COUNTRIES, COUNTRIES_TOPIC) == []


def test_the_first_word_keeps_its_capital_when_it_is_a_name():
    answer = "PayPal is accepted. Live chat is open daily. Orders from Lantern Lane ship fast. Lantern Lane is small."
    lead = Lead("Yes — ", "yes", "PayPal is accepted", ("paypal",))
    assert with_lead(lead, "PayPal is accepted.", answer) == "Yes — PayPal is accepted."
    assert with_lead(lead, "Live chat is open daily.", answer) == "Yes — live chat is open daily."
    assert with_lead(lead, "Lantern Lane is small.", answer) == "Yes — Lantern Lane is small."


def test_a_reply_opening_with_yes_gets_no_second_one():
    answer = "Yes, we ship to China. Express isn't available there."
    assert lead_for("do you ship to china?", answer, ("Where do you ship?",)) == []


# -- a whole turn --------------------------------------------------------------------------


@pytest.fixture
async def shop(tmp_path: Path, model_server: FakeModelServer) -> AsyncIterator[KefuApp]:
    async with shop_with_model(tmp_path, model_server, style="compose") as running:
        yield running


async def test_a_composed_reply_gets_the_lead_its_sentence_justifies(shop, model_server):
    model_server.script = [(200, "We don't offer cash on delivery.")]
    reply = await ask(shop, "can I pay cash on delivery?")
    assert reply["text"] == "No — we don't offer cash on delivery."
    assert "'No' because the FAQ's 'We don't offer cash on delivery.' settles it" in reply["why"]
    meta = stored_meta(shop, reply)["responder"]
    assert meta["used"] == "llm" and meta["lead"]["answer"] == "no"
    assert meta["lead"]["clause"] == "We don't offer cash on delivery."


async def test_a_composed_reply_the_sentence_does_not_settle_gets_none(shop, model_server):
    model_server.script = [
        (200, "We accept Visa, Mastercard, American Express, PayPal, Alipay, WeChat Pay and Apple Pay.")]
    reply = await ask(shop, "can I pay with klarna?")
    assert reply["text"].startswith("We accept Visa") and "lead" not in stored_meta(shop, reply)["responder"]
