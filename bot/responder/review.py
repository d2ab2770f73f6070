"""Every check a model's draft passes before a shopper reads it, in one place.

The responder reviews each draft with it, and bench/checker.py reviews labelled drafts with
the same object, so the checker's measured recall and false refusals are those of what ships.
The first check that fails is the refusal (`DraftRejected`, with its reason); a draft that
passes comes back as it would be sent (a leading clause carrying a borrowed premise cut).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.concurrency import run_blocking
from bot.llm import GenerationError
from bot.responder.grounding import (
    SemanticGrounder,
    drop_borrowed_premises,
    dropped_condition,
    dropped_limit,
    dropped_restriction,
    echoed_terms,
    invented_words,
    status_claims,
    unknown_words,
    unlinked_means,
    unlinked_purpose,
    unsupported_facts,
)
from bot.responder.pii import PiiMasker
from knowledge.faq import LocalizedText

PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|CARD|ADDRESS)_\d+\]")


class DraftRejected(GenerationError):
    """A draft the checks refused (not a timeout or a server error): worth a second try."""


def degenerate(text: str) -> str | None:
    """Why a generation is unusable as text (repetition loops, nothing but symbols), or None."""
    words = text.split()
    if len(words) >= 12:
        trigrams = [" ".join(words[i:i + 3]) for i in range(len(words) - 2)]
        if len(set(trigrams)) < 0.5 * len(trigrams):
            return "the output repeats itself"
    if len(text) >= 40:
        chunks = [text[i:i + 10] for i in range(0, len(text) - 9, 10)]
        if len(set(chunks)) < 0.5 * len(chunks):
            return "the output repeats itself"
    if not re.search(r"[^\W\d_]", text):
        return "the output has no words"
    return None


async def readable_reply(text: str, language: str, detect: Callable[[str], tuple[str, float]] | None) -> None:
    """The checks every generated reply passes first, whatever it is grounded on: there is text, it is not a
    loop, and it is in the shopper's language. Raises DraftRejected."""
    if not text:
        raise DraftRejected("the model returned nothing")
    problem = degenerate(text)
    if problem:
        raise DraftRejected(problem)
    if detect is not None:
        found, confidence = await run_blocking(detect, text)
        if found != language and confidence >= 0.9:
            raise DraftRejected(f"the reply is in '{found}', the shopper writes '{language}'")


@dataclass(frozen=True)
class DraftSources:
    """What a draft is checked against: the shopper's message and the entries in the reply's language."""

    message: str  # as the shopper wrote it: its numbers may be repeated
    masked_message: str  # personal data masked: what the word lists are built from
    language: str
    sources: tuple[str, ...]  # each entry's first question and answer
    answers: tuple[str, ...]
    vocabulary: tuple[str, ...]  # the sources and the entries' other phrasings: the shop's own words
    unknown: dict[str, str]  # the shopper's words the entries never use (stem → word)
    same_language: bool  # word-level checks need the entries in the reply's language

    @classmethod
    def of(cls, message: str, language: str, variants: Sequence[LocalizedText]) -> DraftSources:
        sources = tuple(f"{v.questions[0]}\n{v.answer}" for v in variants)
        same_language = all(v.language == language for v in variants)
        masked = PiiMasker().mask(message).text
        # The merchant's other phrasings of these entries count as the shop's words too ("when will my order arrive").
        vocabulary = (*sources, *(q for v in variants for q in v.questions[1:]))
        unknown = unknown_words(masked, vocabulary, language) if same_language else {}
        return cls(message=message, masked_message=masked, language=language, sources=sources,
                   answers=tuple(v.answer for v in variants), vocabulary=vocabulary, unknown=unknown,
                   same_language=same_language)


class DraftReviewer:
    """Runs the checks in order; README "LLM responder" lists what each one caught."""

    def __init__(self, *, shop: str, detect_language: Callable[[str], tuple[str, float]] | None,
                 grounder: SemanticGrounder | None):
        self._shop = shop
        self._detect = detect_language
        self._grounder = grounder

    async def review(self, text: str, given: DraftSources, trace: dict[str, Any]) -> str:
        """The draft as it would be sent (still masked); raises DraftRejected. Fills `trace` with what
        the semantic check found and the premises cut, for the merchant to read."""
        text = text.strip()
        language = given.language
        await readable_reply(text, language, self._detect)
        invented = unsupported_facts(text, [*given.sources, given.message])
        if invented:
            raise DraftRejected(f"not in the FAQ: {', '.join(invented[:3])}")
        status = status_claims(text, given.masked_message, given.sources, language)
        if status:
            raise DraftRejected(status)
        if given.same_language:
            text, dropped = drop_borrowed_premises(text, given.unknown, language)
            if dropped:
                trace["dropped_premises"] = dropped
        plain = PLACEHOLDER.sub("", text)  # what the checks read: placeholders are the shopper's data, not claims
        if given.same_language:
            self._word_checks(plain, given)
        if self._grounder is not None:
            # Against the answers only: a draft restating the entry's question ("I need to check the accepted
            # payment methods") is close to it and answers nothing.
            claims = await run_blocking(self._grounder.check, plain, list(given.answers))
            trace["claims"] = [{"sentence": c.sentence, "similarity": round(c.similarity, 3), "ok": c.ok}
                               for c in claims]
            failed = [c for c in claims if not c.ok]
            if not claims:
                raise DraftRejected("the reply states nothing from the FAQ (greetings or apologies only)")
            if failed:
                raise DraftRejected(f"claim not backed by the FAQ: '{failed[0].sentence[:80]}' ({failed[0].reason})")
            limit = dropped_limit(claims)
            if limit:
                raise DraftRejected(limit)
        return text

    def _word_checks(self, plain: str, given: DraftSources) -> None:
        language = given.language
        echoed = echoed_terms(plain, given.unknown, language)
        if echoed:
            raise DraftRejected(f"the reply repeats the shopper's words the FAQ never uses: {', '.join(echoed[:3])}")
        made_up = invented_words(plain, given.masked_message, [*given.vocabulary, self._shop], language)
        if made_up:
            raise DraftRejected(made_up)
        restricted = dropped_restriction(plain, given.sources, language)
        if restricted:
            raise DraftRejected(restricted)
        unconditional = dropped_condition(plain, given.masked_message, given.sources, language)
        if unconditional:
            raise DraftRejected(unconditional)
        linked = unlinked_means(plain, given.sources, language) or unlinked_purpose(plain, given.sources, language)
        if linked:
            raise DraftRejected(linked)
