"""bot/responder/compose.py: replies composed from the FAQ's own sentences, chosen by a model.

Unit tests of the pieces, then the whole turn over kefu's HTTP API with a real
OpenAI-compatible server on 127.0.0.1 (tests/fake_llm.py) answering with choices.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import ask, stored_meta
from fake_llm import FakeModelServer, serving, shop_with_model

from bot.app import KefuApp
from bot.responder.compose import (INSTRUCTIONS, answer_units, checked_lead, choice_messages, compose,
                                   parse_choice)

PAYMENT = ("We accept Visa, Mastercard, American Express, PayPal, Alipay, WeChat Pay and Apple Pay. All prices "
           "are charged in euros (EUR) when you place your order; if your card is in another currency, your bank "
           "converts the amount. We don't offer cash on delivery.")


# -- units ----------------------------------------------------------------------------


def test_prose_is_split_into_sentences():
    units = answer_units(PAYMENT)
    assert [u.text for u in units] == [
        "We accept Visa, Mastercard, American Express, PayPal, Alipay, WeChat Pay and Apple Pay.",
        "All prices are charged in euros (EUR) when you place your order; if your card is in another currency, "
        "your bank converts the amount.",
        "We don't offer cash on delivery.",
    ]
    assert not any(u.block or u.leans_back for u in units)


def test_a_table_and_a_numbered_list_are_one_unit_each():
    answer = ("Our sizes:\n\n| EU | UK |\n|---|---|\n| 37 | 4 |\n| 38 | 5 |\n\nTo exchange:\n"
              "1. Open My orders.\n2. Choose Exchange.\nWe pay the return label.")
    units = answer_units(answer)
    assert [u.text for u in units] == ["Our sizes:", "| EU | UK |\n|---|---|\n| 37 | 4 |\n| 38 | 5 |",
                                       "To exchange:", "1. Open My orders.\n2. Choose Exchange.",
                                       "We pay the return label."]
    assert [u.block for u in units] == [False, True, False, True, False]


def test_chinese_sentences_and_the_ones_that_lean_back():
    units = answer_units("标准配送需 3-5 个工作日。否则需要 7-14 个工作日。我们不提供货到付款。")
    assert [u.text for u in units] == ["标准配送需 3-5 个工作日。", "否则需要 7-14 个工作日。", "我们不提供货到付款。"]
    assert [u.leans_back for u in units] == [False, True, False]


# -- the model's line -------------------------------------------------------------------


@pytest.mark.parametrize(("line", "lead", "chosen"), [
    ("YES: 2", "YES", (1,)),
    ("no: 3", "NO", (2,)),
    ("NONE: 1, 2", "NONE", (0, 1)),
    ("SORRY - 3 and 1", "SORRY", (0, 2)),
    ("Answer line: YES: 1、3", "YES", (0, 2)),
    ("NONE: 2, 9", "NONE", (1,)),  # a number past the end is ignored
])
def test_choice_lines_are_read(line, lead, chosen):
    choice = parse_choice(line, answer_units(PAYMENT))
    assert choice is not None and (choice.lead, choice.units) == (lead, chosen)


@pytest.mark.parametrize("line", ["We accept Visa and PayPal.", "YES", "NONE: 7", "", "maybe: 1"])
def test_an_unreadable_choice_is_none(line):
    assert parse_choice(line, answer_units(PAYMENT)) is None


def test_a_chosen_sentence_brings_the_one_it_leans_on():
    units = answer_units("EU orders arrive in 3-5 days. Otherwise allow 7-14 days. Tracking is emailed.")
    choice = parse_choice("NONE: 2", units)
    assert choice is not None and choice.units == (0, 1)


# -- the lead ----------------------------------------------------------------------------


@pytest.mark.parametrize(("lead", "chosen", "kept", "why"), [
    ("NO", (2,), "NO", None),  # "We don't offer cash on delivery."
    ("SORRY", (2,), "SORRY", None),
    ("YES", (0,), "YES", None),
    ("YES", (2,), "NONE", "a chosen sentence says no"),
    ("NO", (0,), "NONE", "no chosen sentence says no"),
    ("NONE", (0, 2), "NONE", None),
])
def test_the_lead_must_agree_with_the_chosen_sentences(lead, chosen, kept, why):
    assert checked_lead(lead, answer_units(PAYMENT), chosen) == (kept, why)


def test_composed_replies_in_english_and_chinese():
    units = answer_units(PAYMENT)
    assert compose("NO", units, (2,), "en") == "No. We don't offer cash on delivery."
    assert compose("NONE", units, (0, 2), "en") == (
        "We accept Visa, Mastercard, American Express, PayPal, Alipay, WeChat Pay and Apple Pay. "
        "We don't offer cash on delivery.")
    chinese = answer_units("我们接受 Visa 和支付宝。我们不提供货到付款。")
    assert compose("NO", chinese, (1,), "zh") == "很抱歉，我们不提供货到付款。"
    assert compose("YES", chinese, (0,), "zh") == "是的，我们接受 Visa 和支付宝。"
    assert compose("YES", units, (0,), "ko") == units[0].text  # no words for the lead: the sentence alone


def test_the_instructions_come_first_and_never_change():
    first = choice_messages("do you take klarna?", answer_units(PAYMENT))
    second = choice_messages("我的退款呢", answer_units("退款会在 5-10 个工作日内到账。"))
    assert first[0].content == second[0].content == INSTRUCTIONS
    assert "1. We accept Visa" in first[1].content and "3. We don't offer cash on delivery." in first[1].content
    assert "<shopper_message>\ndo you take klarna?\n</shopper_message>" in first[1].content


# -- a whole turn --------------------------------------------------------------------------


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    async with serving(FakeModelServer()) as server:
        yield server


@pytest.fixture
async def shop(tmp_path: Path, model_server: FakeModelServer) -> AsyncIterator[KefuApp]:
    async with shop_with_model(tmp_path, model_server, style="compose") as running:
        yield running


async def test_the_chosen_sentences_are_sent_verbatim_after_the_lead(shop, model_server):
    model_server.script = [(200, "NO: 3")]
    reply = await ask(shop, "can I pay cash on delivery? mail me at jo@example.com")
    assert reply["text"] == "No. We don't offer cash on delivery."
    assert reply["kind"] == "answer" and reply["faq_ids"] == ["payment-methods"]
    assert "sentence(s) 3 of 3 chosen by the openai model" in reply["why"]
    meta = stored_meta(shop, reply)["responder"]
    assert meta["used"] == "llm" and meta["lead"] == "NO" and meta["sentences"] == [3]
    sent = model_server.requests[0]["body"]
    assert sent["max_tokens"] <= 16 and sent["messages"][0]["content"] == INSTRUCTIONS
    assert "jo@example.com" not in json.dumps(sent) and "[EMAIL_1]" in sent["messages"][1]["content"]


async def test_a_lead_the_sentences_do_not_support_is_dropped(shop, model_server):
    model_server.script = [(200, "YES: 3")]
    reply = await ask(shop, "can I pay cash on delivery?")
    assert reply["text"] == "We don't offer cash on delivery."
    assert stored_meta(shop, reply)["responder"]["lead_dropped"] == "YES: a chosen sentence says no"


async def test_an_unreadable_choice_falls_back_to_the_whole_answer(shop, model_server):
    model_server.script = [(200, "Sure! We accept cash on delivery in Iceland.")]
    reply = await ask(shop, "can I pay cash on delivery?")
    assert reply["text"].startswith("We accept Visa, Mastercard") and reply["text"].endswith(
        "We don't offer cash on delivery.")
    meta = stored_meta(shop, reply)["responder"]
    assert meta["used"] == "extractive" and meta["fallback"] == "the model's choice could not be read"
    assert "Iceland" not in reply["text"]


async def test_a_chinese_shopper_gets_the_chinese_sentences(shop, model_server):
    model_server.script = [(200, "SORRY: 1")]
    reply = await ask(shop, "可以货到付款吗？")
    assert reply["text"] == "很抱歉，我们支持 Visa、Mastercard、American Express、PayPal、支付宝、微信支付和 Apple Pay，暂不支持货到付款。"
    assert "我们支持 Visa" in model_server.requests[0]["body"]["messages"][1]["content"]
