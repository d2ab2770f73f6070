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
NN_TEMPERATURE = 0.05  # softmax over cosines when an FAQ is too large to train on
# An answer teaches the embedding classifiers half as much as a question: it is written to be read,
# not asked, and it mentions neighbouring topics. Measured on bench/data/shoppers.csv: top-1 on the
# one-phrasing sample FAQ 0.72 -> 0.78, on the shipped one 0.88 -> 0.91.
ANSWER_TRAIN_WEIGHT = 0.5
CHARS = "chars"  # the character n-gram classifier's name among the votes
# Training memory grows with classes × character features: cap them so that a 1,000-entry FAQ trains
# in seconds and a few hundred MB instead of minutes and ~19 GB (measured with lbfgs).
CHAR_PARAMETER_BUDGET = 2_000_000
# The character model's solver: lbfgs keeps ~44 float64 copies of the coefficients (scipy's workspace of
# 10 correction pairs, and sklearn's gradients), 708 MB at 1,000 entries; newton-cg with float32
# features keeps a handful, 171 MB (the same FAQ: 8.6 → 11.5 s). It made a 1,000-entry build the
# server's memory peak.
CHAR_SOLVER = "newton-cg"
# Every setting that changes what training learns: part of the trained classifiers' and the calibration's cache keys.
TRAINING_SETTINGS = (f"C{SEMANTIC_C}/{CHAR_C}/answer{ANSWER_TRAIN_WEIGHT}/budget{CHAR_PARAMETER_BUDGET}"
                     f"/{CHAR_SOLVER}-float32")
# The slot layout (see `_slots`) for entries of a few phrasings each, as large FAQs are: at most
# SLOT_MAX slots, and at most SLOT_PADDING padded slots per real phrasing.
SLOT_MAX = 8
SLOT_PADDING = 3


@dataclass(frozen=True)
class Phrasing:
    entry_id: str
    language: str
    text: str
    kind: str  # "question" or "answer"


@dataclass(frozen=True)
class LinearModel:
    """A trained logistic regression, applied with plain numpy (sklearn's per-call checks cost more
    than the arithmetic for one question). Coefficients are kept in float32, as scikit-learn already
    keeps the embedding models' (learnt from float32 vectors); the character model's came as float64,
    twice the memory for no difference in the probabilities."""

    classes: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def of(cls, model) -> LinearModel:
        return cls(classes=model.classes_, coef=np.ascontiguousarray(model.coef_.T, dtype=np.float32),
                   intercept=model.intercept_.astype(np.float32))

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
    nearest: np.ndarray  # index into `phrasings` of each entry's closest phrasing


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
        self._slots = _slots(self._by_owner, self._group_starts, self._group_sizes)
        # Each encoder's phrasing vectors as columns (dim × phrasings, contiguous): one question against
        # 20,000 phrasings reads them twice as fast in this layout as row by row (measured 4.2 vs 8 ms).
        self._columns = {name: np.ascontiguousarray(matrix.T) for name, matrix in vectors.items()}
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
            self._train(vectors)

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
            vectors={name: columns[:, mask].T for name, columns in self._columns.items()},
            entry_ids=self.entry_ids,
            train_classifier=self.classifier,
            answer_weight=self._answer_weight,
        )

    def vectors_of(self, rows: Sequence[int]) -> dict[str, np.ndarray]:
        """Each encoder's vectors of the given phrasings (to ask them as questions)."""
        return {name: columns[:, list(rows)].T for name, columns in self._columns.items()}

    def index_of(self, entry_id: str) -> int:
        return self._entry_index[entry_id]

    def _train(self, vectors: dict[str, np.ndarray]) -> None:
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
            for name, matrix in vectors.items():
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
                                         max_features=max(1000, CHAR_PARAMETER_BUDGET // classes), dtype=np.float32)
            features = vectorizer.fit_transform(texts)
            char_model = LogisticRegression(C=CHAR_C, solver=CHAR_SOLVER, max_iter=1000)
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
        cosines = [vectors[name] @ columns for name, columns in self._columns.items()]  # queries × phrasings
        cosine = np.mean(cosines, axis=0) * self._phrase_weight
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
            for name, sims in zip(self._columns, cosines):
                best = self._entry_best(sims * self._phrase_weight)
                weights = np.exp((best - best.max(axis=1, keepdims=True)) / NN_TEMPERATURE)
                parts[name] = weights / weights.sum(axis=1, keepdims=True)
        similarity, nearest = self._best_per_entry(cosine)
        results = []
        for q in range(count):
            own = {name: part[q] for name, part in parts.items() if not np.isnan(part[q][0])}
            results.append(SemanticScores(
                parts=own,
                similarity=similarity[q],
                nearest=nearest[q],
            ))
        return results

    def _group_best(self, values: np.ndarray, nearest: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """queries × phrasings → each entry group's maximum per query (queries × groups), and with
        `nearest` the phrasing holding it (of equal values the later phrasing wins).

        Cost grows with the FAQ: 20,000 phrasings at 10,000 entries. With slots, a running maximum over
        a few contiguous gathers; otherwise one `reduceat` over the phrasings grouped by entry (numpy's
        segment loop costs ~10 ns a value, 5-10× the slots at one or two phrasings an entry).
        """
        if self._slots is not None:
            best = values[:, self._slots[0]]
            holder = np.broadcast_to(self._slots[0], best.shape).copy() if nearest else None
            for row in self._slots[1:]:
                candidate = values[:, row]
                if holder is not None:
                    holder = np.where(candidate >= best, row, holder)
                best = np.maximum(best, candidate)
            return best, holder
        grouped = values[:, self._by_owner]
        maxima = np.maximum.reduceat(grouped, self._group_starts, axis=1)
        if not nearest:
            return maxima, None
        at_max = grouped == np.repeat(maxima, self._group_sizes, axis=1)
        positions = np.where(at_max, np.arange(grouped.shape[1]), -1)
        return maxima, self._by_owner[np.maximum.reduceat(positions, self._group_starts, axis=1)]

    def _entry_best(self, values: np.ndarray) -> np.ndarray:
        """queries × phrasings → queries × entries: each entry's best value, -1 without phrasings."""
        best = np.full((values.shape[0], len(self.entry_ids)), -1.0)
        if len(self._group_starts):
            best[:, self._group_entries] = self._group_best(values, nearest=False)[0]
        return best

    def _best_per_entry(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_entry_best`, and the phrasing holding each best value (-1 without phrasings; of equal
        values the later phrasing wins)."""
        best = np.full((values.shape[0], len(self.entry_ids)), -1.0)
        nearest = np.full(best.shape, -1, dtype=np.int64)
        if len(self._group_starts):
            best[:, self._group_entries], nearest[:, self._group_entries] = self._group_best(values, nearest=True)
        return best, nearest


def _slots(by_owner: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray | None:
    """The phrasings grouped by entry as slots × groups: slot s holds each entry's s-th phrasing, its
    last one repeated where it has fewer (a repeat cannot change a maximum, nor which phrasing holds it,
    since ties go to the later phrasing). None for entries of many phrasings (a small FAQ: one
    `reduceat` is cheaper than many small gathers there) or when padding would multiply the work (one
    entry with many more phrasings than the rest)."""
    if not len(starts) or sizes.max() > SLOT_MAX or len(starts) * int(sizes.max()) > SLOT_PADDING * len(by_owner):
        return None
    slot = np.minimum(np.arange(int(sizes.max()))[:, None], sizes[None, :] - 1)
    return by_owner[starts[None, :] + slot]
