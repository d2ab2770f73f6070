"""The whoosh keyword index over FAQ phrasings and answers.

One text field per enabled language, each with that language's stop words and
stemmer where whoosh has them; Chinese, Japanese, Korean and Thai runs (written
without spaces) become overlapping character bigrams. A query is analyzed by
every field's analyzer and built as plain terms, never parsed as query syntax:
shopper text is data. The index lives on disk and is rebuilt only when the FAQ
files change (their content hash) or this module's schema changes.

All methods block (file I/O); call them through `run_blocking`.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh import lang as whoosh_lang
from whoosh.analysis import Analyzer, LowercaseFilter, StemFilter, StopFilter, Token, Tokenizer
from whoosh.fields import ID, STORED, TEXT, Schema
from whoosh.query import Or, Term

from knowledge.faq import FaqBase

log = logging.getLogger(__name__)

SCHEMA_VERSION = "kefu-keyword-v1"
_SCRIPT_RUNS = re.compile(
    r"([\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+)|(\w+)"
)
QUESTION = "question"
ANSWER = "answer"
ANSWER_WEIGHT = 0.6  # a match found only in an answer is weaker evidence than one in a question


class MixedScriptTokenizer(Tokenizer):
    """Words for scripts with spaces, character bigrams for scripts without."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MixedScriptTokenizer)

    def __hash__(self) -> int:
        return hash(type(self))

    def __call__(self, value, positions=False, chars=False, keeporiginal=False, removestops=True,
                 start_pos=0, start_char=0, tokenize=True, mode="", **kwargs):
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        pos = start_pos
        for match in _SCRIPT_RUNS.finditer(value):
            run = match.group(0)
            if match.group(1):
                pieces = [(i, run[i:i + 2]) for i in range(max(1, len(run) - 1))]
            else:
                pieces = [(0, run)]
            for offset, text in pieces:
                token.text = text
                token.boost = 1.0
                token.stopped = False
                if keeporiginal:
                    token.original = text
                if positions:
                    token.pos = pos
                if chars:
                    token.startchar = start_char + match.start() + offset
                    token.endchar = token.startchar + len(text)
                pos += 1
                yield token


def language_analyzer(language: str) -> Analyzer:
    analyzer = MixedScriptTokenizer() | LowercaseFilter()
    if whoosh_lang.has_stopwords(language):
        analyzer = analyzer | StopFilter(lang=language)
    if whoosh_lang.has_stemmer(language):
        analyzer = analyzer | StemFilter(lang=language)
    return analyzer


def field_name(language: str) -> str:
    return f"text_{language}"


@dataclass(frozen=True)
class KeywordHit:
    """The best-matching phrasing of one entry, with the evidence."""

    entry_id: str
    confidence: float  # 0..1: IDF-weighted share of query and phrasing terms that match
    bm25: float
    matched_text: str
    language: str
    kind: str  # "question" (a phrasing) or "answer"
    matched_terms: tuple[str, ...]


