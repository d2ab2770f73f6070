"""Semantic matching: nearest phrasings in embedding space, and classifiers trained on them.

A merchant's alternative phrasings are training data. Per encoder, a logistic
regression learns which entry a question belongs to from its phrasings' vectors;
a third one learns from character n-grams (typos, word forms), and is trusted only
for questions in a language the FAQ's phrasings are written in. The nearest
phrasing stays the explanation ("closest to …") and the relevance check.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from knowledge.embeddings import normalize_text

log = logging.getLogger(__name__)

SEMANTIC_C = 10.0  # inverse regularization of the embedding classifiers
CHAR_C = 10.0
NN_TEMPERATURE = 0.05  # softmax over cosines when an FAQ is too large to train on


@dataclass(frozen=True)
class Phrasing:
    entry_id: str
    language: str
    text: str
    kind: str  # "question" or "answer"


@dataclass(frozen=True)
class SemanticScores:
    """Per entry (aligned with `SemanticIndex.entry_ids`)."""

    probability: np.ndarray  # classifier ensemble, sums to 1 over entries
    parts: dict[str, np.ndarray]  # each model's probabilities, for the explanation
    similarity: np.ndarray  # cosine of the closest phrasing, mean over encoders
    nearest: list[int]  # index into `phrasings` of each entry's closest phrasing


class SemanticIndex:
    """Blocking to build (training); fast to query. Immutable once built."""

    def __init__(
        self,
        *,
        phrasings: Sequence[Phrasing],
        vectors: dict[str, np.ndarray],
        entry_ids: Sequence[str],
        train_classifier: bool,
        answer_weight: float,
    ):
        self.phrasings = list(phrasings)
        self.entry_ids = list(entry_ids)
        self._entry_index = {entry_id: i for i, entry_id in enumerate(self.entry_ids)}
        self._owner = np.array([self._entry_index[p.entry_id] for p in self.phrasings])
        self._vectors = vectors
        self._phrase_weight = np.array([1.0 if p.kind == "question" else answer_weight for p in self.phrasings],
                                       dtype=np.float32)
        self.languages = {p.language for p in self.phrasings if p.kind == "question"}
        self._models: dict[str, object] = {}
        self._char = None
        self.classifier = train_classifier and len(self.entry_ids) >= 2
        if self.classifier:
            self._train()

    def _train(self) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        questions = [i for i, p in enumerate(self.phrasings) if p.kind == "question"]
        labels = self._owner[questions]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for name, matrix in self._vectors.items():
                model = LogisticRegression(C=SEMANTIC_C, max_iter=1000)
                model.fit(matrix[questions], labels)
                self._models[name] = model
            texts = [normalize_text(self.phrasings[i].text).lower() for i in questions]
            vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, lowercase=True)
            features = vectorizer.fit_transform(texts)
            char_model = LogisticRegression(C=CHAR_C, max_iter=1000)
            char_model.fit(features, labels)
            self._char = (vectorizer, char_model)

    def _spread(self, model, probabilities: np.ndarray) -> np.ndarray:
        """A classifier's columns → one per entry (entries without questions get 0)."""
        full = np.zeros(len(self.entry_ids), dtype=np.float64)
        full[model.classes_] = probabilities
        return full

    def scores(self, query: str, query_vectors: dict[str, np.ndarray], *, lexical: bool) -> SemanticScores:
        """Blocking (fast): scores of every entry for one question."""
        per_encoder = []
        for name, matrix in self._vectors.items():
            per_encoder.append(matrix @ query_vectors[name])
        cosine = np.mean(per_encoder, axis=0) * self._phrase_weight
        similarity = np.full(len(self.entry_ids), -1.0)
        np.maximum.at(similarity, self._owner, cosine)
        nearest = [-1] * len(self.entry_ids)
        for phrase_index in np.argsort(cosine):  # ascending: the best phrasing is written last
            nearest[self._owner[phrase_index]] = int(phrase_index)
        parts: dict[str, np.ndarray] = {}
        if self.classifier:
            for name, model in self._models.items():
                parts[name] = self._spread(model, model.predict_proba(query_vectors[name][None, :])[0])
            if lexical and self._char is not None:
                vectorizer, char_model = self._char
                features = vectorizer.transform([normalize_text(query).lower()])
                parts["chars"] = self._spread(char_model, char_model.predict_proba(features)[0])
        else:
            for name, sims in zip(self._vectors, per_encoder):
                best = np.full(len(self.entry_ids), -1.0)
                np.maximum.at(best, self._owner, sims * self._phrase_weight)
                weights = np.exp((best - best.max()) / NN_TEMPERATURE)
                parts[name] = weights / weights.sum()
        probability = np.mean(list(parts.values()), axis=0)
        return SemanticScores(probability=probability, parts=parts, similarity=similarity, nearest=nearest)
