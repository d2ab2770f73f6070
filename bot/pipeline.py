"""One turn: stored inbound message → language → retrieval → sentiment → handoff → responder → stored reply.

Each stage is a small object that reads and fills the `Turn`; adapters never
notice a new one. While a person handles the conversation the turn ends after the
handoff stage: the message is stored as forwarded to the agents and the bot stays silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bot.handoff.agents import HandoffNotices
from bot.concurrency import run_blocking
from bot.dispatcher import TurnOutcome
from bot.handoff import (Action, HandoffDecision, HandoffPolicy, HandoffReason, HandoffSignals, decide,
                         faq_answers_the_wording)
from bot.handoff.store import HandoffStore
from bot.language.detector import LanguageDetector, LanguageGuess, reply_language
from bot.llm import GenerationError
from bot.messages import HandoffState, Link, Reply, ReplyKind
from bot.metrics import FORWARDED, Metrics
from bot.responder import Draft, Responder, ResponseContext
from bot.scripts import dense_characters
from bot.sentiment.analyzer import MOOD_WINDOW, NEGATIVE_BELOW, Sentiment, SentimentAnalyzer, rolling_mood
from bot.store import ConversationState, Store, StoredInbound
from bot.texts import Texts
from bot.responder.translation import AnswerTranslator
from bot.store.vectors import StoredVector
from knowledge.faq import FaqBase
from knowledge.search import FaqSearch, Hit, QueryVectors, is_confident
from knowledge.service import KnowledgeBase

log = logging.getLogger(__name__)


@dataclass
class Turn:
    """What the stages know about the message being answered."""

    inbound: StoredInbound
    conversation: ConversationState
    language: LanguageGuess | None = None  # the shopper's language, enabled by the shop or not
    reply_language: str | None = None  # what an answer from the FAQ is written in (an enabled language)
    faq: FaqBase | None = None
    encoding: asyncio.Future[QueryVectors] | None = None  # the encoding under way, started with the turn
    vectors: QueryVectors | None = None  # the message encoded once (per encoder), reused by every stage
    hits: list[Hit] = field(default_factory=list)
    sentiment: Sentiment | None = None
    mood: float | None = None  # the conversation's rolling mood, this message included
    negative_messages: int = 0  # negative shopper messages in the mood window, this one included
    handoff: HandoffDecision | None = None
    forward: bool = False  # a person handles the conversation: pass the message on, say nothing
    done: bool = False  # the draft is final (a command's answer): skip the remaining stages
    draft: Draft | None = None
    postscript: str | None = None  # said after an answer from the FAQ (the order stage's offer to look it up)
    links: tuple[Link, ...] = ()  # offered with the postscript (the products that follow the FAQ's answer)
    trace: dict[str, Any] = field(default_factory=dict)  # stored with the reply: why it was answered so


class Stage(Protocol):
    name: str

    async def run(self, turn: Turn) -> None: ...


class EncodeStage:
    """Starts encoding the message at once; the stages before retrieval run while the encoders work.

    The encoders run in C off the event loop, so language detection and the store's reads
    overlap them instead of adding to a lone shopper's wait.
    """

    name = "encode"

    def __init__(self, knowledge: KnowledgeBase):
        self._knowledge = knowledge

    async def run(self, turn: Turn) -> None:
        start_encoding(turn, self._knowledge)
        await asyncio.sleep(0)  # one loop step: the encoders' batches go to their threads before the detection


def start_encoding(turn: Turn, knowledge: KnowledgeBase) -> None:
    """Encode the message once per turn, from the first stage that needs it (the encode stage, normally)."""
    search, encoders = knowledge.current, knowledge.encoders
    if turn.encoding is None and encoders is not None and search is not None and search.semantic:
        turn.encoding = encoders.start(turn.inbound.text)


class LanguageStage:
    """The shopper's language (stored on the conversation, as detected) and the language to answer in."""

    name = "language"

    def __init__(self, detector: LanguageDetector, store: Store):
        self._detector = detector
        self._store = store

    async def run(self, turn: Turn) -> None:
        conversation = turn.conversation
        if conversation.language_locked and conversation.language:
            turn.language = LanguageGuess(conversation.language, 1.0, "chosen by the shopper")
        else:
            turn.language = await run_blocking(
                self._detector.detect,
                turn.inbound.text,
                conversation_language=conversation.language,
                hint=turn.inbound.language_hint,
            )
        detected = turn.language.language
        turn.reply_language = reply_language(detected, self._detector.enabled, self._detector.default)
        turn.trace["language"] = {"language": turn.reply_language, "detected": detected,
                                  "enabled": detected in self._detector.enabled,
                                  "confidence": turn.language.confidence, "reason": turn.language.reason}
        if detected != conversation.language and not conversation.language_locked:
            await self._store.set_conversation_language(conversation.key, detected)


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
        start_encoding(turn, self._knowledge)

        async def previous() -> str | None:
            return await self._store.previous_shopper_text(turn.inbound.conversation_key, turn.inbound.id)

        turn.hits, context = await retrieve_with_context(
            search, turn.inbound.text, previous, language=language, limit=self._limit,
            answer_threshold=self._answer_threshold, followup_max_words=self._followup_max_words,
            vectors=turn.encoding,
        )
        if turn.encoding is not None:
            turn.vectors = turn.encoding.result()  # awaited by the search
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
    vectors: QueryVectors | Awaitable[QueryVectors] | None = None,
) -> tuple[list[Hit], str | None]:
    """Search the message; a short one that matches nothing confidently is tried with the previous question.

    A short message that stands on its own ("thanks", "alipay?") is answered as it is;
    "why?" after "my payment failed" is searched as "my payment failed why?". Returns the
    hits and the previous question when it was used. (Measured on bench/data/followups.csv:
    trying the combined text only when the message alone is not confident is right more
    often than always preferring the combined text, which the previous question dominates.)
    """
    hits = await search.search(text, language=language, limit=limit, vectors=vectors)
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
    """Too short to stand alone: few words, or few Chinese, Japanese or Korean characters."""
    dense = dense_characters(text)
    if dense:
        return dense <= 2 * max_words + 1
    return len(text.split()) <= max_words


