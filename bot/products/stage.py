"""The product stage: questions about a product and requests for recommendations, answered from the catalog.

It runs after the order stage, before the handoff stage, with the turn's own vectors (the
message is not encoded again). It takes the turn when:

- the shopper asks for suggestions ("recommend", "looking for", "推荐", "有没有…", a price
  limit): up to `max_recommendations` products that satisfy every limit read from the message
  (price, size in stock, colour, the kind of product named: "Rucksack", "sac à dos", "背包" are
  backpacks, commerce/product_types.py), ranked by relevance, with the relatives of the products this
  conversation asked about before, or bought in an order it verified, first among equals;
- the message names a product (its title's words, or one product far closer in meaning than
  the rest) and the FAQ has no confident answer, or the shopper asks for a size or colour of it:
  its price, availability, description and page;
- the FAQ has no confident answer and products are far closer in meaning to the message than any
  FAQ entry, none standing out: the closest ones, listed as a recommendation is.

When the FAQ answers confidently ("is the wool scarf machine washable?" finds the care entry,
"boots size 39, brown" the shoe size guide), the FAQ's answer goes out and the product named, or
the products that fit, follow it: the FAQ stays what answers its questions. A follow-up that names
no product ("有没有黑色的") is about the last product shown.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.config import CatalogConfig
from bot.messages import HandoffState, Link, ReplyKind
from bot.products.replies import Told, matching_variants, product_answer, product_line, product_links, recommendation
from bot.products.service import CatalogService
from bot.responder import Draft
from bot.store import Store
from bot.texts import Texts
from commerce.product_types import kinds_in, product_kinds
from commerce.products import Product
from commerce.wishes import Wishes, read_wishes
from knowledge.catalog import ProductHit
from knowledge.search import is_confident

if TYPE_CHECKING:
    from bot.pipeline import Turn

log = logging.getLogger(__name__)

RECOMMEND = re.compile(
    r"(?i)\b(?:recommend\w*|suggest\w*|looking for|look(?:ing)? for|any ideas?|what (?:would|do) you|show me|"
    r"i(?:'m| am) (?:after|searching)|gift (?:for|idea)|empfehl\w*|such\w* (?:nach|eine?n?)|vorschl\w*|"
    r"recommand\w*|conseill\w*|je cherche|recomiend\w*|recomendar\w*|busco|consiglia\w*|cerco|aanrad\w*|ik zoek|"
    r"procuro|indica\w*)\b|推荐|有没有|有什么|想买|想要|求推|おすすめ|お勧め|추천"
)
NAMED_KEYWORD = 0.4  # the keyword score of a product whose title words the message uses
NAMED_LEAD = 0.08  # or: this much closer in meaning than the next product
FOUND_SIMILARITY = 0.68  # a message this close to a product, which the FAQ does not answer, is about products
FOUND_LEAD = 0.1  # when no FAQ entry is within this much of it
MAX_CANDIDATES = 12
KIND_CANDIDATES = 200  # searched when the message names a kind of product, then kept to that kind


class ProductStage:
    name = "products"

    def __init__(self, catalog: CatalogService, store: Store, texts: Texts, config: CatalogConfig, *,
                 answer_threshold: float, ambiguity_ratio: float):
        self._catalog = catalog
        self._store = store
        self._texts = texts
        self._config = config
        self._answer_threshold = answer_threshold
        self._ambiguity_ratio = ambiguity_ratio

    async def run(self, turn: Turn) -> None:
        search = self._catalog.current
        if search is None or turn.conversation.handoff in (HandoffState.WAITING_AGENT, HandoffState.AGENT):
            return
        text = turn.inbound.text
        detected = turn.language.language if turn.language else None
        kinds = kinds_in(text, detected)  # "Rucksack", "mochila", "背包": only backpacks may be offered
        found = await search.search(text, language=detected, limit=KIND_CANDIDATES if kinds else MAX_CANDIDATES,
                                    vectors=turn.vectors)
        hits = [hit for hit in found[:MAX_CANDIDATES] if self._about(hit)]
        wishes = read_wishes(text, search.sizes)
        variant_wish = bool(wishes.size or wishes.colour)  # only a product answers "in M?", "in black?"
        price_wish = wishes.max_price is not None or wishes.min_price is not None
        wants_products = bool(RECOMMEND.search(text)) or price_wish or variant_wish
        if kinds:
            # Every product of the kinds named is a candidate, however far in meaning (a message in German
            # shares no word with English titles), and no other.
            of_kind = [hit for hit in found if product_kinds(hit.product.category, hit.product.title) & kinds]
            kind_ids = {hit.product.id for hit in of_kind}
            hits = of_kind if wants_products else [hit for hit in hits if hit.product.id in kind_ids]
        if not hits and not variant_wish and not (kinds and wants_products):
            return  # nothing in the catalog is about the message, and it asks for no size or colour
        # The one product of the kind named that is about the message is the one meant ("Wollsocken").
        named = _named(hits) or (hits[0].product if kinds and len(hits) == 1 and not wants_products else None)
        earlier = await self._earlier_products(turn, search.products)
        if named is None and not hits and earlier:
            named = search.products.get(earlier[0])  # "有没有黑色的" after a product was shown
        faq_answers = is_confident(turn.hits, self._answer_threshold, self._ambiguity_ratio)
        language = turn.reply_language or ""
        if named is not None and (variant_wish or (not faq_answers and not price_wish)):
            told = product_answer(named, wishes, self._texts, language)
            self._answer(turn, told, [named], wishes, why=f"product '{named.id}' named; from the catalog")
        elif wants_products and (hits or kinds) and not faq_answers:
            told, chosen, wishes = self._recommendation(turn, hits, wishes, kinds, text, earlier, language)
            self._answer(turn, told, chosen, wishes,
                         why=f"recommended {len(chosen)} of {len(hits)} relevant products meeting "
                             f"{', '.join(wishes.describe()) or 'no stated limit'}")
        elif hits and not faq_answers and self._closer_than_the_faq(turn, hits[0]):
            # About products, but naming none of them clearly ("Sandalen aus Nubukleder" shares no word with
            # "Nubuck leather sandals", and its type's other sandals are close behind), and far closer to them
            # than to any FAQ entry ("my jacket arrived torn" is as close to the damaged-item entry): the
            # closest products, as found, rather than the FAQ's "not sure".
            told, chosen, wishes = self._recommendation(turn, hits, wishes, kinds, text, earlier, language)
            self._answer(turn, told, chosen, wishes,
                         why=f"the message is about products and names none clearly: the {len(chosen)} closest "
                             f"(best similarity {hits[0].semantic_score:.2f})")
        elif faq_answers and wants_products and hits:
            # The FAQ answers ("boots size 39, brown" finds the shoe size guide): its answer goes out, and
            # the products that fit follow it.
            told, chosen, wishes = self._recommendation(turn, hits, wishes, kinds, text, earlier, language)
            if chosen:
                self._after_the_faq_answer(turn, told.text, told.links, chosen, wishes)
        elif named is not None and faq_answers:
            line = product_line(named, named.variants, self._texts, language)
            self._after_the_faq_answer(turn, "\n".join(p for p in (line, named.url) if p),
                                       product_links([named], language), [named], wishes)

    def _recommendation(self, turn: Turn, hits: list[ProductHit], wishes: Wishes, kinds: set[str], text: str,
                        earlier: list[str], language: str) -> tuple[Told, list[Product], Wishes]:
        asked = wishes
        wishes = _in_catalog_currency(wishes, hits, turn.trace)
        chosen = self._recommend(hits, wishes, kinds, text, earlier)
        told = recommendation(chosen, wishes, self._texts, language)
        if wishes is not asked:  # the shopper is told why the products may cost more than they said
            limit = asked.max_price if asked.max_price is not None else asked.min_price
            note, _ = self._texts.get("product_other_currency", told.language, limit=f"{limit} {asked.currency}",
                                      currency=next(hit.product.currency for hit in hits if hit.product.currency))
            told = replace(told, text=f"{note}\n{told.text}")
        return told, chosen, wishes

    def _after_the_faq_answer(self, turn: Turn, text: str, links: tuple[Link, ...], products: list[Product],
                              wishes: Wishes) -> None:
        turn.postscript = "\n\n".join(part for part in (turn.postscript, text) if part)
        turn.links = (*turn.links, *links)
        turn.trace["products"] = {"ids": [p.id for p in products], "wishes": wishes.describe(),
                                  "shown_after_the_faq_answer": True}

    @staticmethod
    def _closer_than_the_faq(turn: Turn, best: ProductHit) -> bool:
        product = best.semantic_score or 0.0
        faq = max((hit.semantic_score or 0.0 for hit in turn.hits), default=0.0)
        return product >= FOUND_SIMILARITY and product >= faq + FOUND_LEAD

    def _about(self, hit: ProductHit) -> bool:
        return ((hit.semantic_score or 0.0) >= self._config.min_similarity
                or (hit.keyword_score or 0.0) >= NAMED_KEYWORD)

    def _recommend(self, hits: list[ProductHit], wishes: Wishes, kinds: set[str], text: str,
                   earlier: list[str]) -> list[Product]:
        """The relevant products meeting every limit, best first; earlier interest breaks near-ties."""
        categories = set() if kinds else _named_categories(text, [hit.product for hit in hits])
        kept = []
        for rank, hit in enumerate(hits):
            product = hit.product
            if categories and product.category.casefold() not in categories:
                continue
            variants = matching_variants(product, wishes)
            if not variants:
                continue
            prices = [v.price_value for v in variants if v.price_value is not None]
            cheapest = min(prices) if prices else None
            if wishes.max_price is not None and (cheapest is None or cheapest > wishes.max_price):
                continue
            if wishes.min_price is not None and (cheapest is None or cheapest < wishes.min_price):
                continue
            relevance = max(hit.semantic_score or 0.0, hit.keyword_score or 0.0)
            boost = 0.02 if any(_related(product, earlier_id, hits) for earlier_id in earlier) else 0.0
            kept.append((relevance + boost, -rank, product))
        kept.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [product for _, _, product in kept[:self._config.max_recommendations]]

    async def _earlier_products(self, turn: Turn, products: dict[str, Product]) -> list[str]:
        """Products this conversation was shown before, latest first, then those in the orders it verified
        (what the shopper bought), from the stored traces."""
        shown, bought = await self._store.read(_earlier_interest, turn.conversation.key, turn.inbound.id)
        if bought:
            by_title = {product.title.casefold(): product.id for product in products.values()}
            shown += [by_title[title] for title in bought if title in by_title and by_title[title] not in shown]
        return shown

    def _answer(self, turn: Turn, told: Told, products: list[Product], wishes: Wishes, *, why: str) -> None:
        turn.draft = Draft(text=told.text, language=told.language, kind=ReplyKind.ANSWER, links=told.links, why=why)
        turn.trace["products"] = {"ids": [p.id for p in products], "wishes": wishes.describe()}
        turn.done = True
        log.info("products.answered conversation=%s products=%s", turn.conversation.key,
                 ",".join(p.id for p in products) or "-")


def _in_catalog_currency(wishes: Wishes, hits: list[ProductHit], trace: dict[str, Any]) -> Wishes:
    """A price limit in another currency than the catalog's is not applied: kefu does not convert prices."""
    currency = next((hit.product.currency for hit in hits if hit.product.currency), "")
    if wishes.currency and currency and wishes.currency != currency and (wishes.max_price or wishes.min_price):
        trace["products_price_limit"] = f"{wishes.currency} limit not applied to {currency} prices"
        return replace(wishes, max_price=None, min_price=None)
    return wishes