class KeywordIndex:
    def __init__(self, directory: Path, languages: tuple[str, ...]):
        self.directory = directory
        self.languages = languages
        self._analyzers = {lang: language_analyzer(lang) for lang in languages}
        self._index: whoosh_index.Index | None = None
        # The index never changes once built, so searchers, document terms and IDFs are reused.
        self._local = threading.local()
        self._searchers: list = []
        self._lock = threading.Lock()
        self._doc_terms: dict[int, set[str]] = {}
        self._idf: dict[tuple[str, str], float] = {}

    def _marker(self, faq: FaqBase) -> str:
        return f"{SCHEMA_VERSION} {','.join(self.languages)} {faq.content_hash}"

    def open_or_build(self, faq: FaqBase) -> bool:
        """Open the index on disk, rebuilding it if the FAQ changed; True when rebuilt."""
        marker_file = self.directory / "faq.marker"
        if whoosh_index.exists_in(str(self.directory)) and marker_file.exists():
            if marker_file.read_text(encoding="utf-8") == self._marker(faq):
                self._index = whoosh_index.open_dir(str(self.directory))
                return False
        self._build(faq, marker_file)
        return True

    def _build(self, faq: FaqBase, marker_file: Path) -> None:
        # Build beside the live index and swap, so a crash never leaves half an index.
        staging = self.directory.with_name(self.directory.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        schema = Schema(
            entry_id=ID(stored=True),
            language=ID(stored=True),
            kind=ID(stored=True),
            original=STORED(),
            **{field_name(lang): TEXT(analyzer=self._analyzers[lang]) for lang in self.languages},
        )
        ix = whoosh_index.create_in(str(staging), schema)
        writer = ix.writer()
        for entry in faq.entries:
            for lang, variant in entry.variants.items():
                for phrasing in variant.questions:
                    writer.add_document(entry_id=entry.id, language=lang, kind=QUESTION, original=phrasing,
                                        **{field_name(lang): phrasing})
                writer.add_document(entry_id=entry.id, language=lang, kind=ANSWER, original=variant.answer,
                                    **{field_name(lang): variant.answer})
        writer.commit()
        ix.close()
        (staging / "faq.marker").write_text(self._marker(faq), encoding="utf-8")
        shutil.rmtree(self.directory, ignore_errors=True)
        staging.rename(self.directory)
        self._index = whoosh_index.open_dir(str(self.directory))
        log.info("keyword.index_built entries=%d dir=%s", len(faq.entries), self.directory)

    def analyze(self, text: str, language: str) -> list[str]:
        return [token.text for token in self._analyzers[language](text)]

    def search(self, query: str, limit: int = 10) -> list[KeywordHit]:
        """Entries whose phrasings or answers share terms with `query`, best first."""
        if self._index is None:
            raise RuntimeError("KeywordIndex.open_or_build() must run before search()")
        terms_by_field = {field_name(lang): set(self.analyze(query, lang)) for lang in self.languages}
        clauses = [Term(name, term) for name, terms in terms_by_field.items() for term in sorted(terms)]
        if not clauses:
            return []
        best: dict[str, KeywordHit] = {}
        searcher = self._searcher()
        results = searcher.search(Or(clauses), limit=max(30, limit * 3), terms=True)
        for hit in results:
            language = hit["language"]
            name = field_name(language)
            query_terms = terms_by_field[name]
            matched = {term.decode() if isinstance(term, bytes) else term
                       for fname, term in hit.matched_terms() if fname == name}
            if not matched:
                continue
            doc_terms = self._doc_terms.get(hit.docnum)
            if doc_terms is None:
                doc_terms = self._doc_terms.setdefault(hit.docnum, set(self.analyze(hit["original"], language)))
            idf = {term: self._term_idf(searcher, name, term) for term in query_terms | doc_terms}
            query_cover = _weighted_share(matched & query_terms, query_terms, idf)
            doc_cover = _weighted_share(matched & doc_terms, doc_terms, idf)
            if hit["kind"] == QUESTION:
                confidence = query_cover ** 0.6 * doc_cover ** 0.4
            else:
                confidence = ANSWER_WEIGHT * query_cover
            candidate = KeywordHit(
                entry_id=hit["entry_id"],
                confidence=round(confidence, 4),
                bm25=round(float(hit.score), 4),
                matched_text=hit["original"],
                language=language,
                kind=hit["kind"],
                matched_terms=tuple(sorted(matched)),
            )
            current = best.get(candidate.entry_id)
            if current is None or (candidate.confidence, candidate.bm25) > (current.confidence, current.bm25):
                best[candidate.entry_id] = candidate
        ranked = sorted(best.values(), key=lambda h: (-h.confidence, -h.bm25, h.entry_id))
        return ranked[:limit]

    def _searcher(self):
        """One searcher per thread (whoosh searchers are not shared between threads)."""
        searcher = getattr(self._local, "searcher", None)
        if searcher is None:
            searcher = self._index.searcher()
            self._local.searcher = searcher
            with self._lock:
                self._searchers.append(searcher)
        return searcher

    def _term_idf(self, searcher, field: str, term: str) -> float:
        key = (field, term)
        if key not in self._idf:
            self._idf[key] = searcher.idf(field, term)
        return self._idf[key]

    def close(self) -> None:
        with self._lock:
            for searcher in self._searchers:
                searcher.close()
            self._searchers.clear()
        if self._index is not None:
            self._index.close()
            self._index = None


def _weighted_share(part: set[str], whole: set[str], idf: dict[str, float]) -> float:
    total = sum(max(idf.get(t, 0.0), 1e-6) for t in whole)
    if total <= 0 or math.isclose(total, 0.0):
        return 0.0
    return min(1.0, sum(max(idf.get(t, 0.0), 1e-6) for t in part) / total)
