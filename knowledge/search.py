"""Ranked, explained FAQ hits for a shopper's question.

Today the ranking is the keyword index alone; the semantic encoder plugs in here
(the `semantic_score` field) without changing callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.concurrency import run_blocking
from knowledge.faq import FaqBase, FaqEntry
from knowledge.keyword import QUESTION, KeywordHit, KeywordIndex


@dataclass(frozen=True)
class Hit:
    """One FAQ entry matching a question, and why it matched."""

    entry: FaqEntry
    score: float  # 0..1 confidence used to decide answer / not sure / nothing
    keyword_score: float | None
    semantic_score: float | None
    matched_text: str
    why: str


class FaqSearch:
    """Owns the FAQ entries and their indexes; built once per process."""

    def __init__(self, faq: FaqBase, index_dir: Path, languages: tuple[str, ...]):
        self.faq = faq
        self._keyword = KeywordIndex(index_dir / "keyword", languages)

    def open(self) -> bool:
        """Blocking: open or rebuild the index; True when it was rebuilt."""
        return self._keyword.open_or_build(self.faq)

    def close(self) -> None:
        self._keyword.close()

    def search_blocking(self, query: str, limit: int = 5) -> list[Hit]:
        return [self._to_hit(hit) for hit in self._keyword.search(query, limit)]

    async def search(self, query: str, limit: int = 5) -> list[Hit]:
        return await run_blocking(self.search_blocking, query, limit)

    def _to_hit(self, hit: KeywordHit) -> Hit:
        where = "phrasing" if hit.kind == QUESTION else "answer"
        why = (
            f"keyword match on {', '.join(repr(t) for t in hit.matched_terms)} "
            f"in the {hit.language} {where} \u201c{_shorten(hit.matched_text)}\u201d"
        )
        return Hit(
            entry=self.faq.by_id[hit.entry_id],
            score=hit.confidence,
            keyword_score=hit.bm25,
            semantic_score=None,
            matched_text=hit.matched_text,
            why=why,
        )


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
