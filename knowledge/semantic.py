"""Semantic matching: nearest phrasings in embedding space, and classifiers trained on them.

A merchant's alternative phrasings are training data, and so are the answers (at
half weight): a merchant who writes one question per entry still wrote an answer
that names what the entry is about ("we accept Klarna, iDEAL, …"). Per encoder, a
logistic regression learns which entry a question belongs to from those vectors;
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

from knowledge.char_ngrams import CharVectorizer
from knowledge.embeddings import normalize_text
from knowledge.encoders import prefer_passive_openmp

log = logging.getLogger(__name__)

SEMANTIC_C = 10.0  # inverse regularization of the embedding classifiers
CHAR_C = 10.0
NN_TEMPERATURE = 0.05
# An answer teaches the embedding classifiers half as much as a question: it is written to be read,
# not asked, and it mentions neighbouring topics. Measured on bench/data/shoppers.csv: top-1 on the
# one-phrasing sample FAQ 0.72 -> 0.78, on the shipped one 0.88 -> 0.91.
ANSWER_TRAIN_WEIGHT = 0.5
CHARS = "chars"  # the character n-gram classifier's name among the votes
# lbfgs keeps ~20 copies of the coefficients: cap classes × character features so that a
# 1,000-entry FAQ trains in seconds and ~0.5 GB instead of minutes and ~19 GB (measured).
CHAR_PARAMETER_BUDGET = 2_000_000  # softmax over cosines when an FAQ is too large to train on


@dataclass(frozen=True)
class Phrasing:
    entry_id: str
    language: str
    text: str
    kind: str  # "question" or "answer"


@dataclass(frozen=True)
class LinearModel:
    """A trained logistic regression, applied with plain numpy (sklearn's per-call checks cost more
    than the arithmetic for one question)."""

    classes: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def of(cls, model) -> LinearModel:
        return cls(classes=model.classes_, coef=model.coef_.T.copy(), intercept=model.intercept_.copy())

    def probabilities(self, features) -> np.ndarray:
        """Rows of features (dense, or the character n-grams' sparse rows) → rows of class probabilities."""
        logits = np.asarray(features @ self.coef) + self.intercept
        if logits.shape[1] == 1:  # sklearn keeps one column for two classes
            positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        logits = logits - logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class TrainedModels:
    """What training learns from the phrasings: one model per encoder, and the character n-gram
    vectorizer with its model (None for an FAQ with fewer than two entries that have questions)."""

    embedding: dict[str, LinearModel]
    chars: tuple[CharVectorizer, LinearModel] | None


@dataclass(frozen=True)
class SemanticScores:
    """Per entry (aligned with `SemanticIndex.entry_ids`)."""

    parts: dict[str, np.ndarray]  # each model's probabilities over the entries (its vote)
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
        trained: TrainedModels | None = None,
    ):
        self.phrasings = list(phrasings)
        self.entry_ids = list(entry_ids)
        self._entry_index = {entry_id: i for i, entry_id in enumerate(self.entry_ids)}
        self._owner = np.array([self._entry_index[p.entry_id] for p in self.phrasings], dtype=np.int64)
        # The phrasings grouped by entry (stable), for per-entry maxima in one vectorized pass.
        self._by_owner = np.argsort(self._owner, kind="stable")
        grouped = self._owner[self._by_owner]
        self._group_starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if len(grouped) else \
            np.zeros(0, dtype=np.int64)
        self._group_entries = grouped[self._group_starts]
        self._group_sizes = np.diff(np.r_[self._group_starts, len(grouped)])
        self._vectors = vectors
        self._phrase_weight = np.array([1.0 if p.kind == "question" else answer_weight for p in self.phrasings],
                                       dtype=np.float32)
        self.languages = {p.language for p in self.phrasings if p.kind == "question"}
        self._models: dict[str, LinearModel] = {}
        self._char = None
        self._answer_weight = answer_weight
        self.classifier = train_classifier and len(set(self._owner.tolist())) >= 2
        if self.classifier and trained is not None:  # learnt earlier from these same phrasings and vectors
            self._models, self._char = dict(trained.embedding), trained.chars
        elif self.classifier:
            self._train()

    @property
    def trained(self) -> TrainedModels | None:
        """The classifiers, to cache (None when the index ranks by nearest neighbours)."""
        return TrainedModels(dict(self._models), self._char) if self.classifier else None

    def restricted(self, keep: Sequence[bool]) -> SemanticIndex:
        """Blocking: the same index trained on the kept phrasings only (cross-validation); every entry
        keeps its place, one left without phrasings simply scores nothing."""
        mask = np.asarray(keep, dtype=bool)
        return SemanticIndex(
            phrasings=[p for p, kept in zip(self.phrasings, mask) if kept],
            vectors={name: matrix[mask] for name, matrix in self._vectors.items()},
            entry_ids=self.entry_ids,
            train_classifier=self.classifier,
            answer_weight=self._answer_weight,
        )

    def vectors_of(self, rows: Sequence[int]) -> dict[str, np.ndarray]:
        """Each encoder's vectors of the given phrasings (to ask them as questions)."""
        return {name: matrix[list(rows)] for name, matrix in self._vectors.items()}

    def index_of(self, entry_id: str) -> int:
        return self._entry_index[entry_id]

    def _train(self) -> None:
        prefer_passive_openmp()
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        labels = self._owner
        weights = np.array([1.0 if p.kind == "question" else ANSWER_TRAIN_WEIGHT for p in self.phrasings])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # One phrasing per entry is a normal FAQ, not the regression sklearn suspects.
            warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
            for name, matrix in self._vectors.items():
                model = LogisticRegression(C=SEMANTIC_C, max_iter=1000)
                model.fit(matrix, labels, sample_weight=weights)
                self._models[name] = LinearModel.of(model)
            # Character n-grams learn from the questions only: the answers' long texts would multiply the
            # vocabulary (and the training time, 3-7x on the sample shop) for no gain in accuracy.
            questions = [i for i, p in enumerate(self.phrasings) if p.kind == "question"]
            classes = len(set(labels[questions].tolist()))
            if classes < 2:
                return
            texts = [normalize_text(self.phrasings[i].text).lower() for i in questions]
            vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, lowercase=True,
                                         max_features=max(1000, CHAR_PARAMETER_BUDGET // classes))
            features = vectorizer.fit_transform(texts)
            char_model = LogisticRegression(C=CHAR_C, max_iter=1000)
            char_model.fit(features, labels[questions])
            self._char = (CharVectorizer.of(vectorizer), LinearModel.of(char_model))

    def _spread(self, model: LinearModel, features) -> np.ndarray:
        """A classifier's probabilities → queries × entries (entries without questions get 0)."""
        full = np.zeros((len(features), len(self.entry_ids)), dtype=np.float64)
        full[:, model.classes] = model.probabilities(features)
        return full

    def char_scores(self, queries: Sequence[str]) -> np.ndarray | None:
        """Blocking: the character n-gram classifier's probabilities, queries × entries (None without it).

        They need the text only, so the search computes a question's while the encoders work on it.
        """
        if not self.classifier or self._char is None or not queries:
            return None
        vectorizer, char_model = self._char
        return self._spread(char_model, vectorizer.transform([normalize_text(q).lower() for q in queries]))

    def scores_many(self, queries: Sequence[str], vectors: dict[str, np.ndarray],
                    lexical: Sequence[bool], chars: Sequence[np.ndarray | None] | None = None) -> list[SemanticScores]:
        """Blocking (fast): every entry's scores for each question, computed for the batch at once.

        `vectors` holds one (len(queries), dim) matrix per encoder; `lexical[i]` says whether
        the character n-gram classifier may vote on question i (same language as the FAQ);
        `chars[i]`, when given, is question i's row of `char_scores`, computed already.
        """
        count = len(queries)
        n_entries = len(self.entry_ids)
        cosines = [matrix @ vectors[name].T for name, matrix in self._vectors.items()]  # phrasings × queries
        cosine = np.mean(cosines, axis=0) * self._phrase_weight[:, None]
        parts: dict[str, np.ndarray] = {}  # name → queries × entries
        if self.classifier:
            for name, model in self._models.items():
                parts[name] = self._spread(model, vectors[name])
            voting = [i for i in range(count) if lexical[i]]
            if voting and self._char is not None:
                rows = list(chars) if chars is not None else [None] * count
                missing = [i for i in voting if rows[i] is None]
                if missing:
                    for i, row in zip(missing, self.char_scores([queries[i] for i in missing])):
                        rows[i] = row
                parts[CHARS] = np.full((count, n_entries), np.nan)
                parts[CHARS][voting] = np.vstack([rows[i] for i in voting])
        else:
            for name, sims in zip(self._vectors, cosines):
                best = self._entry_best(sims * self._phrase_weight[:, None])
                weights = np.exp((best - best.max(axis=0)) / NN_TEMPERATURE)
                parts[name] = (weights / weights.sum(axis=0)).T
        similarity, nearest = self._best_per_entry(cosine)
        results = []
        for q in range(count):
            own = {name: part[q] for name, part in parts.items() if not np.isnan(part[q][0])}
            results.append(SemanticScores(
                parts=own,
                similarity=similarity[:, q],
                nearest=nearest[:, q].tolist(),
            ))
        return results

    def _entry_maxima(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """phrasings × queries → (the values grouped by entry, each present entry's maximum per query).

        One `reduceat` over the phrasings grouped by entry: a per-query sort of every phrasing's
        cosine (20,000 at 10,000 entries of one question each) was the cost that grew with the FAQ.
        """
        grouped = values[self._by_owner]
        return grouped, np.maximum.reduceat(grouped, self._group_starts, axis=0)

    def _entry_best(self, values: np.ndarray) -> np.ndarray:
        """phrasings × queries → entries × queries: each entry's best value, -1 without phrasings."""
        best = np.full((len(self.entry_ids), values.shape[1]), -1.0)
        if len(self._group_starts):
            best[self._group_entries] = self._entry_maxima(values)[1]
        return best

    def _best_per_entry(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_entry_best`, and the phrasing holding each best value (-1 without phrasings; of equal
        values the later phrasing wins)."""
        best = np.full((len(self.entry_ids), values.shape[1]), -1.0)
        nearest = np.full(best.shape, -1, dtype=np.int64)
        if not len(self._group_starts):
            return best, nearest
        grouped, maxima = self._entry_maxima(values)
        at_max = grouped == np.repeat(maxima, self._group_sizes, axis=0)
        positions = np.where(at_max, np.arange(len(grouped))[:, None], -1)
        best[self._group_entries] = maxima
        nearest[self._group_entries] = self._by_owner[np.maximum.reduceat(positions, self._group_starts, axis=0)]
        return best, nearest
