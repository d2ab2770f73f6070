"""Turns the retrieved FAQ hits into the reply's words.

The extractive responder answers with the merchant's own text, so it can never
invent a policy; it is the fallback every later (LLM) responder falls back to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.config import RetrievalConfig
from bot.messages import Link, ReplyKind
from bot.texts import Texts
from knowledge.faq import FaqBase
from knowledge.search import Hit, QueryVectors, is_confident


@dataclass(frozen=True)
class Draft:
    """A reply before it is stored and addressed."""

    text: str
    language: str
    kind: ReplyKind
    quick_replies: tuple[str, ...] = ()
    faq_ids: tuple[str, ...] = ()
    confidence: float | None = None
    why: str = ""
    trace: Mapping[str, Any] | None = None  # how a generated reply was made (backend, tokens, fallback reason)
    links: tuple[Link, ...] = ()  # product pages offered with the reply


@dataclass(frozen=True)
class ResponseContext:
    """The conversation around the question, for responders that write their own words."""

    history: Sequence[tuple[str, str]] = ()  # (role, text) since the last handoff ended, oldest first
    mood: float | None = None
    upset: bool = False
    vectors: QueryVectors | None = None  # the message's own, encoded once for the turn


class Responder(Protocol):
    history_turns: int  # earlier shopper/bot turns it reads from `context.history` (0: the store is not asked)

    async def respond(self, *, question: str, language: str, hits: list[Hit], faq: FaqBase,
                      context: ResponseContext | None = None) -> Draft: ...


class ExtractiveResponder:
    """Answer with the matched entry's text; otherwise offer suggestions or topics."""

    history_turns = 0  # the answer depends on the message and the FAQ only

    def __init__(self, *, texts: Texts, retrieval: RetrievalConfig):
        self._texts = texts
        self._retrieval = retrieval

    def _topics(self, faq: FaqBase) -> list:
        """The merchant's top topics that exist in this FAQ version, else its first entries."""
        wanted = self._retrieval.top_topics or tuple(e.id for e in faq.entries[: self._retrieval.max_suggestions])
        return [faq.by_id[entry_id] for entry_id in wanted if entry_id in faq.by_id]

    async def respond(self, *, question: str, language: str, hits: list[Hit], faq: FaqBase,
                      context: ResponseContext | None = None) -> Draft:
        best = hits[0] if hits else None
        answer_at = self._retrieval.answer_threshold
        suggest_at = self._retrieval.suggest_threshold
        runner_up = hits[1] if len(hits) > 1 else None
        ambiguous = (
            best is not None and runner_up is not None
            and runner_up.score >= self._retrieval.ambiguity_ratio * best.score
        )
        if is_confident(hits, answer_at, self._retrieval.ambiguity_ratio):
            assert best is not None
            variant = best.entry.variant(language)
            return Draft(
                text=variant.answer,
                language=variant.language,
                kind=ReplyKind.ANSWER,
                faq_ids=(best.entry.id,),
                confidence=best.score,
                why=f"answered with FAQ '{best.entry.id}' ({variant.source}): confidence {best.score:.2f} "
                f">= {answer_at:.2f}; {best.why}",
            )
        if best is not None and best.score >= suggest_at:
            candidates = [hit for hit in hits if hit.score >= suggest_at][: self._retrieval.max_suggestions]
            text, text_language = self._texts.get("not_sure", language)
            reason = (f"'{best.entry.id}' and '{runner_up.entry.id}' match almost equally "
                      f"({best.score:.2f} vs {runner_up.score:.2f})" if ambiguous and best.score >= answer_at
                      else f"best match '{best.entry.id}' has confidence {best.score:.2f} < {answer_at:.2f}")
            return Draft(
                text=text,
                language=text_language,
                kind=ReplyKind.NOT_SURE,
                quick_replies=_unique(hit.entry.variant(language).questions[0] for hit in candidates),
                faq_ids=tuple(hit.entry.id for hit in candidates),
                confidence=best.score,
                why=f"not sure: {reason}; offered {len(candidates)} suggestion(s); {best.why}",
            )
        text, text_language = self._texts.get("no_match", language)
        topics = self._topics(faq)
        if best is None:
            why = "no FAQ entry shares a word with the question; offered the top topics"
        else:
            why = (f"no match: best candidate '{best.entry.id}' has confidence {best.score:.2f} < "
                   f"{suggest_at:.2f}; offered the top topics")
        return Draft(
            text=text,
            language=text_language,
            kind=ReplyKind.NO_MATCH,
            quick_replies=_unique(entry.variant(language).questions[0] for entry in topics),
            confidence=best.score if best else 0.0,
            why=why,
        )


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
