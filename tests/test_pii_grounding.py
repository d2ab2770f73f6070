"""Personal data masking and the literal grounding check (the LLM responder's safety rails)."""

from __future__ import annotations

import re

import pytest

from bot.responder.grounding import (
    SemanticGrounder,
    drop_borrowed_premises,
    dropped_condition,
    dropped_limit,
    dropped_restriction,
    echoed_terms,
    invented_words,
    literal_facts,
    sentences,
    status_claims,
    unknown_words,
    unlinked_means,
    unlinked_purpose,
    unsupported_facts,
)
from bot.responder.pii import PiiMasker, mask_pii, restore


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("my email is jo.doe+shop@mail.example.com", "EMAIL", "jo.doe+shop@mail.example.com"),
    ("我的邮箱是wang.li@mail.example.cn谢谢", "EMAIL", "wang.li@mail.example.cn"),  # Chinese glued to both ends
    ("メールはtaro@example.jpです", "EMAIL", "taro@example.jp"),
    ("schreib an jürgen.müller@beispiel.de", "EMAIL", "jürgen.müller@beispiel.de"),  # accented letters belong to it
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
           "help@lanternlane.example, phone +49 30 1234567. Use WELCOME10, e.g. order LL-123456."]


@pytest.mark.parametrize("draft", [
    "Shipping takes 3 to 5 business days and costs €4.95.",
    "Orders above 50 euros ship for free!",
    "It costs 4,95 €.",
    "Details: https://lanternlane.example/returns.",
    "Write to HELP@lanternlane.example or call +49 30 1234567.",
    "Steps:\n1. Log in\n2. Open your orders",
    "Your order 12345 is on its way.",
    "运费4.95欧元，3-5个工作日送达。",
    "Type welcome10 at checkout; 如订单号LL-123456。",
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
    ("Use WELCOME15 at checkout.", "code WELCOME15"),
    ("运费9.95欧元。", "number 9.95"),  # a number right after a Chinese character
    # the shopper's 12345 written in the FAQ's format claims their order number is LL-12345
    ("Enter your order number (LL-12345) on the status page.", "code LL-12345"),
])
def test_invented_facts_are_named(draft, problem):
    assert problem in unsupported_facts(draft, CONTEXT)


def test_an_faq_address_glued_to_chinese_text_is_the_faq_address():
    """A verbatim Chinese answer ("…发邮件至help@…") was refused as naming an invented email."""
    context = "保修期内的质量问题请发邮件至help@lanternlane.example说明订单号。"
    assert literal_facts(context).emails == {"help@lanternlane.example"}
    assert unsupported_facts("请发邮件至help@lanternlane.example说明订单号。", [context]) == []


@pytest.mark.parametrize(("draft", "problem"), [
    ("Use a leather conditioner every 2-3 weeks.", "duration 2 week"),  # the FAQ's numbers, another unit
    ("Refunds are issued within 5-7 months.", "duration 5 month"),
    ("Use a leather conditioner every 2-3 months.", None),
    ("Refunds take up to 7 business days.", None),  # one end of the FAQ's range
    ("每 2-3 个月使用一次皮革护理剂。", None),  # a translation keeps its durations
    ("每 2-3 周使用一次皮革护理剂。", "duration 2 week"),
    ("払い戻しは5〜7営業日以内です。", None),  # Japanese units too
    ("払い戻しは5〜7か月以内です。", "duration 5 month"),
    ("Die Erstattung dauert 5-7 Werktage.", None),  # units kefu does not read: nothing to compare
])
def test_a_time_in_another_unit_than_the_faqs_is_named(draft, problem):
    faq = ["Use a leather conditioner every 2-3 months. Gift cards are valid for 3 years. "
           "Refunds are issued within 5-7 business days."]
    found = unsupported_facts(draft, faq)
    assert (found == []) if problem is None else (problem in found), found


def test_number_formats_are_normalised():
    assert literal_facts("1,000 items, 4,95 €, 2.0 days").numbers == {"1000", "4.95", "2"}


# -- sentences, borrowed words and premises ------------------------------------------------

def test_sentences_keep_abbreviations_decimals_and_list_items_whole():
    text = "Ask Mr. Smith, e.g. by mail. It costs EUR 4.95.\n1. Log in\n2. Open orders. 我们支持退款。请在30天内申请！"
    assert sentences(text) == ["Ask Mr. Smith, e.g. by mail.", "It costs EUR 4.95.", "1. Log in", "2. Open orders.",
                               "我们支持退款。", "请在30天内申请！"]