class SentimentStage:
    """Scores the message and updates the conversation's rolling mood (also during a handoff: agents see it)."""

    name = "sentiment"

    def __init__(self, analyzer: SentimentAnalyzer, records: HandoffStore):
        self._analyzer = analyzer
        self._records = records

    async def run(self, turn: Turn) -> None:
        language = turn.language.language if turn.language else None
        # The conversation's earlier scores are read (store thread) while the message is scored (another).
        reading = asyncio.ensure_future(self._records.recent_sentiments(turn.inbound.conversation_key,
                                                                        turn.inbound.id, MOOD_WINDOW - 1))
        try:
            sentiment = await run_blocking(self._analyzer.analyze, turn.inbound.text, language, turn.vectors)
        except BaseException:
            reading.cancel()
            raise
        earlier = await reading
        turn.sentiment = sentiment
        turn.mood = rolling_mood([*earlier, sentiment.score])
        turn.negative_messages = sum(1 for score in [*earlier, sentiment.score] if score <= NEGATIVE_BELOW)
        await self._records.record_sentiment(turn.inbound.id, turn.inbound.conversation_key, sentiment.score,
                                             turn.mood)
        turn.trace["sentiment"] = {**sentiment.to_json(), "mood": round(turn.mood, 3)}


# Handoffs whose notice comes after the confidently matched entry's answer: a flagged entry says what
# the shop does (then a person follows up), and an upset shopper whose question the FAQ answers should
# not wait for a person to learn it ("WHY IS MY REFUND TAKING SO LONG" gets the refund timings first).
# A request for a person or a merchant's keyword (a legal threat) gets the notice alone.
LEAD_WITH_THE_ANSWER = frozenset({HandoffReason.FAQ_FLAGGED, HandoffReason.UPSET})


