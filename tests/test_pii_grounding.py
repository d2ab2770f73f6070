"""Personal data masking and the literal grounding check (the LLM responder's safety rails)."""

from __future__ import annotations

import pytest

from bot.grounding import literal_facts, unsupported_facts
from bot.pii import PiiMasker, mask_pii, restore


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("my email is jo.doe+shop@mail.example.com", "EMAIL", "jo.doe+shop@mail.example.com"),
    ("call +49 170 1234567 pls", "PHONE", "+49 170 1234567"),
    ("call me at (555) 123-4567", "PHONE", "(555) 123-4567"),
    ("我的电话13812345678", "PHONE", "13812345678"),
    ("card 4111 1111 1111 1111 please refund", "CARD", "4111 1111 1111 1111"),
    ("ship to 221B Baker Street, London", "ADDRESS", "221B Baker Street"),
    ("Lieferadresse: Hauptstraße 12, Berlin", "ADDRESS", "Hauptstraße 12"),
    ("寄到南京东路100号5楼", "ADDRESS", "寄到南京东路100号5楼"),
])
def test_personal_data_is_masked(text, kind, value):
    masked = mask_pii(text)
    assert value not in masked.text
    assert masked.values == {f"[{kind}_1]": value}


@pytest.mark.parametrize("text", [
    "order 12345 not here", "it costs 4.95 and takes 3-5 days", "on 2024-05-01 I ordered",
    "tracking 1Z999AA10123456784", "size 38 in blue",
])
def test_order_numbers_prices_and_dates_stay(text):
    assert mask_pii(text).text == text


def test_placeholders_are_stable_within_a_turn_and_restored_only_from_the_shoppers_message():
    masker = PiiMasker()
    shopper = masker.mask("mail me at a@x.example or b@y.example")
    history = masker.mask("earlier: a@x.example and c@z.example")
    assert shopper.text == "mail me at [EMAIL_1] or [EMAIL_2]"
    assert history.text == "earlier: [EMAIL_1] and [EMAIL_3]"
    reply = "We'll write to [EMAIL_1]; [EMAIL_3] stays private."
    assert restore(reply, shopper.values) == "We'll write to a@x.example; [EMAIL_3] stays private."


CONTEXT = ["Standard delivery takes 3-5 business days. Orders over €50 ship free; otherwise shipping costs €4.95. "
           "Returns within 30 days, members get 10% off. See https://lanternlane.example/returns or mail "
           "help@lanternlane.example, phone +49 30 1234567."]


@pytest.mark.parametrize("draft", [
    "Shipping takes 3 to 5 business days and costs €4.95.",
    "Orders above 50 euros ship for free!",
    "It costs 4,95 €.",
    "Details: https://lanternlane.example/returns.",
    "Write to HELP@lanternlane.example or call +49 30 1234567.",
    "Steps:\n1. Log in\n2. Open your orders",
    "Your order 12345 is on its way.",
    "运费4.95欧元，3-5个工作日送达。",
])
def test_facts_from_the_faq_or_the_shopper_pass(draft):
    assert unsupported_facts(draft, [*CONTEXT, "where is my order 12345?"]) == []


@pytest.mark.parametrize(("draft", "problem"), [
    ("You have 45 days to return it.", "number 45"),
    ("Members get 30% off.", "number 30%"),
    ("See https://evil.example/refunds", "url https://evil.example/refunds"),
    ("Write to sales@lanternlane.example", "email sales@lanternlane.example"),
    ("Call +1 800 555 0199", "phone 18005550199"),
    ("Delivery costs €5.95", "number 5.95"),
])
def test_invented_facts_are_named(draft, problem):
    assert problem in unsupported_facts(draft, CONTEXT)


def test_number_formats_are_normalised():
    assert literal_facts("1,000 items, 4,95 €, 2.0 days").numbers == {"1000", "4.95", "2"}