ACCOUNT = ['How do I create an account?\nClick "Sign in" at the top of the page and choose "Create account".']


def test_words_only_the_shopper_used_are_found_and_request_words_are_not():
    unknown = unknown_words("can you help me create a premium account for my daughter?", ACCOUNT, "en")
    assert sorted(unknown.values()) == ["daughter", "premium"]
    assert unknown_words("I need help, how do I create an account", ACCOUNT, "en") == {}


@pytest.mark.parametrize(("draft", "echoed"), [
    ('To create a premium account, click "Sign in".', ["premium"]),
    ('Premium accounts are created under "Sign in".', ["premium"]),  # as the shopper wrote it
    ('Click "Sign in" and choose "Create account".', []),
])
def test_a_draft_repeating_the_shoppers_premise_is_caught(draft, echoed):
    unknown = unknown_words("how do I create a premium account?", ACCOUNT, "en")
    assert echoed_terms(draft, unknown, "en") == echoed


def test_chinese_borrowed_words_are_caught_through_character_pairs():
    faq = ['如何注册账户？\n点击页面顶部的"登录"，然后选择"创建账户"。']
    assert "白金" in echoed_terms('要创建白金账户，请点击"登录"。', unknown_words("怎么注册白金账户", faq, "zh"), "zh")


def test_a_leading_clause_with_the_shoppers_premise_is_dropped_and_the_instruction_kept():
    draft = 'To create a premium account for your daughter, click "Sign in" at the top. Thanks!'
    unknown = unknown_words("create a premium account for my daughter?", ACCOUNT, "en")
    kept, dropped = drop_borrowed_premises(draft, unknown, "en")
    assert kept == 'Click "Sign in" at the top. Thanks!'
    assert dropped == ["To create a premium account for your daughter"]
    # A premise outside a leading clause cannot be cut away: the draft stays as it is (and is refused).
    inside = 'You can create a premium account by clicking "Sign in".'
    assert drop_borrowed_premises(inside, unknown_words("premium account?", ACCOUNT, "en"), "en") == (inside, [])
    plain = 'To create an account, click "Sign in".'
    assert drop_borrowed_premises(plain, unknown_words("how do I create an account", ACCOUNT, "en"), "en") == (
        plain, [])


def test_a_draft_quoting_half_of_a_context_sentence_is_compared_with_that_half():
    import numpy as np

    def encode(texts):  # bag of words: enough to tell which context clause a claim quotes
        vocabulary = sorted({w for t in texts for w in t.lower().split()})
        vectors = np.array([[t.lower().split().count(w) for w in vocabulary] for t in texts], dtype=float)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    faq = ["A failed payment isn't charged; if you see a pending amount your bank releases it within days."]
    grounder = SemanticGrounder(encode, 0.6)
    [claim] = grounder.check("If you see a pending amount your bank releases it within days.", faq)
    assert claim.ok, claim
    [claim] = grounder.check("A failed payment is charged.", faq)
    assert not claim.ok and "negation" in claim.reason


@pytest.mark.parametrize(("draft", "reason"), [
    ("You can find the payment methods in the FAQ section of our website.", "sends the shopper somewhere"),
    ("Please contact our customer service team.", "sends the shopper somewhere"),
    ('Try pressing the "Sign in" link twice, then wait.', "sends the shopper somewhere"),
    ('Press "Sign in" twice, then wait overnight.', "words the FAQ never does"),
    ('Click "Sign in" at the top of the page and choose "Create account".', None),
    ('You can use "Sign in" at the top of the page.', None),  # one new word is phrasing, not invention
])
def test_a_draft_that_sends_the_shopper_elsewhere_or_adds_its_own_steps_is_caught(draft, reason):
    found = invented_words(draft, "how do I open an account", ACCOUNT, "en")
    assert (found is None) if reason is None else (reason in found), found


def test_a_referral_the_merchant_wrote_is_fine():
    faq = ["Where are your size guides?\nEvery product page has a size guide link in the Size section of our website."]
    assert invented_words("Open the size guide link in the Size section of our website.", "size guide?", faq,
                          "en") is None


REFUND_STATUS = ("How can I check the status of my refund?\nWe email you when your return arrives at our warehouse and "
                 "again when the refund is issued, and you can follow both steps under \"My orders\" in your account.")
