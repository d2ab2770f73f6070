"""Products told to the shopper: every name, price and stock state from the catalog record.

Nothing here is generated. A product the shopper named gets its price, whether the size or
colour they asked for is available, what is in stock, its description and its page; a
recommendation gets up to three products that satisfy every limit the shopper gave, each with
one line of why, made of the limits it meets and the first sentence of its own description.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.messages import Link
from bot.texts import Texts
from commerce.products import Product, Variant
from commerce.wishes import Wishes, colour_family

FIRST_SENTENCE = re.compile(r"^(.+?[.!?。！？])(?:\s|$)")


@dataclass(frozen=True)
class Told:
    text: str
    language: str
    links: tuple[Link, ...]


def matching_variants(product: Product, wishes: Wishes) -> list[Variant]:
    """The product's available variants that have the size and colour asked for (all when none was)."""
    found = []
    for variant in product.variants:
        if not variant.available:
            continue
        if wishes.size and variant.options.get("size", "").casefold() != wishes.size.casefold():
            continue
        if wishes.colour and not _has_colour(product, variant, wishes.colour):
            continue
        found.append(variant)
    return found


def _has_colour(product: Product, variant: Variant, family: str) -> bool:
    colour = variant.options.get("color")
    if colour:
        return colour_family(colour) == family
    return colour_family(f"{product.title} {' '.join(product.tags)}") == family  # a one-colour product


def price_text(variants: Sequence[Variant], texts: Texts, language: str) -> str:
    priced = sorted((v for v in variants if v.price_value is not None), key=lambda v: v.price_value)
    if not priced:
        return ""
    cheapest = f"{priced[0].price} {priced[0].currency}".strip()
    if priced[0].price_value == priced[-1].price_value:
        return cheapest
    return texts.get("product_from", language, price=cheapest)[0]


def product_line(product: Product, variants: Sequence[Variant], texts: Texts, language: str) -> str:
    """"Waxed cotton rain jacket — 119.00 EUR": the title in the shopper's language and the price of `variants`."""
    title = product.text(language).title
    price = price_text(variants, texts, language)
    return f"{title} — {price}" if price else title


def product_answer(product: Product, wishes: Wishes, texts: Texts, language: str) -> Told:
    """A named product: price, the size or colour asked for, stock, description, page."""
    shown = product.text(language)
    written_in = language if language in product.translations or language == product.language else product.language
    lines = [product_line(product, matching_variants(product, wishes) or product.variants, texts, language)]
    if wishes.size or wishes.colour:
        wanted = " / ".join(part for part in (wishes.size, _wanted_colour(product, wishes)) if part)
        key = "product_wanted_yes" if matching_variants(product, wishes) else "product_wanted_no"
        lines.append(texts.get(key, language, wanted=wanted)[0])
    in_stock, sold_out = _stock_labels(product)
    if in_stock and len(product.variants) > 1:
        lines.append(texts.get("product_in_stock", language, options=", ".join(in_stock))[0])
    if sold_out:
        lines.append(texts.get("product_sold_out", language, options=", ".join(sold_out))[0])
    if shown.description:
        lines.append(shown.description)
    if product.url:
        lines.append(product.url)
    return Told("\n".join(lines), written_in if written_in else language, product_links([product], language))


def recommendation(products: Sequence[Product], wishes: Wishes, texts: Texts, language: str) -> Told:
    """Up to the products given, each with its price and why it fits; or that nothing fits."""
    if not products:
        return Told(texts.get("product_recommend_none", language)[0], language, ())
    lines = [texts.get("product_recommend", language)[0]]
    for number, product in enumerate(products, start=1):
        shown = product.text(language)
        variants = matching_variants(product, wishes)
        price = price_text(variants, texts, language)
        reason = " · ".join(part for part in (_fits(variants, wishes), _first_sentence(shown.description)) if part)
        head = f"{number}. {shown.title}" + (f" — {price}" if price else "")
        lines.append(f"{head}: {reason}" if reason else head)
        if product.url:
            lines.append(product.url)
    return Told("\n".join(lines), language, product_links(products, language))


def _wanted_colour(product: Product, wishes: Wishes) -> str:
    """The catalog's own name for the colour asked for ("Navy" for blue), else the family."""
    if not wishes.colour:
        return ""
    for value in product.option_values("color"):
        if colour_family(value) == wishes.colour:
            return value
    return wishes.colour_word or wishes.colour


def _fits(variants: Sequence[Variant], wishes: Wishes) -> str:
    """The limits this product meets, in the catalog's words: "M, Navy"."""
    if not wishes.size and not wishes.colour:
        return ""
    values = []
    for variant in variants:
        label = " ".join(v for k, v in variant.options.items() if (k == "size" and wishes.size)
                         or (k == "color" and wishes.colour))
        if label and label not in values:
            values.append(label)
    return ", ".join(values)


def _stock_labels(product: Product) -> tuple[list[str], list[str]]:
    in_stock: list[str] = []
    sold_out: list[str] = []
    for variant in product.variants:
        label = variant.title or " / ".join(variant.options.values())
        if not label:
            continue
        target = in_stock if variant.available else sold_out
        if label not in target:
            target.append(label)
    return in_stock, sold_out


def _first_sentence(description: str) -> str:
    match = FIRST_SENTENCE.match(description.strip())
    return (match.group(1) if match else description.strip())[:200]


def product_links(products: Sequence[Product], language: str) -> tuple[Link, ...]:
    return tuple(Link(product.text(language).title[:60], product.url) for product in products if product.url)
