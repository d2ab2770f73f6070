"""The LLM responder: a reply shaped by a model from the matched FAQ entry, or the extractive answer.

Two styles (`[responder] style`). `compose` (the default): the model copies the entry's
sentence that answers the shopper (or, asked again in the same chat, names its number), and
kefu sends the FAQ's own sentence it came from, with those the shopper's words need
(bot/responder/compose.py). `write`: the model writes its own reply, which every check of
bot/responder/review.py must pass.

The extractive draft is computed first and is what the shopper gets whenever the
model fails: no answer in time, an error, empty or degenerate
output, a copy that is not the FAQ's, the wrong language, a fact the FAQ does not contain, or a claim the FAQ does
not support. The draft's trace records which backend shaped the reply, its latency and
tokens, or why it fell back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bot.concurrency import run_blocking
from bot.config import ResponderConfig
from bot.responder.compose import (MAX_NEW_TOKENS, RETRY_NEW_TOKENS, answer_units, choice_messages, choose, compose,
                                   retry_messages)
from bot.responder.grounding import SemanticGrounder, terms_of
from bot.responder.lead import answer_lead, with_lead
from bot.llm import GenerationBackend, GenerationError, Sampling
from bot.messages import ReplyKind
from bot.responder.pii import PiiMasker, restore
from bot.responder.review import PLACEHOLDER, DraftRejected, DraftReviewer, DraftSources
from bot.responder.prompt import FaqContext, PromptParts, build_messages, rewrite_messages
from bot.responder.extractive import Draft, ExtractiveResponder, ResponseContext
from knowledge.faq import FaqBase
from knowledge.search import Hit

log = logging.getLogger(__name__)

MAX_UNKNOWN_WORDS = 8  # a longer list in the prompt distracts a small model more than it helps
SECOND_TRY_MARGIN = 1.2  # a second try starts only if the deadline leaves 1.2x the first attempt's time


class GroundedResponder:
    """Generates with a backend, checks the draft, and falls back to the extractive responder."""

    def __init__(self, *, generator: GenerationBackend, fallback: ExtractiveResponder, config: ResponderConfig,
                 shop: str, detect_language: Callable[[str], tuple[str, float]] | None,
                 grounder: SemanticGrounder | None):
        self._generator = generator
        self._fallback = fallback
        self._config = config
        self.history_turns = config.history_turns  # the prompt shows the conversation so far
        self._shop = shop
        self._reviewer = DraftReviewer(shop=shop, detect_language=detect_language, grounder=grounder)
        self._grounder = grounder
        self._sampling = Sampling.from_config(config)

    async def respond(self, *, question: str, language: str, hits: list[Hit], faq: FaqBase,
                      context: ResponseContext | None = None) -> Draft:
        base = await self._fallback.respond(question=question, language=language, hits=hits, faq=faq,
                                            context=context)
        if base.kind is not ReplyKind.ANSWER:
            # Only a confident answer is worth the wait. A not-sure reply offers the shopper the entries to
            # choose from; a no-match, a handoff or a command has nothing to ground a reply on. Written by
            # a 1.5B model on 2 cores, a not-sure reply kept the shopper waiting up to the whole deadline
            # (30 s measured) for an offer the extractive responder makes at once.
            return base
        # The confident match alone: entries far below it only distract a small model (measured with
        # Qwen2.5 1.5B), and a confident match has no runner-up within `ambiguity_ratio` of it.
        entries = hits[:1]
        started = time.perf_counter()
        deadline = time.monotonic() + self._config.deadline_seconds
        trace: dict[str, Any] = {"backend": self._generator.name, "faq_ids": [h.entry.id for h in entries]}
        context = context or ResponseContext()
        if self._config.style == "compose":
            return await self._compose(question, language, entries[0], base, context, trace, started, deadline)
        try:
            draft = await self._generate(question, language, entries, context, trace, deadline)
        except DraftRejected as refused:
            if not self._second_try_fits(started, deadline):
                return self._fall_back(base, refused.reason, trace, started)
            # Asked to restate the entry rather than to answer again, a small model keeps to it
            # (measured: bench/llm_judged.md).
            trace["refused"] = {"draft": trace.pop("draft", ""), "reason": refused.reason}
            log.info("responder.second_try backend=%s reason=%s", self._generator.name, refused.reason)
            try:
                draft = await self._generate(question, language, entries, context, trace, deadline, rewrite=True)
            except GenerationError as exc:
                return self._fall_back(base, exc.reason, trace, started)
        except GenerationError as exc:
            return self._fall_back(base, exc.reason, trace, started)
        trace["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        trace["used"] = "llm"
        log.info("responder.generated backend=%s latency_ms=%.0f", self._generator.name, trace["latency_ms"])
        return replace(draft, trace=trace)

    async def _compose(self, question: str, language: str, hit: Hit, base: Draft, context: ResponseContext,
                       trace: dict[str, Any], started: float, deadline: float) -> Draft:
        """The entry's own sentences: the one the model copied, and those it must not go without."""
        variant = hit.entry.variant(language)
        units = answer_units(variant.answer)
        sampling = replace(self._sampling, max_new_tokens=min(self._sampling.max_new_tokens, MAX_NEW_TOKENS))
        messages = choice_messages(PiiMasker().mask(question).text, units)
        try:
            generation = await self._generator.generate(messages, sampling, deadline)
        except GenerationError as exc:
            return self._fall_back(base, exc.reason, trace, started)
        trace.update(prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                     copy=generation.text.strip()[:300])
        closest = None
        if self._grounder is not None and len(units) > 1:
            own = (context.vectors or {}).get(self._grounder.encoder_id or "")
            closest = await run_blocking(self._grounder.closest, question, [unit.text for unit in units], own)

        def terms(text: str) -> set[str]:
            return terms_of(text, variant.language)

        choice = choose(generation.text, question, units, terms, variant.questions, closest)
        if choice is None and self._second_try_fits(started, deadline):
            log.info("responder.second_try backend=%s reason=copy matches no sentence", self._generator.name)
            try:
                generation = await self._generator.generate(
                    retry_messages(messages, generation.text), replace(sampling, max_new_tokens=RETRY_NEW_TOKENS),
                    deadline)
            except GenerationError as exc:
                return self._fall_back(base, exc.reason, trace, started)
            trace["pointer"] = generation.text.strip()[:40]
            choice = choose(generation.text, question, units, terms, variant.questions, closest)
        if choice is None:
            return self._fall_back(base, "the model's copy matches no sentence of the answer", trace, started)
        trace.update(sentences=[i + 1 for i in choice.units], copied=choice.copied + 1, of_sentences=len(units),
                     used="llm", latency_ms=round((time.perf_counter() - started) * 1000, 1))
        log.info("responder.composed backend=%s latency_ms=%.0f sentences=%d/%d", self._generator.name,
                 trace["latency_ms"], len(choice.units), len(units))
        numbers = ", ".join(str(i + 1) for i in choice.units)
        added = (f" (sentence {choice.copied + 1} copied by the model; with it the closest in meaning, those "
                 f"naming the shopper's words and those it leans on)" if choice.added else "")
        text = compose(units, choice.units, variant.language)
        why = (f"{base.why}; sentence(s) {numbers} of {len(units)} sent as the FAQ writes them{added}, "
               f"picked by the {self._generator.name} model")
        # The words of a question in another language are not the FAQ's: no lead can be read off them.
        lead = answer_lead(question, text, variant.answer, language, variant.questions) \
            if variant.language == language else None
        if lead is not None:
            text = with_lead(lead, text, variant.answer)
            trace["lead"] = {"answer": lead.answer, "clause": lead.clause, "named": list(lead.named)}
            why += f"; '{lead.text.strip(' —，')}' because the FAQ's '{lead.clause[:80]}' settles it"
        return replace(base, text=text, why=why, trace=trace)

    def _second_try_fits(self, started: float, deadline: float) -> bool:
        spent = time.perf_counter() - started
        return self._config.second_try and deadline - time.monotonic() >= SECOND_TRY_MARGIN * spent

    async def _generate(self, question: str, language: str, entries: Sequence[Hit], context: ResponseContext,
                        trace: dict[str, Any], deadline: float, rewrite: bool = False) -> Draft:
        variants = [(hit, hit.entry.variant(language)) for hit in entries]
        given = DraftSources.of(question, language, [variant for _, variant in variants])
        parts = PromptParts(
            shop=self._shop, tone=self._config.tone, language=language, upset=context.upset,
            entries=[FaqContext(hit.entry.id, variant.questions[0], variant.answer) for hit, variant in variants],
            history=context.history[-2 * self._config.history_turns:] if self._config.history_turns else (),
            question=question, unknown_words=sorted(set(given.unknown.values()), key=str.lower)[:MAX_UNKNOWN_WORDS],
        )
        messages, restorable = (rewrite_messages if rewrite else build_messages)(parts, PiiMasker())
        generation = await self._generator.generate(messages, self._sampling, deadline)
        trace.update(prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens)
        trace["draft"] = generation.text.strip()  # masked: what the model wrote, kept so a merchant sees a refusal
        text = await self._reviewer.review(generation.text, given, trace)
        text = restore(text, restorable)
        if PLACEHOLDER.search(text):
            raise GenerationError("the reply names personal data the shopper did not write in this message")
        del trace["draft"]
        best = entries[0]
        return Draft(
            text=text, language=language, kind=ReplyKind.ANSWER,
            faq_ids=tuple(hit.entry.id for hit in entries), confidence=best.score,
            why=f"written by the {self._generator.name} model from FAQ {', '.join(h.entry.id for h in entries)}; "
                f"every number and claim checked against them",
        )

    def _fall_back(self, base: Draft, reason: str, trace: dict[str, Any], started: float) -> Draft:
        trace.update(used="extractive", fallback=reason, latency_ms=round((time.perf_counter() - started) * 1000, 1))
        log.info("responder.fallback backend=%s reason=%s", self._generator.name, reason)
        return replace(base, why=f"{base.why}; the {self._generator.name} model's reply was not used: {reason}",
                       trace=trace)
