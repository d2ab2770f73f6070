"""Calibrated confidence: the FAQ quizzed on its own phrasings, a monotone fit, cached per version."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config

from bot.config import Config, load_config
from knowledge import calibration as calibration_module
from knowledge.calibration import FEATURES, VERSION, calibrate, fit, quiz, spread_folds
from knowledge.search import EncoderSet, FaqSearch
from knowledge.semantic import Phrasing, SemanticIndex
from knowledge.service import load_encoders, load_faq, open_search

CLEAR_QUESTIONS = [("how long does shipping take?", "shipping-time"),
                   ("can I pay with PayPal?", "payment-methods"),
                   ("退款多久到账？", "refund-timing")]


def clustered_index(entries: int = 6, questions: int = 4, spread: float = 0.35, seed: int = 1) -> SemanticIndex:
    """An index over made-up vectors: each entry's phrasings lie around its own direction."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(entries, 16))
    phrasings, rows = [], []
    for e in range(entries):
        for q in range(questions + 1):
            kind = "question" if q < questions else "answer"
            phrasings.append(Phrasing(f"entry-{e}", "en", f"entry {e} phrasing {q}", kind))
            rows.append(centres[e] + spread * rng.normal(size=16))
    vectors = np.array(rows)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return SemanticIndex(phrasings=phrasings, vectors={"made-up": vectors.astype(np.float32)},
                         entry_ids=[f"entry-{e}" for e in range(entries)], train_classifier=True, answer_weight=0.85)


def test_fit_is_monotone_and_follows_the_evidence():
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 1, size=(400, len(FEATURES)))
    # Right answers come with a high score and lead; similarity says nothing here.
    rights = rng.uniform(0, 1, 400) < 0.1 + 0.8 * (features[:, 0] + features[:, 1]) / 2
    calibration = fit(features, rights)
    assert calibration is not None
    assert all(weight >= 0 for weight in calibration.weights)
    low, high = calibration.probability(np.array([[0.1, 0.1, 0.5, 0.5], [0.9, 0.9, 0.5, 0.5]]))
    assert low < 0.35 < 0.65 < high
    assert calibration.examples == 400 and calibration.right_share == pytest.approx(rights.mean())
    # What `kefu faq check` reports: a higher threshold answers fewer quiz questions, more of them right.
    loose, strict = calibration.expected_at(0.3), calibration.expected_at(0.7)
    assert loose[0] > strict[0] and strict[1] > loose[1]


def test_fit_declines_a_quiz_that_says_nothing():
    features = np.ones((20, len(FEATURES)))
    assert fit(features, np.ones(20, dtype=bool)) is None  # all right: no wrong to learn from
    assert fit(features[:3], np.array([True, False, True])) is None  # too few questions


def test_quiz_asks_every_question_once_and_entries_left_out_are_wrong(monkeypatch):
    index = clustered_index()
    asked_texts: list[str] = []
    real_restricted = SemanticIndex.restricted

    def restricted(self, keep):
        trained = real_restricted(self, keep)
        real_scores = trained.scores_many

        def scores_many(queries, vectors, lexical):
            asked_texts.extend(queries)
            assert not {p.text for p in trained.phrasings} & set(queries), "a question was asked of its own training"
            return real_scores(queries, vectors, lexical)

        trained.scores_many = scores_many
        return trained

    monkeypatch.setattr(SemanticIndex, "restricted", restricted)
    features, rights = quiz(index)
    questions = [p.text for p in index.phrasings if p.kind == "question"]
    assert sorted(asked_texts) == sorted(questions)
    assert features.shape == (len(questions), len(FEATURES)) and rights.shape == (len(questions),)
    # Well separated entries are found when present; the left-out ones (a fifth per round) never are.
    assert 0.5 < rights.mean() < 0.95


def test_calibration_is_cached_per_key_and_refitted_for_another(tmp_path, monkeypatch):
    index = clustered_index()
    first = calibrate(index, tmp_path, "faq-v1")
    assert first is not None
    cached = tmp_path / f"v{VERSION}-faq-v1.json"
    assert json.loads(cached.read_text(encoding="utf-8"))["weights"] == list(first.weights)

    def no_quiz(*args, **kwargs):
        raise AssertionError("a cached calibration must not be quizzed again")

    monkeypatch.setattr(calibration_module, "quiz", no_quiz)
    assert calibrate(index, tmp_path, "faq-v1") == first
    with pytest.raises(AssertionError, match="must not be quizzed"):
        calibrate(index, tmp_path, "faq-v2")


def test_an_unreadable_cache_is_fitted_again_and_replaced(tmp_path, caplog):
    index = clustered_index()
    cached = tmp_path / f"v{VERSION}-k.json"
    cached.write_text("{not json", encoding="utf-8")
    calibration = calibrate(index, tmp_path, "k")
    assert calibration is not None
    assert "calibration.cache_unreadable" in caplog.text
    assert json.loads(cached.read_text(encoding="utf-8"))["examples"] == calibration.examples


