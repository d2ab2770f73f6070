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
from fake_llm import FakeModelServer, shop_with_model

from bot.app import KefuApp
from bot.responder.compose import INSTRUCTIONS, answer_units, choice_messages, choose, compose
from bot.responder.grounding import terms_of

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


def test_a_bare_yes_stays_with_the_sentence_that_says_when():
    units = answer_units("Yes. Within the EU and UK you can exchange for free. Elsewhere, return and reorder.")
    assert [u.text for u in units] == ["Yes. Within the EU and UK you can exchange for free.",
                                       "Elsewhere, return and reorder."]


@pytest.mark.parametrize("apology", ["Sorry about that!", "We're so sorry to hear that."])
def test_a_bare_apology_stays_with_the_sentence_that_says_what_to_do(apology):
    """Sent alone, "Sorry about that!" was the whole reply to "I received the wrong size" (bench/llm.py --set other)."""
    units = answer_units(f"{apology} Contact us within 14 days with your order number. We'll send a free label.")
    assert [u.text for u in units] == [f"{apology} Contact us within 14 days with your order number.",
                                       "We'll send a free label."]


def test_chinese_pieces_kept_together_are_sent_as_written_without_a_space():
    answer = "非常抱歉！请在签收后 14 天内联系我们，提供订单号。我们会为您提供免费的退货标签。"
    units = answer_units(answer)
    assert [u.text for u in units] == ["非常抱歉！请在签收后 14 天内联系我们，提供订单号。", "我们会为您提供免费的退货标签。"]
    assert answer_units("可以。欧盟和英国地区可免费换货。其他国家请先退货。")[0].text == "可以。欧盟和英国地区可免费换货。"


def test_an_apology_with_a_claim_and_a_thanks_stand_alone():
    assert len(answer_units("Sorry, pierced earrings can't be returned. Everything else can.")) == 2
    assert [u.text for u in answer_units("You're welcome! Thanks for shopping with us.")] == [
        "You're welcome!", "Thanks for shopping with us."]


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


# -- from the model's copy to the FAQ's sentences ----------------------------------------------


def english(text: str) -> set[str]:
    return terms_of(text, "en")


@pytest.mark.parametrize(("copy", "question", "chosen"), [
    ("We don't offer cash on delivery.", "cash on delivery possible?", (2,)),
    ("3. We don't offer cash on delivery", "cash on delivery possible?", (2,)),  # its number copied too
    ("We accept Visa, Mastercard and Apple Pay.", "do you take apple pay", (0,)),  # shortened: still the first
])
def test_a_copy_is_mapped_to_the_sentence_it_comes_from(copy, question, chosen):
    choice = choose(copy, question, answer_units(PAYMENT), english)
    assert choice is not None and choice.units == chosen and choice.added == ()


@pytest.mark.parametrize(("pointer", "chosen"), [("3", (2,)), ("2.", (1,)), ("Sentence 1", (0,)), ("第3句", (2,)),
                                                ("3。", (2,))])
def test_a_sentence_named_by_its_number_is_chosen(pointer, chosen):
    choice = choose(pointer, "cash on delivery possible?", answer_units(PAYMENT), english)
    assert choice is not None and choice.copied == chosen[0] and chosen[0] in choice.units


@pytest.mark.parametrize("copy", ["We accept Klarna as a payment method.", "can i pay with klarna?", "", "Yes!",
                                  "4", "0", "3 or 4"])
def test_the_models_own_words_are_no_choice(copy):
    assert choose(copy, "can i pay with klarna?", answer_units(PAYMENT), english) is None


def test_the_entrys_own_topic_words_bring_in_nothing():
    copy = "We don't offer cash on delivery."
    assert choose(copy, "can i pay cash?", answer_units(PAYMENT), english).units == (0, 2)  # "Apple Pay"
    topic = ["Which payment methods do you accept?", "can i pay with paypal"]
    assert choose(copy, "can i pay cash?", answer_units(PAYMENT), english, topic).units == (2,)