CANCEL = ("Can I change or cancel my order?\nYou can cancel an order yourself within 1 hour of placing it via "
          "\"My orders\" or the link in your confirmation email. After 1 hour, contact us as soon as possible.")
NEWSLETTER = ("How do I subscribe to the newsletter?\nSign up with the newsletter form at the bottom of any page or by "
              "ticking the box at checkout.")


@pytest.mark.parametrize(("draft", "source", "linked"), [
    ("You can get your money back by checking the status of your refund in your account.", REFUND_STATUS,
     "'You can get your money back' to 'by checking'"),
    ("You can cancel your order by contacting us within 1 hour via \"My orders\".", CANCEL,
     "'You can cancel your order' to 'by contacting'"),
    ("To subscribe, sign up with the newsletter form or by ticking the box at checkout.", NEWSLETTER, None),
    ("You can cancel an order within 1 hour by using the link in your confirmation email.", CANCEL, None),
    ("You can follow your refund under \"My orders\" in your account.", REFUND_STATUS, None),
])
def test_a_goal_joined_to_a_step_the_faq_does_not_link_it_to_is_caught(draft, source, linked):
    found = unlinked_means(draft, [source], "en")
    assert (found is None) if linked is None else (linked in found)
    assert unlinked_means(draft, [source], "de") is None  # the pattern is English grammar


NEWSLETTER_BOTH = ("How do I subscribe to or unsubscribe from the newsletter?\nSign up with the newsletter form at the "
                   "bottom of any page. To unsubscribe, click the link at the bottom of any newsletter.")
TRACKING_ENTRY = ("How do I track my order?\nWhen your order ships, we email you a tracking link. Enter your order "
                  "number and email address on our order status page.")


@pytest.mark.parametrize(("draft", "sources", "linked"), [
    ("To see your money back guarantee, check your account under \"My orders\".", [REFUND_STATUS, TRACKING_ENTRY],
     "'check your account under \"My orders\".' for 'see your money back guarantee'"),
    ("To get a refund, contact us with your order number.", [TRACKING_ENTRY], "for 'get a refund'"),
    ("To subscribe or unsubscribe, sign up with the newsletter form.", [NEWSLETTER_BOTH], "for 'subscribe or unsubscribe'"),
    ("To subscribe, sign up with the newsletter form at the bottom of any page.", [NEWSLETTER_BOTH], None),
    # the goal is the entry's question, or named in the sentence that gives the step
    ("To track your order, enter your order number and email address on our order status page.",
     [TRACKING_ENTRY], None),
    ("To cancel an order, use \"My orders\" or the link in your confirmation email within 1 hour.", [CANCEL], None),
    ("Sign up with the newsletter form at the bottom of any page.", [NEWSLETTER], None),  # no purpose clause
])
def test_a_purpose_joined_to_a_step_no_entry_gives_for_it_is_caught(draft, sources, linked):
    found = unlinked_purpose(draft, sources, "en")
    assert (found is None) if linked is None else (linked in found and "which no FAQ entry does" in found)
    assert unlinked_purpose(draft, sources, "de") is None  # the pattern is English grammar


INVOICE = ("How do I get an invoice?\nA PDF VAT invoice is attached to your dispatch email; guest shoppers can request "
           "one by email. All customers can return items within 30 days.")


@pytest.mark.parametrize(("draft", "dropped"), [
    ("You can download the invoice from your dispatch email or request one by email.", True),
    ("The invoice is attached to your dispatch email; guest shoppers can request one by email.", False),
    ("If you checked out as a guest, you can request one by email.", False),
    ("You can return items within 30 days.", False),  # "all customers" restricts nobody
])
def test_an_action_the_faq_allows_only_some_shoppers_is_not_offered_to_everyone(draft, dropped):
    found = dropped_restriction(draft, [INVOICE], "en")
    assert (found == "the reply offers 'request' to everyone; the FAQ allows it to guest shoppers only") if dropped \
        else found is None


VAT_INVOICE = ("How do I get an invoice?\nA PDF VAT invoice is attached to your dispatch email. To add company details "
               "or a VAT ID, enter them at checkout, or email us with your order number within 30 days and we'll "
               "reissue the invoice.")
ADDRESS = ("Can I change my delivery address?\nIf your order hasn't shipped yet, contact us by chat or email with your "
           "order number and the corrected address, and we'll update it.")
TRACKING = "Where is my order?\nEnter your order number and email address on our order status page."