# -- on the sample shop, with the real encoders ------------------------------------------------

def product_entries(count: int) -> str:
    """Many entries of one kind, none about shipping, payment or refunds: a big catalogue FAQ."""
    colours = ["red", "blue", "green", "black", "white", "grey", "navy", "olive", "pink", "beige"]
    items = ["linen shirt", "wool scarf", "leather belt", "canvas tote", "rain jacket", "silk tie",
             "denim skirt", "cotton socks", "knit beanie", "suede boots", "bucket hat", "yoga pants",
             "puffer vest", "trench coat", "tank top"]
    lines = []
    for number in range(count):
        colour, item = colours[number % len(colours)], items[number // len(colours) % len(items)]
        lines += [f"- id: stock-{number}", f"  question: Do you have the {colour} {item} in stock?",
                  f"  answer: The {colour} {item} is in stock in sizes S to XL and ships from Rotterdam."]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> EncoderSet:
    loaded = load_encoders(load_config(write_config(tmp_path_factory.mktemp("enc")), environ={}))
    assert loaded is not None
    return loaded


def shop_search(folder: Path, encoders: EncoderSet, extra_entries: int) -> Iterator[FaqSearch]:
    config: Config = load_config(write_config(folder), environ={})
    if extra_entries:
        faq = folder / "faq"
        import shutil
        shutil.copytree(config.knowledge.faq_dir, faq)
        (faq / "catalogue.yaml").write_text(product_entries(extra_entries), encoding="utf-8")
        text = re.sub(r'faq_dir = ".*"', 'faq_dir = "faq"', (folder / "kefu.toml").read_text(encoding="utf-8"))
        (folder / "kefu.toml").write_text(text, encoding="utf-8")
        config = load_config(folder / "kefu.toml", environ={})
    search = open_search(config, load_faq(config), encoders)
    yield search
    search.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory, encoders) -> Iterator[FaqSearch]:
    yield from shop_search(tmp_path_factory.mktemp("sample"), encoders, 0)


@pytest.fixture(scope="module")
def large(tmp_path_factory, encoders) -> Iterator[FaqSearch]:
    yield from shop_search(tmp_path_factory.mktemp("large"), encoders, 150)


def test_the_sample_shop_is_calibrated_and_says_so(sample):
    assert sample.calibration is not None
    hits = sample.search_blocking("how long does shipping take?", language="en")
    assert hits[0].entry.id == "shipping-time" and hits[0].score >= 0.8
    assert hits[0].why.startswith("raw score ") and "calibrated on the FAQ's own phrasings" in hits[0].why
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_confidence_means_the_same_in_a_faq_five_times_larger(sample, large):
    """The raw scores shrink as entries are added; the calibrated confidence of a clear question does not."""
    assert len(large.faq) == len(sample.faq) + 150
    raw_drop = []
    for question, expected in CLEAR_QUESTIONS:
        small_hit = sample.search_blocking(question, language=None)[0]
        large_hit = large.search_blocking(question, language=None)[0]
        assert small_hit.entry.id == large_hit.entry.id == expected
        small_raw = float(re.match(r"raw score (\d\.\d\d)", small_hit.why).group(1))
        large_raw = float(re.match(r"raw score (\d\.\d\d)", large_hit.why).group(1))
        raw_drop.append(small_raw - large_raw)
        assert small_hit.score >= 0.5 and large_hit.score >= 0.5, question
        assert abs(small_hit.score - large_hit.score) < 0.25, question
    assert sum(raw_drop) > 0, raw_drop  # the raw scale did shrink (the English catalogue competes in English)


def test_an_unanswerable_question_stays_unsure_in_both(sample, large):
    for search in (sample, large):
        assert search.search_blocking("what's the weather in Paris tomorrow", language="en")[0].score < 0.5


def test_an_entry_never_loses_all_its_questions_to_one_fold():
    # a one-phrasing FAQ in two languages: each entry has its question and the question's translation
    entry_of = [f"entry-{e}" for e in range(200) for _ in range(2)] + [f"wide-{e}" for e in range(20) for _ in range(5)]
    folds = spread_folds(entry_of, 4, np.random.default_rng(7))
    by_entry: dict[str, list[int]] = {}
    for entry_id, fold in zip(entry_of, folds):
        by_entry.setdefault(entry_id, []).append(int(fold))
    assert all(len(set(f)) == 2 for e, f in by_entry.items() if e.startswith("entry-"))
    assert all(set(f) == {0, 1, 2, 3} for e, f in by_entry.items() if e.startswith("wide-"))  # 5 over 4 folds
    assert {int(f) for f in folds} == {0, 1, 2, 3} and max(np.bincount(folds)) < 0.3 * len(folds)