def test_a_sentence_naming_the_shoppers_word_is_sent_too():
    returns = answer_units("You can return items within 30 days of delivery, as long as they're unworn. Pierced "
                           "earrings, underwear and gift cards can't be returned. Returns are free within the EU.")
    choice = choose("You can return items within 30 days of delivery.", "can i return earrings?", returns, english)
    assert choice is not None and choice.units == (0, 1) and choice.copied == 0 and choice.added == (1,)


def test_the_sentence_closest_in_meaning_is_sent_with_the_copied_one():
    copy = "We accept Visa, Mastercard and Apple Pay."
    choice = choose(copy, "cash?", answer_units(PAYMENT), english, closest=2)
    assert choice is not None and choice.units == (0, 2) and choice.copied == 0 and choice.added == (2,)


def test_a_sentence_saying_also_leans_back():
    units = answer_units("Use the tracking link in your shipping email. You can also find it under My orders.")
    assert [u.leans_back for u in units] == [False, True]


def test_a_chosen_sentence_brings_the_one_it_leans_on():
    units = answer_units("EU orders arrive in 3-5 days. Otherwise allow 7-14 days. Tracking is emailed.")
    choice = choose("Otherwise allow 7-14 days.", "how long", units, english)
    assert choice is not None and choice.units == (0, 1)


def test_chinese_copies_are_mapped_by_their_character_pairs():
    units = answer_units("我们支持 Visa 和支付宝。我们不提供货到付款。")
    choice = choose("我们不提供货到付款", "可以货到付款吗", units, lambda text: terms_of(text, "zh"))
    assert choice is not None and choice.units == (1,)


def test_composed_replies_keep_the_faqs_order_and_layout():
    units = answer_units(PAYMENT)
    assert compose(units, (0, 2), "en") == (
        "We accept Visa, Mastercard, American Express, PayPal, Alipay, WeChat Pay and Apple Pay. "
        "We don't offer cash on delivery.")
    chinese = answer_units("我们支持 Visa 和支付宝。我们不提供货到付款。")
    assert compose(chinese, (0, 1), "zh") == "我们支持 Visa 和支付宝。我们不提供货到付款。"
    listed = answer_units("To exchange:\n1. Open My orders.\n2. Choose Exchange.\nWe pay the label.")
    assert compose(listed, (0, 1, 2), "en") == "To exchange:\n1. Open My orders.\n2. Choose Exchange.\nWe pay the label."


def test_the_instructions_and_the_answer_come_before_the_message():
    first = choice_messages("do you take klarna?", answer_units(PAYMENT))
    second = choice_messages("cash?", answer_units(PAYMENT))
    assert first[0].content == second[0].content == INSTRUCTIONS
    prefix = first[1].content.split("<shopper_message>")[0]
    assert prefix == second[1].content.split("<shopper_message>")[0]  # the KV cache's shared prefix
    assert "1. We accept Visa" in prefix and "3. We don't offer cash on delivery." in prefix
    assert "<shopper_message>\ndo you take klarna?\n</shopper_message>" in first[1].content


# -- a whole turn --------------------------------------------------------------------------


@pytest.fixture
async def shop(tmp_path: Path, model_server: FakeModelServer) -> AsyncIterator[KefuApp]:
    async with shop_with_model(tmp_path, model_server, style="compose") as running:
        yield running


async def test_the_faqs_sentence_is_sent_for_the_models_copy(shop, model_server):
    model_server.script = [(200, "We do not offer cash on delivery!")]  # a copy, slightly off
    reply = await ask(shop, "can I pay cash on delivery? mail me at jo@example.com")
    assert reply["text"] == "We don't offer cash on delivery."
    assert reply["kind"] == "answer" and reply["faq_ids"] == ["payment-methods"]
    assert "sentence(s) 3 of 3 sent as the FAQ writes them, picked by the openai model" in reply["why"]
    meta = stored_meta(shop, reply)["responder"]
    assert meta["used"] == "llm" and meta["sentences"] == [3] and meta["copy"] == "We do not offer cash on delivery!"
    sent = model_server.requests[0]["body"]
    assert sent["max_tokens"] <= 96 and sent["messages"][0]["content"] == INSTRUCTIONS
    assert "jo@example.com" not in json.dumps(sent) and "[EMAIL_1]" in sent["messages"][1]["content"]


