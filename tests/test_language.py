"""bot/language/detector.py: the shopper's language, restricted to the shop's enabled languages."""

from __future__ import annotations

import pytest

from bot.language.detector import LanguageDetector, known_languages, reply_language


@pytest.fixture(scope="module", params=["lingua", "langdetect"])
def detector(request):
    return LanguageDetector(enabled=("en", "zh", "de"), default="en", min_confidence=0.8, backend=request.param)


@pytest.mark.parametrize("text", ["运费多少钱？", "我的订单在哪里", "LL-123456 退款", "退"])
def test_han_text_is_chinese(detector, text):
    guess = detector.detect(text)
    assert (guess.language, guess.confidence) == ("zh", 0.99)
    assert guess.reason == "written in the han script"


def test_han_text_beats_conversation_language_and_hint(detector):
    assert detector.detect("运费多少钱", conversation_language="de", hint="de-DE").language == "zh"


@pytest.mark.parametrize(
    "text",
    ["Wie lange dauert der Versand nach Deutschland?", "Ich möchte meine Bestellung zurückschicken."],
)
def test_clear_german_sentence_is_german(detector, text):
    guess = detector.detect(text)
    assert guess.language == "de"
    assert guess.confidence >= 0.8
    assert guess.reason == "detected from the text"


@pytest.mark.parametrize(
    "text",
    ["How long does shipping take to the Netherlands?", "Where is my order?"],
)
def test_english_sentence_is_english(detector, text):
    guess = detector.detect(text)
    assert guess.language == "en"
    assert guess.confidence >= 0.7
    assert guess.reason.startswith("detected from the text")


def test_clear_sentence_overrides_conversation_language(detector):
    guess = detector.detect("Wie lange dauert der Versand nach Deutschland?", conversation_language="en")
    assert guess.language == "de"


@pytest.mark.parametrize("text", ["ok", "??", "123", "", "hi"])
def test_short_text_keeps_conversation_language(detector, text):
    guess = detector.detect(text, conversation_language="de", hint="zh-CN")
    assert (guess.language, guess.confidence) == ("de", 0.5)
    assert guess.reason == "text too short or ambiguous; kept the conversation's language"


@pytest.mark.parametrize("hint", ["de-DE", "de_DE", "DE", "de"])
def test_short_text_without_conversation_uses_normalized_hint(detector, hint):
    guess = detector.detect("ok", hint=hint)
    assert (guess.language, guess.confidence) == ("de", 0.5)
    assert guess.reason == "text too short or ambiguous; used the channel's language hint"


@pytest.mark.parametrize("text", ["??", "123", ""])
def test_text_without_letters_and_nothing_known_uses_default(detector, text):
    guess = detector.detect(text)
    assert (guess.language, guess.confidence) == ("en", 0.3)
    assert guess.reason == "text too short or ambiguous; used the shop's default language"


def test_weak_guess_is_used_when_nothing_is_known_about_the_conversation():
    strict = LanguageDetector(enabled=("en", "zh", "de"), default="en", min_confidence=1.0)
    guess = strict.detect("Danke")  # below min_confidence, but better evidence than the shop's default
    assert guess.language == "de"
    assert guess.reason == "detected from the text (best guess; nothing known about the conversation)"


def test_weak_guess_gives_way_to_the_conversations_language():
    strict = LanguageDetector(enabled=("en", "zh", "de"), default="en", min_confidence=0.99)
    guess = strict.detect("Where is my order?", conversation_language="de")
    assert (guess.language, guess.reason) == ("de", "text too short or ambiguous; kept the conversation's language")


def test_conversation_language_kefu_does_not_know_falls_through_to_hint(detector):
    assert detector.detect("ok", conversation_language="sw", hint="zh-TW").language == "zh"


def test_a_known_conversation_language_not_enabled_is_kept_for_short_text(detector):
    assert detector.detect("ok", conversation_language="fr", hint="zh-TW").language == "fr"


def test_hint_not_enabled_falls_back_to_default(detector):
    assert detector.detect("ok", hint="fr-FR").language == "en"


