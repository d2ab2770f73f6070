"""The shop's products behind the same hybrid search as the FAQ: keyword index plus multilingual embeddings.

Each product becomes one search entry: its title (and the title in each language the shop
enabled), "category title", its tags, and its description as the "answer" text. So "a warm
jacket for hiking", "防水的外套" and "Regenjacke" find products the way questions find FAQ
entries, with the same encoders, the same batching queue and the vectors a turn already has.
A catalog version is built aside and swapped whole (bot/products/service.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from commerce.products import Product
from knowledge.faq import FaqBase, FaqEntry, LocalizedText
from knowledge.faq_source import SourceLocation
from knowledge.search import EncoderSet, FaqSearch, Hit, QueryVectors, SearchSettings

SAFE_ID = re.compile(r"[^A-Za-z0-9._\-]")


@dataclass(frozen=True)
class ProductHit:
    product: Product
    score: float  # the search's calibrated 0..1
    keyword_score: float | None
    semantic_score: float | None  # cosine of the closest phrasing (title, category, tags, description)
    why: str


def entry_id(product: Product) -> str:
    """A search id for the product: its own id when it is one already, else a safe digest of it."""
    cleaned = SAFE_ID.sub("-", product.id).strip("-._")[:90]
    if cleaned == product.id and cleaned:
        return cleaned
    return f"p{hashlib.sha1(product.id.encode()).hexdigest()[:12]}-{cleaned[:60]}".rstrip("-")


def catalog_faq(products: Sequence[Product], languages: Sequence[str], source: str) -> FaqBase:
    """The products as search entries, in the shop's enabled languages."""
    entries = []
    digest = hashlib.sha256()
    for product in products:
        variants: dict[str, LocalizedText] = {}
        for language in dict.fromkeys([product.language, *product.translations]):
            if language not in languages:
                continue
            text = product.text(language)
            phrasings = [text.title]
            if product.category:
                phrasings.append(f"{product.category} {text.title}")
            if product.tags:
                phrasings.append(f"{text.title} {' '.join(product.tags)}")
            variants[language] = LocalizedText(language, tuple(dict.fromkeys(phrasings)),
                                               text.description or text.title, SourceLocation(source, 0))
        if not variants:
            continue
        default = product.language if product.language in variants else next(iter(variants))
        entry = FaqEntry(id=entry_id(product), default_language=default, variants=variants, tags=product.tags)
        entries.append(entry)
        digest.update(repr((entry.id, sorted((k, v.questions, v.answer) for k, v in variants.items()))).encode())
    return FaqBase(entries=tuple(entries), content_hash=digest.hexdigest(), files=(source,),
                   by_id={entry.id: entry for entry in entries})


class ProductSearch:
    """One version of the catalog and its indexes. Build with `open()` (blocking); then immutable."""

    def __init__(self, products: Sequence[Product], index_dir: Path, languages: tuple[str, ...], *,
                 encoders: EncoderSet | None, settings: SearchSettings | None = None, source: str = "catalog"):
        self.products = {entry_id(product): product for product in products}
        self.faq = catalog_faq(products, languages, source)
        self._search = FaqSearch(self.faq, index_dir, languages, encoders=encoders, settings=settings)
        self.sizes = {value for product in products for value in product.option_values("size")}

    def open(self) -> None:
        if not self.faq.entries:
            return  # an empty catalog: nothing to index, every search finds nothing
        try:
            self._search.open()
        except BaseException:
            self._search.close()
            raise

    def close(self) -> None:
        self._search.close()

    def remove_stale_indexes(self) -> None:
        self._search.remove_stale_indexes()

    async def search(self, text: str, *, language: str | None, limit: int = 10,
                     vectors: QueryVectors | None = None) -> list[ProductHit]:
        if not self.faq.entries:
            return []
        hits = await self._search.search(text, language=language, limit=limit, vectors=vectors)
        return [self._hit(hit) for hit in hits if hit.entry.id in self.products]

    def _hit(self, hit: Hit) -> ProductHit:
        return ProductHit(self.products[hit.entry.id], hit.score, hit.keyword_score, hit.semantic_score, hit.why)