class HandoffStage:
    """Decides whether a person takes over; while one does, ends the turn with the message forwarded."""

    name = "handoff"

    def __init__(self, policy: HandoffPolicy, records: HandoffStore, notices: HandoffNotices, *,
                 answer_threshold: float, ambiguity_ratio: float, asks_for_person: Callable[[str], str | None]):
        self._policy = policy
        self._asks_for_person = asks_for_person
        self._records = records
        self._notices = notices
        self._answer_threshold = answer_threshold
        self._ambiguity_ratio = ambiguity_ratio

    async def run(self, turn: Turn) -> None:
        conversation = turn.conversation
        if conversation.handoff == HandoffState.CLOSED:
            conversation, _ = await self._records.apply(
                conversation.key, Action.REOPEN, actor="shopper", reason="shopper_wrote",
                detail="the shopper wrote after the conversation was closed", message_id=turn.inbound.id)
            turn.conversation = conversation
        if conversation.handoff in (HandoffState.WAITING_AGENT, HandoffState.AGENT):
            turn.forward = True
            turn.trace["handoff"] = {"state": conversation.handoff.value, "agent": conversation.agent,
                                     "action": "forwarded to the agents; the bot stays silent"}
            return
        confident = is_confident(turn.hits, self._answer_threshold, self._ambiguity_ratio)
        streak = 0 if confident else 1 + await self._records.unconfident_streak(conversation.key)
        best = turn.hits[0] if turn.hits else None
        human_request = turn.sentiment.human_request if turn.sentiment else None
        if (human_request and confident and best is not None and not best.entry.handoff
                and faq_answers_the_wording(human_request, best.entry, self._asks_for_person)):
            turn.trace["handoff"] = {"action": f"'{human_request}' is answered: FAQ '{best.entry.id}' lists it "
                                               "among its own questions"}
            human_request = None
        signals = HandoffSignals(
            text=turn.inbound.text,
            mood=turn.mood,
            human_request=human_request,
            unconfident_streak=streak,
            flagged_faq=best.entry.id if confident and best is not None and best.entry.handoff else None,
            anger=tuple(cue for cue in (turn.sentiment.cues if turn.sentiment else ()) if cue in ANGER_CUES),
            negative_messages=turn.negative_messages,
        )
        turn.handoff = decide(signals, self._policy)
        if turn.handoff is None:
            return
        language = turn.language.language if turn.language else conversation.language or ""
        if turn.handoff.reason in LEAD_WITH_THE_ANSWER and confident and best is not None:
            lead = best.entry.variant(turn.reply_language or language).answer
            turn.draft = self._notices.handoff_draft(language, turn.handoff, lead=lead, faq_ids=(best.entry.id,))
        else:
            turn.draft = self._notices.handoff_draft(language, turn.handoff)
        turn.trace["handoff"] = {"reason": turn.handoff.reason.value, "detail": turn.handoff.detail}


class ResponderStage:
    name = "responder"

    def __init__(self, responder: Responder, store: Store, *, default_language: str,
                 upset_below: float, translator: AnswerTranslator | None = None):
        self._responder = responder
        self._translator = translator
        self._store = store
        self._default_language = default_language
        self._upset_below = upset_below

    async def run(self, turn: Turn) -> None:
        if turn.draft is not None:  # the handoff stage already said what to say
            return
        language = turn.reply_language or self._default_language
        assert turn.faq is not None, "the retrieval stage runs before the responder"
        turns = self._responder.history_turns
        history = await self._store.recent_turns(turn.inbound.conversation_key, turn.inbound.id,
                                                 2 * turns) if turns else []
        context = ResponseContext(history=tuple(history), mood=turn.mood,
                                  upset=turn.mood is not None and turn.mood <= self._upset_below, vectors=turn.vectors)
        turn.draft = await self._responder.respond(question=turn.inbound.text, language=language, hits=turn.hits,
                                                   faq=turn.faq, context=context)
        if turn.draft.trace:
            turn.trace["responder"] = dict(turn.draft.trace)
        shopper = turn.language.language if turn.language else None
        if self._translator is not None and shopper and shopper != turn.draft.language \
                and turn.draft.kind == ReplyKind.ANSWER:
            turn.draft = await self._translated(turn.draft, shopper, turn.trace)

    async def _translated(self, draft: Draft, shopper: str, trace: dict[str, Any]) -> Draft:
        """The answer in the shopper's language when the model's translation passes its checks, else as it was."""
        assert self._translator is not None
        try:
            translation = await self._translator.translate(draft.text, draft.language, shopper)
        except GenerationError as exc:
            log.info("responder.translation_refused language=%s reason=%s", shopper, exc)
            trace["translation"] = {"used": False, "reason": str(exc)}
            return draft
        trace["translation"] = {"used": True, "from": draft.language, "latency_ms": translation.latency_ms}
        return replace(draft, text=translation.text, language=shopper,
                       why=f"{draft.why}; translated from {draft.language} into {shopper} by the model, every "
                           "number, link and sentence checked against the FAQ's answer")


