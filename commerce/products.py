"""A shop's catalog as kefu sees it: products with their variants, read from the shop's system, never written.

Every catalog source (Shopify, WooCommerce, a merchant's file) maps its records to these
dataclasses; the product index, the answers about a product and the recommendations know
only this shape. Prices are decimal strings as the shop gives them ("59.90"), never floats,
so a reply shows exactly the shop's price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol

from commerce.orders import ShopUnavailable


@dataclass(frozen=True)
class Variant:
    """One buyable version of a product: a size, a colour, or both."""

    id: str
    title: str = ""  # "M / Black", as the shop names it
    options: Mapping[str, str] = field(default_factory=dict)  # {"size": "M", "color": "Black"}, keys lower-case
    price: str = ""
    currency: str = ""
    stock: int | None = None  # units on hand; None when the shop does not track stock
    available: bool = True  # the shop sells it now (in stock, or it allows back-orders)
    sku: str = ""

    @property
    def price_value(self) -> Decimal | None:
        try:
            return Decimal(self.price) if self.price else None
        except InvalidOperation:
            return None


@dataclass(frozen=True)
class ProductText:
    """A product's title and description in one language."""

    title: str
    description: str = ""


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    description: str = ""
    url: str = ""
    image_url: str = ""
    category: str = ""  # the shop's product type ("Jackets")
    tags: tuple[str, ...] = ()
    vendor: str = ""
    variants: tuple[Variant, ...] = ()
    translations: Mapping[str, ProductText] = field(default_factory=dict)  # language → title, description
    language: str = "en"  # the language `title` and `description` are written in
    updated_at: datetime | None = None

    def text(self, language: str | None) -> ProductText:
        """The product in the shopper's language when the shop has it, else as written."""
        if language and language in self.translations:
            return self.translations[language]
        return ProductText(self.title, self.description)

    @property
    def currency(self) -> str:
        return next((v.currency for v in self.variants if v.currency), "")

    def prices(self) -> list[Decimal]:
        return sorted(p for p in (v.price_value for v in self.variants) if p is not None)

    def option_values(self, option: str) -> list[str]:
        """Every value of one option across the variants, in the shop's order ("S", "M", "L")."""
        seen: list[str] = []
        for variant in self.variants:
            value = variant.options.get(option)
            if value and value not in seen:
                seen.append(value)
        return seen


class CatalogUnavailable(ShopUnavailable):
    """The shop's system could not give the catalog (down, refused the credentials, malformed)."""


class CatalogSource(Protocol):
    """Reads products; `changed_since` asks only for those updated after it (None: the whole catalog)."""

    name: str

    async def products(self, changed_since: datetime | None = None) -> list[Product]: ...

    async def close(self) -> None: ...