async def test_a_copy_of_the_models_own_falls_back_to_the_whole_answer(shop, model_server):
    model_server.script = [(200, "Sure! We accept Klarna in Iceland.")]
    reply = await ask(shop, "can I pay with klarna?")
    assert reply["text"].startswith("We accept Visa, Mastercard") and reply["text"].endswith(
        "We don't offer cash on delivery.")
    meta = stored_meta(shop, reply)["responder"]
    assert meta["used"] == "extractive" and meta["fallback"] == "the model's copy matches no sentence of the answer"
    assert "Klarna" not in reply["text"]


async def test_a_chinese_shopper_gets_the_chinese_sentence(shop, model_server):
    model_server.script = [(200, "所有价格均以欧元计价并在下单时扣款")]
    reply = await ask(shop, "用什么货币付款？")
    assert reply["text"].endswith("所有价格均以欧元（EUR）计价并在下单时扣款；如果您的卡是其他币种，将由发卡银行进行货币换算。")
    assert stored_meta(shop, reply)["responder"]["copied"] == 2
    assert "我们支持 Visa" in model_server.requests[0]["body"]["messages"][1]["content"]


async def test_a_model_repeating_the_message_is_asked_for_the_sentences_number(shop, model_server):
    model_server.script = [(200, "用什么货币付款？"), (200, "2")]  # the shopper's message echoed, then a number
    reply = await ask(shop, "用什么货币付款？")
    assert reply["text"].endswith("所有价格均以欧元（EUR）计价并在下单时扣款；如果您的卡是其他币种，将由发卡银行进行货币换算。")
    meta = stored_meta(shop, reply)["responder"]
    assert meta["used"] == "llm" and meta["copied"] == 2 and meta["pointer"] == "2" and meta["copy"] == "用什么货币付款？"
    asked_again = model_server.requests[1]["body"]
    assert asked_again["messages"][:2] == model_server.requests[0]["body"]["messages"]  # the same chat, cached
    assert asked_again["messages"][2] == {"role": "assistant", "content": "用什么货币付款？"}
    assert asked_again["messages"][3]["content"].startswith("That is not one of the numbered sentences")
    assert asked_again["max_tokens"] <= 8


async def test_a_second_reply_that_names_no_sentence_falls_back(shop, model_server):
    model_server.script = [(200, "Sure! We accept Klarna."), (200, "Klarna is fine.")]
    reply = await ask(shop, "can I pay with klarna?")
    meta = stored_meta(shop, reply)["responder"]
    assert meta["used"] == "extractive" and meta["fallback"] == "the model's copy matches no sentence of the answer"
    assert len(model_server.requests) == 2 and "Klarna" not in reply["text"]


def test_the_closest_sentence_reuses_the_messages_own_vector():
    import numpy as np

    from bot.responder.grounding import SemanticGrounder

    asked: list[list[str]] = []
    table = {"cash": [1.0, 0.0], "We accept cards.": [0.0, 1.0], "No cash on delivery.": [0.9, 0.1]}

    def encode(texts):  # noqa: ANN001, ANN202
        asked.append(list(texts))
        return np.array([table[t] for t in texts])

    grounder = SemanticGrounder(encode, 0.6, "use-test")
    candidates = ["We accept cards.", "No cash on delivery."]
    assert grounder.closest("cash", candidates, np.array([1.0, 0.0])) == 1
    assert asked == [candidates]  # the message itself was not encoded again
    assert grounder.closest("cash", candidates) == 1 and asked[-1] == ["cash", *candidates]
