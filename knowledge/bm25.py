"""BM25F over a fixed set of analysed documents, stored as column arrays.

The keyword index never changes once built, so every posting's BM25 contribution is
computed at build time and a query only adds its terms' columns into one score vector:
a few numpy operations instead of whoosh's Python loop over postings (1.6–2.2 ms per
question alone, which kept a 10,000-entry turn above 1.3× its floor).

The scores are whoosh's BM25F (K1 = 1.2, B = 0.75; idf = log(N / (df + 1)) + 1 over all
N documents; a document's field length quantized to whoosh's one-byte lengths; the
average field length over all N documents), so rankings tuned on the whoosh index
carry over unchanged; tests/test_keyword.py checks scores and order against a real
whoosh index built from the same FAQ.

Each field (one per language) is a compressed sparse column matrix: for term j,
`docs[indptr[j]:indptr[j + 1]]` are the documents holding it, in ascending order, and
`scores[...]` its BM25 contribution in each.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from whoosh.util.numeric import byte_to_length, length_to_byte

K1 = 1.2
B = 0.75
MIN_WEIGHT = 1e-6  # a term every document has still counts a little towards coverage
ARRAYS_FILE = "bm25.npz"
VOCABULARY_FILE = "bm25.json"


@dataclass(frozen=True)
class FieldPostings:
    """One field's terms and, for each, the documents holding it with their BM25 scores."""

    vocabulary: dict[str, int]  # term → its column
    idf: np.ndarray  # float64 per column
    indptr: np.ndarray  # int64, one more than the columns
    docs: np.ndarray  # int32 document numbers, ascending within a column
    scores: np.ndarray  # float64 BM25 contribution of the column's term in that document

    def column(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        j = self.vocabulary.get(term)
        if j is None:
            return None
        start, end = self.indptr[j], self.indptr[j + 1]
        return self.docs[start:end], self.scores[start:end]


@dataclass(frozen=True)
class ScoredDocument:
    docnum: int
    score: float
    matched_terms: frozenset[str]  # the query's terms this document holds (in its own field)


@dataclass(frozen=True)
class Bm25Index:
    doc_count: int
    fields: dict[str, FieldPostings]
    doc_weights: np.ndarray  # per document: the summed weight of its distinct terms

    @classmethod
    def build(cls, documents: list[tuple[str, list[str]]]) -> Bm25Index:
        """Index documents given as (field, analysed tokens), numbered in the order given."""
        doc_count = len(documents)
        counts = [Counter(tokens) for _, tokens in documents]
        by_field: dict[str, list[int]] = {}
        for docnum, (field, _) in enumerate(documents):
            by_field.setdefault(field, []).append(docnum)
        fields = {field: _field_postings(docnums, counts, doc_count, documents) for field, docnums in by_field.items()}
        doc_weights = np.zeros(doc_count, dtype=np.float64)
        for docnum, (field, _) in enumerate(documents):
            postings = fields[field]
            doc_weights[docnum] = sum(max(float(postings.idf[postings.vocabulary[t]]), MIN_WEIGHT) for t in counts[docnum])
        return cls(doc_count=doc_count, fields=fields, doc_weights=doc_weights)

    def idf(self, field: str, term: str) -> float:
        postings = self.fields.get(field)
        j = None if postings is None else postings.vocabulary.get(term)
        if j is None:  # a term no document of this field holds: df = 0
            return math.log(self.doc_count / 1) + 1 if self.doc_count else 0.0
        return float(postings.idf[j])

    def weight(self, field: str, terms: set[str] | frozenset[str]) -> float:
        """The terms' summed IDF, each at least MIN_WEIGHT."""
        return sum(max(self.idf(field, term), MIN_WEIGHT) for term in terms)

    def top(self, terms_by_field: dict[str, set[str]], limit: int) -> list[ScoredDocument]:
        """The `limit` best documents by summed BM25 of the query terms, ties by document number."""
        scores = np.zeros(self.doc_count, dtype=np.float64)
        columns: list[tuple[str, np.ndarray]] = []
        for field, terms in terms_by_field.items():
            postings = self.fields.get(field)
            if postings is None:
                continue
            for term in sorted(terms):
                column = postings.column(term)
                if column is None:
                    continue
                docs, term_scores = column
                scores[docs] += term_scores  # a column's documents are distinct, so fancy += is exact
                columns.append((term, docs))
        if not columns:
            return []
        touched = np.flatnonzero(scores)
        if len(touched) > limit:
            threshold = np.partition(scores[touched], len(touched) - limit)[len(touched) - limit]
            touched = touched[scores[touched] >= threshold]  # keeps every tie at the cut
        order = np.lexsort((touched, -scores[touched]))[:limit]
        best = touched[order]
        ascending = np.sort(best)
        matched: dict[int, set[str]] = {int(d): set() for d in best}
        for term, docs in columns:
            positions = np.minimum(np.searchsorted(docs, ascending), len(docs) - 1)
            for docnum in ascending[docs[positions] == ascending]:
                matched[int(docnum)].add(term)
        return [ScoredDocument(int(d), float(scores[d]), frozenset(matched[int(d)])) for d in best]

    def save(self, folder: Path) -> None:
        names = sorted(self.fields)
        arrays: dict[str, np.ndarray] = {"doc_weights": self.doc_weights}
        for i, name in enumerate(names):
            postings = self.fields[name]
            arrays.update({f"f{i}_idf": postings.idf, f"f{i}_indptr": postings.indptr,
                           f"f{i}_docs": postings.docs, f"f{i}_scores": postings.scores})
        np.savez(folder / ARRAYS_FILE, **arrays)
        vocabulary = {name: sorted(self.fields[name].vocabulary, key=self.fields[name].vocabulary.get)
                      for name in names}
        text = json.dumps({"doc_count": self.doc_count, "fields": names, "vocabulary": vocabulary},
                          ensure_ascii=False)
        (folder / VOCABULARY_FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Bm25Index:
        meta = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
            fields = {
                name: FieldPostings(
                    vocabulary={term: j for j, term in enumerate(meta["vocabulary"][name])},
                    idf=arrays[f"f{i}_idf"], indptr=arrays[f"f{i}_indptr"],
                    docs=arrays[f"f{i}_docs"], scores=arrays[f"f{i}_scores"],
                )
                for i, name in enumerate(meta["fields"])
            }
            doc_weights = arrays["doc_weights"]
        if len(doc_weights) != meta["doc_count"]:
            raise ValueError(f"{folder}: {len(doc_weights)} document weights for {meta['doc_count']} documents")
        return cls(doc_count=meta["doc_count"], fields=fields, doc_weights=doc_weights)


def _field_postings(docnums: list[int], counts: list[Counter], doc_count: int,
                    documents: list[tuple[str, list[str]]]) -> FieldPostings:
    """One field's columns, scored with whoosh's BM25F (see the module docstring)."""
    total_length = sum(len(documents[d][1]) for d in docnums)
    average_length = (total_length / doc_count if doc_count else 0.0) or 1.0
    # Each document's length normalisation, with whoosh's one-byte quantized length.
    norms = {d: K1 * ((1 - B) + B * (byte_to_length(length_to_byte(len(documents[d][1]))) or 1) / average_length)
             for d in docnums}
    postings: dict[str, list[tuple[int, int]]] = {}
    for docnum in docnums:
        for term, tf in counts[docnum].items():
            postings.setdefault(term, []).append((docnum, tf))
    vocabulary = {term: j for j, term in enumerate(sorted(postings))}
    idf = np.array([math.log(doc_count / (len(postings[t]) + 1)) + 1 for t in vocabulary], dtype=np.float64)
    indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
    docs: list[int] = []
    scores: list[float] = []
    for term, j in vocabulary.items():
        for docnum, tf in postings[term]:  # ascending: documents were visited in order
            docs.append(docnum)
            scores.append(float(idf[j]) * tf * (K1 + 1) / (tf + norms[docnum]))
        indptr[j + 1] = len(docs)
    return FieldPostings(vocabulary=vocabulary, idf=idf, indptr=indptr,
                         docs=np.array(docs, dtype=np.int32), scores=np.array(scores, dtype=np.float64))