def test_default_language_is_used_for_other_detectors():
    detector = LanguageDetector(enabled=("en", "zh", "de"), default="de", min_confidence=0.8)
    assert detector.detect("??").language == "de"


def test_text_in_a_language_not_enabled_is_recognised_and_answered_in_an_enabled_one(detector):
    guess = detector.detect("Bonjour, je voudrais retourner ma commande.")
    assert guess.language == "fr" and "did not enable" in guess.reason
    assert reply_language(guess.language, detector.enabled, detector.default) == "en"
    assert reply_language("de", detector.enabled, detector.default) == "de"


@pytest.mark.parametrize("text, language", [
    ("Wie lange dauert der Versand nach Deutschland?", "de"), ("¿Cuánto tarda el reembolso?", "es"),
    ("quiero devolver unos zapatos", "es"), ("Comment suivre ma commande ?", "fr"), ("注文をキャンセルしたい", "ja"),
    ("주문 취소하고 싶어요", "ko"), ("Где мой заказ?", "ru"), ("Ich möchte mit einem Mitarbeiter sprechen", "de"),
    ("wo ist mein paket??", "de"), ("vous avez une adresse mail pour vous contacter ?", "fr"),
    ("mi serve la fattura per l'ordine LL-301245", "it"), ("grazie mille, ciao!", "it"),
])
def test_an_en_zh_shop_recognises_languages_it_did_not_enable(text, language):
    shop = LanguageDetector(enabled=("en", "zh"), default="en", min_confidence=0.8)
    assert shop.detect(text).language == language


@pytest.mark.parametrize("text", ["where is my order??", "refund pls", "ok", "hi", "thx", "help me track LL-123456",
                                  "How do I reset my password?", "It is impossible.", "Silence gives consent.",
                                  "xqzv plorb", "zzkk qwop"])
def test_short_or_unclear_latin_text_stays_in_an_enabled_language(text):
    """A foreign language needs clear evidence: "refund pls" scores German 0.23 (English 0.20), "It is
    impossible." French 0.52 (English 0.34), short of the lead a foreign language needs; keyboard mash
    scores no language above 0.33."""
    shop = LanguageDetector(enabled=("en", "zh"), default="en", min_confidence=0.8)
    assert shop.detect(text).language == "en"


def test_a_foreign_conversation_keeps_its_language_for_short_follow_ups():
    shop = LanguageDetector(enabled=("en", "zh"), default="en", min_confidence=0.8)
    assert shop.detect("danke", conversation_language="de").language == "de"
    assert shop.detect("运费多少钱", conversation_language="de").language == "zh"  # the script is clear
    assert shop.detect("Merci beaucoup pour votre aide", conversation_language="de").language == "fr"


def test_a_one_language_shop_still_recognises_other_languages():
    shop = LanguageDetector(enabled=("en",), default="en", min_confidence=0.8)
    assert shop.detect("Wie lange dauert der Versand nach Deutschland?").language == "de"
    assert shop.detect("where is my order").language == "en"


def test_kefu_knows_the_languages_it_has_texts_for():
    assert {"en", "zh", "de", "es", "fr", "ja", "ko", "ru", "ar", "th"} <= set(known_languages())


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "Wie lange dauert der Versand?",
        "Where is my order?",
        "shipping",
        "Danke schön",
        "Bonjour, je voudrais retourner ma commande.",
        "order LL-123456 please",
    ],
)
def test_results_are_deterministic_across_calls_and_instances(detector, text):
    first = detector.detect(text)
    assert all(detector.detect(text) == first for _ in range(5))
    other = LanguageDetector(enabled=("en", "zh", "de"), default="en", min_confidence=0.8,
                             backend=detector.model.name)
    assert other.detect(text) == first


@pytest.mark.parametrize("text, detected", [("运费多少钱", "zh"), ("How long does shipping take?", "en"),
                                            ("ok", "de"), ("", "de")])
