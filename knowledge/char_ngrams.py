"""Character n-gram features (typos, word forms), applied with plain numpy.

Training fits scikit-learn's TfidfVectorizer (char_wb, sublinear tf, l2); what it learnt
(the vocabulary and the idf weights) is copied into `CharVectorizer`, which computes the
same features without scikit-learn. Importing scikit-learn takes 1.2 s (2 s beside the
encoders loading), which was the largest share of a warm start: a cached FAQ now opens
without it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WHITE_SPACES = re.compile(r"(?u)\s\s+")  # as scikit-learn's vectorizers collapse runs of spaces


@dataclass(frozen=True)
class SparseRows:
    """One row per text: the columns it has and their values (few of the vocabulary's many)."""

    columns: list[np.ndarray]
    values: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.columns)

    def __matmul__(self, matrix: np.ndarray) -> np.ndarray:
        """rows × matrix's columns (matrix: vocabulary × outputs)."""
        out = np.zeros((len(self.columns), matrix.shape[1]), dtype=np.float64)
        for row, (columns, values) in enumerate(zip(self.columns, self.values)):
            if len(columns):
                out[row] = values @ matrix[columns]
        return out


@dataclass(frozen=True)
class CharVectorizer:
    """TfidfVectorizer(analyzer="char_wb", sublinear_tf=True, norm="l2", lowercase=True), learnt already."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    min_n: int
    max_n: int

    @classmethod
    def of(cls, fitted) -> CharVectorizer:
        """Copy what a fitted scikit-learn TfidfVectorizer learnt (checked to be the settings this class computes)."""
        if (fitted.analyzer != "char_wb" or not fitted.sublinear_tf or fitted.norm != "l2" or not fitted.use_idf
                or not fitted.lowercase or fitted.strip_accents is not None or fitted.preprocessor is not None
                or fitted.binary):
            raise ValueError("CharVectorizer reproduces char_wb, sublinear tf, l2 norm, idf, lowercase only")
        vocabulary = {str(gram): int(column) for gram, column in fitted.vocabulary_.items()}
        return cls(vocabulary=vocabulary, idf=np.asarray(fitted.idf_, dtype=np.float64),
                   min_n=int(fitted.ngram_range[0]), max_n=int(fitted.ngram_range[1]))

    def transform(self, texts: Sequence[str]) -> SparseRows:
        columns, values = [], []
        for text in texts:
            counts = Counter(column for gram in self._grams(text.lower())
                             if (column := self.vocabulary.get(gram)) is not None)
            found = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            weights = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64,
                                  count=len(counts)) * self.idf[found]
            norm = float(np.sqrt(weights @ weights))
            columns.append(found)
            values.append(weights / norm if norm > 0 else weights)
        return SparseRows(columns, values)

    def _grams(self, text: str) -> list[str]:
        """scikit-learn's `_char_wb_ngrams`: n-grams inside each space-padded word."""
        grams: list[str] = []
        for word in _WHITE_SPACES.sub(" ", text).split():
            word = f" {word} "
            length = len(word)
            for n in range(self.min_n, self.max_n + 1):
                offset = 0
                grams.append(word[offset:offset + n])
                while offset + n < length:
                    offset += 1
                    grams.append(word[offset:offset + n])
                if offset == 0:  # a word shorter than n counts once
                    break
        return grams
