"""The keyword index over FAQ phrasings and answers.

One text field per enabled language, analysed with whoosh's analyzers: that
language's stop words and stemmer where whoosh has them; Chinese, Japanese, Korean
and Thai runs (written without spaces) become overlapping character bigrams. A query
is analysed by every field's analyzer into plain terms, never parsed as query
syntax: shopper text is data. Scoring is whoosh's BM25F, precomputed into column
arrays (knowledge/bm25.py), so a query costs a few numpy operations.

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
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from whoosh import lang as whoosh_lang
from whoosh.analysis import Analyzer, LowercaseFilter, StemFilter, StopFilter, Token, Tokenizer

from knowledge.bm25 import Bm25Index
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

# v2: BM25 column arrays instead of a whoosh index; v3: a Latin word glued to Chinese is a word of its own
SCHEMA_VERSION = "kefu-keyword-v3"
_SPACELESS_SCRIPTS = r"\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# "可以用paypal付款吗" is "可以用", "paypal" and "付款吗": \w alone would run "paypal付款吗" into one term.
_SCRIPT_RUNS = re.compile(rf"([{_SPACELESS_SCRIPTS}]+)|([^\W{_SPACELESS_SCRIPTS}]+)")
QUESTION = "question"
ANSWER = "answer"
MARKER_FILE = "faq.marker"  # written last into a staging folder: present means complete
DOCUMENTS_FILE = "documents.json"  # each document's entry, language, kind and text, by number
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


@dataclass(frozen=True)
class IndexedDocument:
    """One phrasing or answer of an entry, in one language: what a search hit names."""

    entry_id: str
    language: str
    kind: str  # QUESTION or ANSWER
    original: str


class KeywordIndex:
    """The keyword index of one FAQ version, in its own folder under `root`."""

    def __init__(self, root: Path, languages: tuple[str, ...]):
        self.root = root
        self.languages = languages
        self.directory: Path | None = None  # the version's folder, once opened
        self._analyzers = {lang: language_analyzer(lang) for lang in languages}
        self._documents: list[IndexedDocument] = []
        self._bm25: Bm25Index | None = None
        self._hold: FolderHold | None = None
        self._lock = threading.Lock()

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
        try:
            rows = json.loads((held.folder / DOCUMENTS_FILE).read_text(encoding="utf-8"))
            bm25 = Bm25Index.load(held.folder)
        except BaseException:
            held.release()
            raise
        if len(rows) != bm25.doc_count:
            held.release()
            raise IndexFolderError(f"{held.folder}: {len(rows)} documents but {bm25.doc_count} indexed")
        self._documents = [IndexedDocument(*row) for row in rows]
        self._bm25 = bm25
        self._hold = held
        self.directory = held.folder

    def _write(self, folder: Path, faq: FaqBase, marker: str) -> None:
        documents = self.documents_of(faq)
        Bm25Index.build([(field_name(d.language), self.analyze(d.original, d.language)) for d in documents]).save(folder)
        rows = [[d.entry_id, d.language, d.kind, d.original] for d in documents]
        (folder / DOCUMENTS_FILE).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        (folder / MARKER_FILE).write_text(marker, encoding="utf-8")  # last: its presence means complete

    def documents_of(self, faq: FaqBase) -> list[IndexedDocument]:
        """Every phrasing and answer the index holds, in document-number order."""
        documents: list[IndexedDocument] = []
        for entry in faq.entries:
            for lang, variant in entry.variants.items():
                documents.extend(IndexedDocument(entry.id, lang, QUESTION, q) for q in variant.questions)
                documents.append(IndexedDocument(entry.id, lang, ANSWER, variant.answer))
            for lang, phrasing in entry.more_questions:
                if lang in self._analyzers:  # reviewed phrasings in a language the index analyses
                    documents.append(IndexedDocument(entry.id, lang, QUESTION, phrasing))
        return documents

    def analyze(self, text: str, language: str) -> list[str]:
        return [token.text for token in self._analyzers[language](text)]

    def search(self, query: str, limit: int = 10) -> list[KeywordHit]:
        """Entries whose phrasings or answers share terms with `query`, best first."""
        bm25 = self._bm25
        if bm25 is None:
            raise RuntimeError("KeywordIndex.open_or_build() must run before search()")
        terms_by_field = {field_name(lang): set(self.analyze(query, lang)) for lang in self.languages}
        best: dict[str, KeywordHit] = {}
        query_weights: dict[str, float] = {}  # field → the query's terms' total weight
        for scored in bm25.top(terms_by_field, limit=max(30, limit * 3)):
            document = self._documents[scored.docnum]
            name = field_name(document.language)
            matched = scored.matched_terms
            if name not in query_weights:
                query_weights[name] = bm25.weight(name, terms_by_field[name])
            matched_weight = bm25.weight(name, matched)
            query_cover = _share(matched_weight, query_weights[name])
            doc_cover = _share(matched_weight, float(bm25.doc_weights[scored.docnum]))
            if document.kind == QUESTION:
                confidence = query_cover ** 0.6 * doc_cover ** 0.4
            else:
                confidence = ANSWER_WEIGHT * query_cover
            candidate = KeywordHit(
                entry_id=document.entry_id,
                confidence=round(confidence, 4),
                bm25=round(scored.score, 4),
                matched_text=document.original,
                language=document.language,
                kind=document.kind,
                matched_terms=tuple(sorted(matched)),
            )
            current = best.get(candidate.entry_id)
            if current is None or (candidate.confidence, candidate.bm25) > (current.confidence, current.bm25):
                best[candidate.entry_id] = candidate
        ranked = sorted(best.values(), key=lambda h: (-h.confidence, -h.bm25, h.entry_id))
        return ranked[:limit]

    def close(self) -> None:
        """Drop the arrays and release the folder, so a sweep may delete it.

        Safe to call twice, also from two threads at once (a stop racing a retiring reload).
        """
        with self._lock:
            self._bm25 = None
            self._documents = []
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
