"""The whoosh keyword index over FAQ phrasings and answers.

One text field per enabled language, each with that language's stop words and
stemmer where whoosh has them; Chinese, Japanese, Korean and Thai runs (written
without spaces) become overlapping character bigrams. A query is analyzed by
every field's analyzer and built as plain terms, never parsed as query syntax:
shopper text is data.

The index lives on disk, one folder per version under a root folder: the folder's
name is a hash of this module's schema version, the languages and the FAQ's content
hash, so it is built once per version and any process (a `kefu serve`, a `kefu faq
ask`, another shop) that needs the same version reuses it. Folders are built aside
and published whole, never written again, and held while used (see
knowledge/index_folders.py), so one process never rebuilds or deletes the index
another is searching.

All methods block (file I/O); call them through `run_blocking`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh import lang as whoosh_lang
from whoosh.analysis import Analyzer, LowercaseFilter, StemFilter, StopFilter, Token, Tokenizer
from whoosh.fields import ID, STORED, TEXT, Schema
from whoosh.query import Or, Term

from knowledge.faq import FaqBase
from knowledge.index_folders import (
    FolderHold,
    IndexFolderError,
    discard,
    hold,
    publish,
    remove_if_unheld,
    stage,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = "kefu-keyword-v1"
_SCRIPT_RUNS = re.compile(
    r"([\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+)|(\w+)"
)
QUESTION = "question"
ANSWER = "answer"
MARKER_FILE = "faq.marker"  # written last into a staging folder: present means complete
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
    """The keyword index of one FAQ version, in its own folder under `root`."""

    def __init__(self, root: Path, languages: tuple[str, ...]):
        self.root = root
        self.languages = languages
        self.directory: Path | None = None  # the version's folder, once opened
        self._analyzers = {lang: language_analyzer(lang) for lang in languages}
        self._index: whoosh_index.Index | None = None
        self._hold: FolderHold | None = None
        # The index never changes once built, so searchers, document terms and IDFs are reused.
        self._local = threading.local()
        self._searchers: list = []
        self._lock = threading.Lock()
        self._doc_terms: dict[int, tuple[set[str], float]] = {}  # docnum → its terms, their weight
        self._idf: dict[tuple[str, str], float] = {}

    def _marker(self, faq: FaqBase) -> str:
        return f"{SCHEMA_VERSION} {','.join(self.languages)} {faq.content_hash}"

    def folder_for(self, faq: FaqBase) -> Path:
        """The folder of this FAQ version: everything that changes the index is in its name."""
        return self.root / hashlib.sha256(self._marker(faq).encode("utf-8")).hexdigest()[:16]

    def open_or_build(self, faq: FaqBase, *, attempts: int = 3) -> bool:
        """Hold and open this version's folder, building and publishing it first if absent; True when built."""
        self.close()
        marker = self._marker(faq)
        target = self.folder_for(faq)
        for _ in range(attempts):
            held = hold(target)
            if held is not None:
                if _read_marker(target) == marker:
                    self._open(held)
                    return False
                # Published folders are complete by construction: this one is damaged or foreign.
                held.release()
                log.error("keyword.index_damaged dir=%s (no matching faq.marker); removing it", target)
                if not remove_if_unheld(target):
                    raise IndexFolderError(f"{target}: damaged keyword index is in use by another process")
                continue
            staging = stage(self.root, target.name)
            try:
                self._write(staging.folder, faq, marker)
            except BaseException:
                discard(staging)
                raise
            if publish(staging, target):
                log.info("keyword.index_built entries=%d dir=%s", len(faq.entries), target)
                self._open(staging)
                return True
            # Another process published the same version first: use theirs.
        raise IndexFolderError(f"{target}: could not open or build the keyword index in {attempts} attempts")

    def _open(self, held: FolderHold) -> None:
        self._hold = held
        self.directory = held.folder
        self._index = whoosh_index.open_dir(str(held.folder), readonly=True)

    def _write(self, folder: Path, faq: FaqBase, marker: str) -> None:
        schema = Schema(
            entry_id=ID(stored=True),
            language=ID(stored=True),
            kind=ID(stored=True),
            original=STORED(),
            **{field_name(lang): TEXT(analyzer=self._analyzers[lang]) for lang in self.languages},
        )
        ix = whoosh_index.create_in(str(folder), schema)
        writer = ix.writer()
        for entry in faq.entries:
            for lang, variant in entry.variants.items():
                for phrasing in variant.questions:
                    writer.add_document(entry_id=entry.id, language=lang, kind=QUESTION, original=phrasing,
                                        **{field_name(lang): phrasing})
                writer.add_document(entry_id=entry.id, language=lang, kind=ANSWER, original=variant.answer,
                                    **{field_name(lang): variant.answer})
            for lang, phrasing in entry.more_questions:
                if lang in self._analyzers:  # reviewed phrasings in a language the index analyses
                    writer.add_document(entry_id=entry.id, language=lang, kind=QUESTION, original=phrasing,
                                        **{field_name(lang): phrasing})
        writer.commit()
        ix.close()
        (folder / MARKER_FILE).write_text(marker, encoding="utf-8")  # last: its presence means complete

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
        query_weights: dict[str, float] = {}  # field → the query's terms' total weight
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
            doc_terms, doc_weight = self._doc_weights(searcher, hit.docnum, name, hit["original"], language)
            if name not in query_weights:
                query_weights[name] = self._weight(searcher, name, query_terms)
            query_cover = _share(self._weight(searcher, name, matched & query_terms), query_weights[name])
            doc_cover = _share(self._weight(searcher, name, matched & doc_terms), doc_weight)
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

    def _weight(self, searcher, field: str, terms: set[str]) -> float:
        """The terms' summed IDF (each at least 1e-6, so a term every phrasing has still counts)."""
        return sum(max(self._term_idf(searcher, field, term), 1e-6) for term in terms)

    def _doc_weights(self, searcher, docnum: int, field: str, original: str, language: str) -> tuple[set[str], float]:
        """A phrasing's terms and their total weight, computed once: the index never changes."""
        cached = self._doc_terms.get(docnum)
        if cached is None:
            terms = set(self.analyze(original, language))
            cached = self._doc_terms.setdefault(docnum, (terms, self._weight(searcher, field, terms)))
        return cached

    def close(self) -> None:
        """Close the searchers and release the folder, so a sweep may delete it.

        Safe to call twice, also from two threads at once (a stop racing a retiring reload).
        """
        with self._lock:
            for searcher in self._searchers:
                searcher.close()
            self._searchers.clear()
            self._local = threading.local()
            self._doc_terms.clear()
            self._idf.clear()
            if self._index is not None:
                self._index.close()
                self._index = None
            if self._hold is not None:
                self._hold.release()
                self._hold = None
            self.directory = None


def _read_marker(folder: Path) -> str | None:
    try:
        return (folder / MARKER_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _share(part: float, whole: float) -> float:
    """The weight of the matched terms as a share of all the terms' (0 when there are none)."""
    if whole <= 0:
        return 0.0
    return min(1.0, part / whole)