@pytest.mark.parametrize(("draft", "question", "sources", "dropped"), [
    # the purpose left out: reads as the way to get any invoice
    ("If you need one, email us with your order number within 30 days.", "how do I get my invoice",
     [VAT_INVOICE, TRACKING], "To add company details or a VAT ID"),
    ("To get invoice 12588, enter your order number within 30 days and we'll reissue the invoice.",
     "what do i do to get invoice 12588", [VAT_INVOICE], "To add company details or a VAT ID"),
    ("Contact us by chat or email with your order number and the corrected address.", "change my address",
     [ADDRESS], "If your order hasn't shipped yet"),
    # kept, reworded, or given by the shopper
    ("To add your company details, email us with your order number within 30 days and we'll reissue the invoice.",
     "how do I get my invoice", [VAT_INVOICE], None),
    ("If it hasn't shipped, contact us by chat or email with your order number and the corrected address.",
     "change my address", [ADDRESS], None),
    ("Email us with your order number within 30 days and we'll reissue the invoice.",
     "I forgot to add my VAT ID", [VAT_INVOICE], None),
    # an unconditional FAQ sentence says it as fully
    ("Enter your order number and email address on our order status page.", "where is my order",
     [VAT_INVOICE, TRACKING], None),
])
def test_a_step_the_faq_gives_only_under_a_condition_keeps_the_condition(draft, question, sources, dropped):
    found = dropped_condition(draft, question, sources, "en")
    assert (found == f"the reply leaves out the FAQ's condition '{dropped}'") if dropped else found is None
    assert dropped_condition(draft, question, sources, "de") is None  # the pattern is English grammar


class CannedEncoder:
    """Similarity by shared words: enough to pick each claim's closest FAQ sentence in these cases."""

    def __call__(self, texts):
        import numpy as np

        vocabulary = sorted({w for t in texts for w in re.findall(r"\w", t.lower())})
        vectors = np.array([[t.lower().count(w) for w in vocabulary] for t in texts], dtype=float)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(("draft", "dropped"), [
    ("您可以在“我的订单”中自行取消订单。", "1 小时内"),
    ("You can cancel an order yourself via My orders.", "within 1"),
    ("You can cancel an order yourself within 1 hour via My orders.", None),
    ("下单后 1 小时内可以在“我的订单”中自行取消。", None),
    ("可以。", None),  # a bare yes claims nothing: no claims at all
])
def test_a_claim_that_drops_the_faqs_limit_is_caught(draft, dropped):
    grounder = SemanticGrounder(CannedEncoder(), 0.3)
    claims = grounder.check(draft, ["You can cancel an order yourself within 1 hour via My orders.",
                                    "下单后 1 小时内，您可以在“我的订单”中自行取消订单。"])
    found = dropped_limit(claims)
    assert (found is None) if dropped is None else (f"limit '{dropped}" in found)
    assert bool(claims) == (draft != "可以。")


@pytest.mark.parametrize(("draft", "language", "said"), [
    ("退款已经发出，您可以在“我的订单”中查看进度。", "zh", "已经发出"),
    ("订单已取消。", "zh", "已取消"),
    ("Your refund has been issued to your card.", "en", "has been issued"),
    ("Good news: your order has already shipped.", "en", "has already shipped"),
    ("寄往欧盟的订单价格已含增值税。", "zh", None),  # the FAQ's own words
    ("包裹显示已签收的话，请先问问邻居。", "zh", None),  # the shopper's words
    ("We email you when the refund is issued.", "en", None),
    ("Refunds are issued within 5-7 business days.", "en", None),  # policy, not a status
    ("Your parcel is already dispatched.", "en", "is already dispatched"),
    ("Your refund has been issued.", "de", None),  # no pattern for German
    ("I've cancelled your order for you.", "en", "'ve cancelled"),  # what kefu says it did itself
    ("We refunded the full amount yesterday.", "en", "We refunded"),
    ("Good news, it’s been shipped!", "en", "’s been shipped"),
    ("Let's reset your password: click \"Forgot password\".", "en", None),  # advice, not a status
])
def test_a_claim_about_what_happened_to_the_order_is_caught(draft, language, said):
    sources = ["退款发出时我们会发邮件给您。寄往欧盟的订单价格已含增值税。", "We email you when the refund is issued."]
    found = status_claims(draft, "包裹显示已签收但我没收到", sources, language)
    assert (found is None) if said is None else (f"says '{said}'" in found)


