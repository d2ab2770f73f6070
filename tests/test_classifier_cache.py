"""Trained classifiers are cached by content: a restart does not retrain, an edited FAQ does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import write_config

from bot.config import load_config
from knowledge.faq import load_faq_dir
from knowledge.search import EncoderSet, FaqSearch
from knowledge.semantic import SemanticIndex
from knowledge.service import load_encoders, search_settings

FAQ = """\
- id: shipping-time
  question: How long does shipping take?
  alternatives: [when will my parcel arrive, delivery time]
  answer: Orders arrive within 3 to 5 working days.
- id: payment-methods
  question: Which payment methods do you accept?
  alternatives: [can i pay with paypal, do you take credit cards]
  answer: We accept Visa, Mastercard and PayPal.
- id: returns-policy
  question: Can I return an item?
  alternatives: [how do returns work, i want to send something back]
  answer: You can return unworn items within 30 days.
"""
QUESTIONS = ["when does my order arrive", "paypal ok?", "i want my money back for these shoes"]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> EncoderSet:
    loaded = load_encoders(load_config(write_config(tmp_path_factory.mktemp("enc")), environ={}))
    assert loaded is not None
    return loaded


def opened(faq_dir: Path, index_dir: Path, encoders: EncoderSet) -> FaqSearch:
    config = load_config(write_config(index_dir.parent), environ={})
    search = FaqSearch(load_faq_dir(faq_dir, default_language="en", languages=("en",)), index_dir, ("en",),
                       encoders=encoders, settings=search_settings(config))
    search.open()
    return search


def ranked(search: FaqSearch) -> list[list[tuple[str, float]]]:
    return [[(hit.entry.id, hit.score) for hit in search.search_blocking(q, language="en")] for q in QUESTIONS]


def test_a_restart_reuses_the_trained_classifiers_and_ranks_the_same(tmp_path, encoders, monkeypatch):
    faq_dir = tmp_path / "faq"
    faq_dir.mkdir()
    (faq_dir / "faq.yaml").write_text(FAQ, encoding="utf-8")
    first = opened(faq_dir, tmp_path / "index", encoders)
    assert first.trained_at_open
    assert len(list((tmp_path / "index" / "classifiers").glob("*.pkl"))) == 1
    before = ranked(first)
    first.close()

    def no_training(self):
        raise AssertionError("the classifiers were trained again")

    with monkeypatch.context() as patched:
        patched.setattr(SemanticIndex, "_train", no_training)
        again = opened(faq_dir, tmp_path / "index", encoders)
        assert not again.trained_at_open
        assert ranked(again) == before
        again.close()

    (faq_dir / "faq.yaml").write_text(FAQ.replace("30 days", "60 days"), encoding="utf-8")  # an edited answer
    edited = opened(faq_dir, tmp_path / "index", encoders)
    assert edited.trained_at_open
    assert len(list((tmp_path / "index" / "classifiers").glob("*.pkl"))) == 2
    edited.close()


def test_an_unreadable_cache_is_trained_again_and_replaced(tmp_path, encoders, caplog):
    faq_dir = tmp_path / "faq"
    faq_dir.mkdir()
    (faq_dir / "faq.yaml").write_text(FAQ, encoding="utf-8")
    opened(faq_dir, tmp_path / "index", encoders).close()
    [cached] = (tmp_path / "index" / "classifiers").glob("*.pkl")
    cached.write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING):
        search = opened(faq_dir, tmp_path / "index", encoders)
    assert search.trained_at_open and "search.classifier_cache_unreadable" in caplog.text
    assert ranked(search)[0][0][0] == "shipping-time"
    search.close()
    assert cached.read_bytes() != b"not a pickle"
