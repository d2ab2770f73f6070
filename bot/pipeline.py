"""One turn: stored inbound message → language → retrieval → responder → stored reply.

Each stage is a small object that reads and fills the `Turn`; later capabilities
(sentiment, handoff, an LLM responder) are new stages, and adapters never notice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.concurrency import run_blocking
from bot.language import LanguageDetector, LanguageGuess
from bot.messages import Reply
from bot.responder import Draft, Responder
from bot.store import ConversationState, Store, StoredInbound
from knowledge.faq import FaqBase
from knowledge.search import FaqSearch, Hit
from knowledge.service import KnowledgeBase

log = logging.getLogger(__name__)


@dataclass
class Turn:
    """What the stages know about the message being answered."""

    inbound: StoredInbound
    conversation: ConversationState
    language: LanguageGuess | None = None
    faq: FaqBase | None = None
    hits: list[Hit] = field(default_factory=list)
    draft: Draft | None = None
    trace: dict[str, Any] = field(default_factory=dict)  # stored with the reply: why it was answered so


class Stage(Protocol):
    name: str

    async def run(self, turn: Turn) -> None: ...


class LanguageStage:
    name = "language"

    def __init__(self, detector: LanguageDetector, store: Store):
        self._detector = detector
        self._store = store

    async def run(self, turn: Turn) -> None:
        conversation = turn.conversation
        if conversation.language_locked and conversation.language:
            turn.language = LanguageGuess(conversation.language, 1.0, "chosen by the shopper")
            turn.trace["language"] = {"language": conversation.language, "confidence": 1.0,
                                      "reason": turn.language.reason}
            return
        guess = await run_blocking(
            self._detector.detect,
            turn.inbound.text,
            conversation_language=turn.conversation.language,
            hint=turn.inbound.language_hint,
        )
        turn.language = guess
        turn.trace["language"] = {"language": guess.language, "confidence": guess.confidence, "reason": guess.reason}
        if guess.language != turn.conversation.language:
            await self._store.set_conversation_language(turn.conversation.key, guess.language)


class RetrievalStage:
    """Ranks FAQ entries; a short follow-up that matches nothing well alone is searched with the previous question."""

    name = "retrieval"

    def __init__(self, knowledge: KnowledgeBase, store: Store, *, limit: int, answer_threshold: float,
                 followup_max_words: int):
        self._knowledge = knowledge
        self._store = store
        self._limit = limit
        self._answer_threshold = answer_threshold
        self._followup_max_words = followup_max_words

    async def run(self, turn: Turn) -> None:
        search = self._knowledge.current
        assert search is not None, "knowledge is started before turns run"
        turn.faq = search.faq  # one FAQ version for the whole turn, even if a reload swaps it meanwhile
        language = turn.language.language if turn.language else None

        async def previous() -> str | None:
            return await self._store.previous_shopper_text(turn.inbound.conversation_key, turn.inbound.id)

        turn.hits, context = await retrieve_with_context(
            search, turn.inbound.text, previous, language=language, limit=self._limit,
            answer_threshold=self._answer_threshold, followup_max_words=self._followup_max_words,
        )
        if context:
            turn.trace["context"] = {"previous": context,
                                     "reason": "short follow-up searched together with the previous question"}
        turn.trace["retrieval"] = [
            {"faq_id": hit.entry.id, "score": hit.score, "keyword_score": hit.keyword_score,
             "semantic_score": hit.semantic_score, "why": hit.why}
            for hit in turn.hits
        ]


async def retrieve_with_context(
    search: FaqSearch,
    text: str,
    previous: Callable[[], Awaitable[str | None]],
    *,
    language: str | None,
    limit: int,
    answer_threshold: float,
    followup_max_words: int,
) -> tuple[list[Hit], str | None]:
    """Search the message; a short one that matches nothing confidently is tried with the previous question.

    A short message that stands on its own ("thanks", "alipay?") is answered as it is;
    "why?" after "my payment failed" is searched as "my payment failed why?". Returns the
    hits and the previous question when it was used. (Measured on bench/data/followups.csv:
    trying the combined text only when the message alone is not confident is right more
    often than always preferring the combined text, which the previous question dominates.)
    """
    hits = await search.search(text, language=language, limit=limit)
    if _confident(hits, answer_threshold) or not is_short(text, followup_max_words):
        return hits, None
    earlier = await previous()
    if not earlier:
        return hits, None
    combined = await search.search(f"{earlier} {text}", language=language, limit=limit)
    if _confident(combined, answer_threshold):
        return combined, earlier
    return hits, None


def _confident(hits: list[Hit], answer_threshold: float) -> bool:
    return bool(hits) and hits[0].score >= answer_threshold


def is_short(text: str, max_words: int) -> bool:
    """Too short to stand alone: few words, or few characters in scripts written without spaces."""
    spaceless = sum(1 for ch in text if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    if spaceless:
        return spaceless <= 2 * max_words + 1
    return len(text.split()) <= max_words


class ResponderStage:
    name = "responder"

    def __init__(self, responder: Responder, default_language: str):
        self._responder = responder
        self._default_language = default_language

    async def run(self, turn: Turn) -> None:
        language = turn.language.language if turn.language else self._default_language
        assert turn.faq is not None, "the retrieval stage runs before the responder"
        turn.draft = await self._responder.respond(question=turn.inbound.text, language=language, hits=turn.hits,
                                                   faq=turn.faq)


class Pipeline:
    """Runs the stages for one stored inbound message and stores the reply."""

    def __init__(self, *, store: Store, stages: Sequence[Stage], pushes: Callable[[str], bool]):
        self._store = store
        self._stages = tuple(stages)
        self._pushes = pushes

    async def run(self, inbound: StoredInbound) -> Reply:
        started = time.perf_counter()
        conversation = await self._store.conversation(inbound.conversation_key)
        if conversation is None:
            raise LookupError(f"conversation {inbound.conversation_key} of message {inbound.id} is missing")
        turn = Turn(inbound=inbound, conversation=conversation)
        timings: dict[str, float] = {}
        for stage in self._stages:
            stage_started = time.perf_counter()
            await stage.run(turn)
            timings[stage.name] = round((time.perf_counter() - stage_started) * 1000, 2)
        if turn.draft is None:
            raise RuntimeError("no stage produced a reply draft")
        turn.trace["timings_ms"] = timings
        draft = turn.draft
        reply = Reply(
            channel=inbound.channel,
            conversation=inbound.conversation,
            user_id=inbound.user_id,
            text=draft.text,
            language=draft.language,
            kind=draft.kind,
            quick_replies=draft.quick_replies,
            faq_ids=draft.faq_ids,
            confidence=draft.confidence,
            why=draft.why,
            in_reply_to=inbound.id,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        stored = await self._store.record_reply(
            inbound.id, reply, latency_ms=latency_ms, deliver=self._pushes(inbound.channel), meta=turn.trace
        )
        log.info(
            "turn.answered conversation=%s inbound=%d kind=%s faq=%s latency_ms=%.1f",
            inbound.conversation_key, inbound.id, stored.kind.value, ",".join(stored.faq_ids) or "-", latency_ms,
        )
        return stored