def _variant(question: str, answer: str, language: str = "en"):
    from knowledge.faq import LocalizedText, SourceLocation

    return LocalizedText(language=language, questions=(question,), answer=answer,
                         source=SourceLocation("faq/orders.yaml", 1))


@pytest.mark.parametrize(("draft", "refusal"), [
    ("You can cancel it yourself within 1 hour of placing it, via \"My orders\".", None),
    ("You can cancel it yourself within 24 hours of placing it, via \"My orders\".", "not in the FAQ: number 24"),
    ("I've cancelled your order for you.", "cancelled"),
    ("cancel cancel cancel cancel cancel cancel cancel cancel cancel cancel cancel cancel", "repeats itself"),
    ("   ", "returned nothing"),
])
async def test_the_reviewer_runs_the_responders_checks_on_a_draft(draft, refusal):
    """bench/checker.py measures this same reviewer on labelled drafts."""
    from bot.responder.review import DraftRejected, DraftReviewer, DraftSources

    reviewer = DraftReviewer(shop="Lantern Lane", detect_language=None, grounder=None)
    entry = _variant("Can I change or cancel my order?", CANCEL.split("\n", 1)[1])
    given = DraftSources.of("can i cancel my order??", "en", [entry])
    if refusal is None:
        assert await reviewer.review(draft, given, {}) == draft
    else:
        with pytest.raises(DraftRejected, match=refusal):
            await reviewer.review(draft, given, {})


@pytest.mark.parametrize(("sentence", "claim"), [
    ("Sorry, pierced earrings can't be returned.", "pierced earrings can't be returned."),
    ("No, we don't have a phone line.", "we don't have a phone line."),
    ("Yes — express shipping is available to the EU and UK.", "express shipping is available to the EU and UK."),
    ("抱歉，优惠码须在付款前添加，下单后无法补用。", "优惠码须在付款前添加，下单后无法补用。"),
    ("可以，我们支持支付宝付款。", "我们支持支付宝付款。"),
    ("Thanks for asking!", None),
    ("Sorry about that!", None),
    ("Yes.", None),
    ("Anything else I can help with?", None),
])
def test_a_courtesy_or_a_yes_no_word_opening_a_sentence_is_not_its_claim(sentence, claim):
    from bot.responder.grounding import claim_of

    assert claim_of(sentence) == claim


def test_a_lead_word_and_a_but_clause_are_checked_for_what_they_state():
    """'No, you don't need …' has one negation, like the FAQ's; the half after ', but' stands alone."""
    import numpy as np

    def encode(texts):  # bag of words
        vocabulary = sorted({w for t in texts for w in re.findall(r"\w+", t.lower())})
        vectors = np.array([[re.findall(r"\w+", t.lower()).count(w) for w in vocabulary] for t in texts],
                           dtype=float)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    faq = ["You don't need an account to order, as guest checkout is available, but with an account you can "
           "track orders and save your addresses."]
    grounder = SemanticGrounder(encode, 0.6)
    assert all(c.ok for c in grounder.check("No, you don't need an account to order.", faq))
    assert all(c.ok for c in grounder.check("With an account you can track orders and save your addresses.", faq))
    [refused] = grounder.check("Yes, you need an account to order.", faq)
    assert not refused.ok and "negation" in refused.reason
    [sorry] = grounder.check("Sorry, you need an account to order.", faq)
    assert not sorry.ok  # after the courtesy, a claim like any other


@pytest.mark.parametrize(("draft", "sources", "problems"), [
    ("It shipped on December 5, 2026.", ["Order LL-1 shipped on 2026-12-05."], []),  # the same date, written out
    ("Ihre Bestellung wurde am 5. Dezember versandt.", ["Order LL-1 shipped on 2026-12-05."], []),
    ("It arrives on 2026-12-24.", ["Order LL-1 shipped on 2026-12-05."], ["date 2026-12-24"]),
    ("订单已于2026年12月6日发货", ["订单LL-1已于2026-12-05发货。"], ["date 2026-12-06"]),
    ("ok", ["I NEED İT BY APRİL 5", "aprıl 5", "ſep 5"], []),  # case folds that are no month name: no crash
])
def test_dates_are_one_fact_however_they_are_written(draft, sources, problems):
    from bot.responder.grounding import unsupported_facts

    assert unsupported_facts(draft, sources) == problems