def _named(hits: list[ProductHit]) -> Product | None:
    """The product the message names: its title's words, or far closer in meaning than the next one."""
    if not hits:
        return None
    first = hits[0]
    second = hits[1] if len(hits) > 1 else None
    if (first.keyword_score or 0.0) >= NAMED_KEYWORD and (
            second is None or (first.keyword_score or 0.0) >= (second.keyword_score or 0.0) + 0.1):
        return first.product
    if second is None or (first.semantic_score or 0.0) >= (second.semantic_score or 0.0) + NAMED_LEAD:
        return first.product if (first.semantic_score or 0.0) >= 0.68 else None
    return None


def _named_categories(text: str, products: list[Product]) -> set[str]:
    """Catalog categories the message names ("jacket" for Jackets): then only those are recommended."""
    words = {word.casefold().rstrip("s") for word in re.findall(r"\w{3,}", text)}
    return {p.category.casefold() for p in products if p.category and p.category.casefold().rstrip("s") in words}


def _related(product: Product, earlier_id: str, hits: list[ProductHit]) -> bool:
    earlier = next((hit.product for hit in hits if hit.product.id == earlier_id), None)
    return earlier is not None and earlier.id != product.id and bool(
        (earlier.category and earlier.category == product.category) or set(earlier.tags) & set(product.tags))


def _earlier_interest(db: Any, conversation_key: str, before_id: int) -> tuple[list[str], list[str]]:
    """(product ids shown, latest first; item titles of the orders verified) in the conversation's last replies."""
    rows = db.execute("SELECT meta FROM messages WHERE conversation_key = ? AND direction = 'out' AND id < ? "
                      "AND (meta LIKE '%\"products\"%' OR meta LIKE '%\"proof\"%') ORDER BY id DESC LIMIT 10",
                      [conversation_key, before_id])
    shown: list[str] = []
    bought: list[str] = []
    for (meta,) in rows:
        trace = json.loads(meta)
        for product_id in (trace.get("products") or {}).get("ids", []):
            if product_id not in shown:
                shown.append(product_id)
        order = (trace.get("order") or {}).get("order") or {}
        for item in order.get("items") or []:
            title = str(item.get("title") or "").casefold()
            if title and title not in bought:
                bought.append(title)
    return shown, bought