class Pipeline:
    """Runs the stages for one stored inbound message and stores the outcome."""

    def __init__(self, *, store: Store, records: HandoffStore, notices: HandoffNotices, stages: Sequence[Stage],
                 pushes: Callable[[str], bool], texts: Texts, apology_below: float, metrics: Metrics | None = None,
                 kept_vector: str | None = None):
        """`kept_vector`: the encoder whose vector of the message is stored with its reply (the dashboard's)."""
        self._kept_vector = kept_vector
        self._store = store
        self._records = records
        self._notices = notices
        self._stages = tuple(stages)
        self._pushes = pushes
        self._texts = texts
        self._apology_below = apology_below
        self._metrics = metrics

    async def run(self, inbound: StoredInbound) -> TurnOutcome:
        started = time.perf_counter()
        conversation = await self._store.conversation(inbound.conversation_key)
        if conversation is None:
            raise LookupError(f"conversation {inbound.conversation_key} of message {inbound.id} is missing")
        turn = Turn(inbound=inbound, conversation=conversation)
        timings: dict[str, float] = {}
        try:
            for stage in self._stages:
                stage_started = time.perf_counter()
                await stage.run(turn)
                timings[stage.name] = round((time.perf_counter() - stage_started) * 1000, 2)
                if turn.forward or turn.done:
                    break
        finally:
            _settle(turn.encoding)
        turn.trace["timings_ms"] = timings
        if turn.forward:
            forwarded = await self._forward(turn)
            self._observe(turn, FORWARDED, started)
            return forwarded
        if turn.draft is None:
            raise RuntimeError("no stage produced a reply draft")
        draft = self._with_language_note(turn, self._with_apology(self._with_postscript(turn), turn))
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
            links=draft.links,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        deliver = self._pushes(inbound.channel)
        vector = StoredVector.of(turn.vectors, self._kept_vector)
        if turn.handoff is not None:
            verified_order = (turn.trace.get("order") or {}).get("order")
            event = await self._notices.requested_event(turn.conversation, turn.handoff, mood=turn.mood,
                                                        hits=turn.hits, order=verified_order)
            handed, after = await self._records.start_handoff(
                inbound.id, reply, reason=turn.handoff.reason.value, detail=turn.handoff.detail,
                latency_ms=latency_ms, deliver=deliver, meta=turn.trace, event=event,
                told_when=self._notices.outside_hours(), vector=vector,
            )
            self._notices.wake()
            log.info("turn.handed_off conversation=%s inbound=%d reason=%s", inbound.conversation_key, inbound.id,
                     turn.handoff.reason.value)
            self._observe(turn, ReplyKind.HANDOFF.value if handed else FORWARDED, started,
                          handoff=turn.handoff.reason.value if handed else None)
            return TurnOutcome(handed, after.handoff)
        stored = await self._store.record_reply(inbound.id, reply, latency_ms=latency_ms, deliver=deliver,
                                                meta=turn.trace, vector=vector)
        log.info(
            "turn.answered conversation=%s inbound=%d kind=%s faq=%s latency_ms=%.1f",
            inbound.conversation_key, inbound.id, stored.kind.value, ",".join(stored.faq_ids) or "-", latency_ms,
        )
        self._observe(turn, stored.kind.value, started)
        return TurnOutcome(stored, HandoffState.BOT)

    async def fail_turn(self, inbound: StoredInbound, reason: str, elapsed_ms: float) -> TurnOutcome:
        """Answer a message whose turn failed with an apology in the conversation's language, in its place."""
        conversation = await self._store.conversation(inbound.conversation_key)
        language = (conversation.language if conversation else None) or inbound.language_hint or ""
        text, written_in = self._texts.get("turn_failed", language)
        reply = Reply(channel=inbound.channel, conversation=inbound.conversation, user_id=inbound.user_id,
                      text=text, language=written_in, kind=ReplyKind.ERROR, why=f"the turn failed: {reason}",
                      in_reply_to=inbound.id)
        stored, state = await self._store.answer_failed_turn(
            inbound.id, reply, latency_ms=elapsed_ms, deliver=self._pushes(inbound.channel),
            meta={"error": reason[:500]})
        log.warning("turn.answered_with_apology conversation=%s inbound=%d reason=%s", inbound.conversation_key,
                    inbound.id, reason[:200])
        return TurnOutcome(stored, state)

    def _observe(self, turn: Turn, outcome: str, started: float, *, handoff: str | None = None) -> None:
        """Count the finished turn; a responder trace with a fallback reason means the LLM draft was not used."""
        if self._metrics is None:
            return
        fallback = (turn.trace.get("responder") or {}).get("fallback")
        self._metrics.turn(channel=turn.inbound.channel, outcome=outcome, seconds=time.perf_counter() - started,
                           handoff=handoff, fallback=fallback)

    async def _forward(self, turn: Turn) -> TurnOutcome:
        event = self._notices.shopper_message_event(turn.conversation, turn.inbound.id, turn.inbound.text,
                                                    mood=turn.mood)
        conversation = await self._records.forward(turn.inbound.id, meta=turn.trace, event=event)
        self._notices.wake()
        log.info("turn.forwarded conversation=%s inbound=%d state=%s", turn.inbound.conversation_key,
                 turn.inbound.id, conversation.handoff.value)
        return TurnOutcome(None, conversation.handoff)

    def _with_postscript(self, turn: Turn) -> Draft:
        assert turn.draft is not None
        if not turn.postscript or turn.draft.kind != ReplyKind.ANSWER:
            return turn.draft
        return replace(turn.draft, text=f"{turn.draft.text}\n\n{turn.postscript}",
                       links=(*turn.draft.links, *turn.links),
                       why=f"{turn.draft.why}; then what the order or product stage added")

    def _with_language_note(self, turn: Turn, draft: Draft) -> Draft:
        """A reply from the FAQ in another language than the shopper's says so first, in theirs (when kefu
        has texts for it): the shopper learns why, and is not answered as if they had written English."""
        shopper = turn.language.language if turn.language else None
        if not shopper or shopper == draft.language or draft.kind not in NOTED_KINDS:
            return draft
        note, written_in = self._texts.get("other_language", shopper)
        if written_in != shopper:
            return draft
        return replace(draft, text=f"{note}\n\n{draft.text}",
                       why=f"{draft.why}; the shop does not answer in {shopper}: said so in {shopper}")

    def _with_apology(self, draft: Draft, turn: Turn) -> Draft:
        """An upset shopper hears an apology first, in the reply's language."""
        if turn.mood is None or turn.mood > self._apology_below or draft.kind not in APOLOGETIC_KINDS:
            return draft
        if already_apologises(draft.text) or (draft.trace or {}).get("used") == "llm":
            return draft  # the merchant's text says sorry already, or the model was asked to acknowledge
        apology, _ = self._texts.get("apology", draft.language)
        joiner = "" if apology.endswith(("。", "！", "？")) else " "
        return replace(draft, text=f"{apology}{joiner}{draft.text}",
                       why=f"{draft.why}; began with an apology: mood {turn.mood:+.2f} <= {self._apology_below:+.2f}")


def _settle(encoding: asyncio.Future[QueryVectors] | None) -> None:
    """A turn that ends before retrieval (a command, a failed stage) leaves no encoding running or unread."""
    if encoding is None:
        return
    if not encoding.done():
        encoding.cancel()
    elif not encoding.cancelled():
        encoding.exception()  # read: a failed encoding is the turn's error already, not a second one


ANGER_CUES = ("dispute_threat", "profanity", "shouting", "repeated_punctuation")
APOLOGETIC_KINDS = (ReplyKind.ANSWER, ReplyKind.NOT_SURE, ReplyKind.NO_MATCH, ReplyKind.HANDOFF)
NOTED_KINDS = (ReplyKind.ANSWER, ReplyKind.NOT_SURE, ReplyKind.NO_MATCH)
APOLOGY_WORDS = ("sorry", "apolog", "抱歉", "对不起", "entschuldig", "désolé", "lo siento", "perdón", "申し訳", "すみません")


def already_apologises(text: str) -> bool:
    """The merchant's answer opens with its own apology ("Sorry about that! …"): don't say sorry twice."""
    opening = text[:40].casefold()
    return any(word in opening for word in APOLOGY_WORDS)