def test_a_single_language_shop_answers_in_it_whatever_the_shopper_writes(text, detected):
    detector = LanguageDetector(enabled=("de",), default="de", min_confidence=0.8)
    guess = detector.detect(text, hint="zh")
    assert guess.language == detected
    assert reply_language(guess.language, detector.enabled, detector.default) == "de"


@pytest.mark.parametrize("text, language", [("こんにちは", "ja"), ("ありがとうございます", "ja"), ("안녕하세요", "ko"),
                                            ("สวัสดีครับ", "th")])
def test_the_script_of_a_language_not_enabled_names_it_and_the_reply_is_in_an_enabled_one(detector, text, language):
    guess = detector.detect(text)
    assert (guess.language, guess.confidence) == (language, 0.99)
    assert guess.reason.endswith("script (a language the shop did not enable)")
    assert reply_language(guess.language, detector.enabled, detector.default) == "en"


def test_japanese_with_kanji_is_not_chinese_when_japanese_is_not_enabled(detector):
    # Kana marks the text as Japanese even when it also contains Han characters.
    assert detector.detect("注文はいつ届きますか？").language == "ja"


def test_japanese_kana_is_japanese_when_enabled():
    detector = LanguageDetector(enabled=("en", "zh", "ja"), default="en", min_confidence=0.8)
    assert detector.detect("注文はいつ届きますか？").language == "ja"
    assert detector.detect("运费多少钱").language == "zh"


def test_korean_is_korean_when_enabled():
    detector = LanguageDetector(enabled=("en", "ko"), default="en", min_confidence=0.8)
    guess = detector.detect("배송은 얼마나 걸리나요?")
    assert (guess.language, guess.confidence) == ("ko", 0.99)


CHAT_SHAPES = [
    # (message, conversation language so far, expected)
    ("ok", "zh", "zh"),
    ("thx", "de", "de"),
    ("👍", "zh", "zh"),
    ("LL-123456", "de", "de"),
    ("??", "zh", "zh"),
    ("wher is my oder??", None, "en"),
    ("where is my refund 😡😡", None, "en"),
    ("WHERE IS MY PACKAGE!!!", "de", "en"),
    ("Wo ist mein Paket 📦??", None, "de"),
    ("wo is meine bestelung", None, "de"),
    ("my order LL-123456 还没到", "en", "zh"),
    ("退款 refund", None, "zh"),
]


@pytest.mark.parametrize(("text", "conversation", "expected"), CHAT_SHAPES, ids=[c[0] for c in CHAT_SHAPES])
def test_chat_shaped_messages(text, conversation, expected):
    detector = LanguageDetector(enabled=("en", "zh", "de"), default="en", min_confidence=0.8)
    assert detector.detect(text, conversation_language=conversation).language == expected


def test_preloading_loads_one_language_per_native_call():
    """lingua holds the GIL while it loads models: one language at a time keeps each hold short."""
    from bot.language.detector import LinguaModel

    model = LinguaModel(("en", "de", "fr", "ja"))
    built = []

    class Recording:
        def __init__(self, languages):
            self.languages = languages
            self.preloaded = False

        @classmethod
        def from_languages(cls, *languages):
            return cls(languages)

        def with_preloaded_language_models(self):
            self.preloaded = True
            return self

        def build(self):
            built.append((tuple(sorted(lang.iso_code_639_1.name.lower() for lang in self.languages)), self.preloaded))

    model._builder = Recording
    model.preload()
    assert all(preloaded and len(pair) == 2 for pair, preloaded in built)
    assert {code for pair, _ in built for code in pair} == {"en", "de", "fr", "ja"}
    assert len(built) == 4


def test_a_preloaded_detector_detects_as_before():
    cold = LanguageDetector(enabled=("en", "zh"), default="en", min_confidence=0.8)
    warm = LanguageDetector(enabled=("en", "zh"), default="en", min_confidence=0.8)
    warm.preload()
    for text in ("Wo ist mein Paket?", "where is my order", "我的退款呢", "¿Dónde está mi pedido?"):
        assert warm.detect(text) == cold.detect(text)
