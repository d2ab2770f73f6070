"""knowledge/char_ngrams.py computes what scikit-learn's TfidfVectorizer learnt, without importing it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from knowledge.char_ngrams import CharVectorizer

TRAINING = [
    "how do i reset my password?", "wheres my package", "where is my order??", "怎么退货？", "退款需要多长时间？",
    "Do you ship to Iceland", "can i pay with klarna", "a", "order status LL-123456", "¿Cuánto tarda el reembolso?",
    "wie lange dauert der versand", "my   zip\tbroke  after 3 years", "gift cards 🎁 work how",
]
ASKED = [
    *TRAINING,
    "", "   ", "zzzz qqqq", "passwrod reset plz", "Wo ist mein Paket?", "我的退款呢", "x", "a b c",
    "ORDER LL-999999 where", "emoji only 😡😡", "tab\tand\nnewline", "ünïcödé wörds",
]


@pytest.mark.parametrize("ngram_range", [(1, 4), (2, 3)])
def test_the_features_equal_scikit_learns(ngram_range):
    fitted = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, sublinear_tf=True, lowercase=True,
                             max_features=300).fit(TRAINING)
    expected = fitted.transform(ASKED).toarray()
    rows = CharVectorizer.of(fitted).transform(ASKED)
    identity = np.eye(len(fitted.vocabulary_))
    np.testing.assert_allclose(rows @ identity, expected, atol=1e-12)


def test_other_settings_are_refused_rather_than_computed_differently():
    with pytest.raises(ValueError, match="char_wb"):
        CharVectorizer.of(TfidfVectorizer(analyzer="char", sublinear_tf=True).fit(TRAINING))
    with pytest.raises(ValueError, match="char_wb"):
        CharVectorizer.of(TfidfVectorizer(analyzer="char_wb", sublinear_tf=False).fit(TRAINING))


def test_a_cached_fitted_index_scores_characters_without_importing_scikit_learn(tmp_path):
    """A warm start opens the cached classifiers; importing scikit-learn cost it 1-2 s."""
    import pickle

    from knowledge.semantic import LinearModel, TrainedModels

    fitted = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True).fit(TRAINING)
    model = LinearModel(classes=np.arange(3), coef=np.ones((len(fitted.vocabulary_), 3)), intercept=np.zeros(3))
    path = tmp_path / "trained.pkl"
    path.write_bytes(pickle.dumps(TrainedModels({}, (CharVectorizer.of(fitted), model))))
    code = ("import pickle, sys; trained = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "vectorizer, model = trained.chars; print(model.probabilities(vectorizer.transform(['where is my order'])).shape); "
            "print('sklearn' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["(1,", "3)", "False"]
