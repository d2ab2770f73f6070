"""The catalog from a merchant's file, for shops without a connector (or to try kefu with an export).

JSON: a list of products, or `{"products": [...]}`, each like

    {"id": "rain-jacket", "title": "Waxed cotton rain jacket", "description": "…", "category": "Jackets",
     "url": "https://…", "image_url": "https://…", "tags": ["waterproof", "hiking"],
     "translations": {"zh": {"title": "防水棉质雨衣", "description": "…"}},
     "variants": [{"id": "rj-m-navy", "options": {"size": "M", "color": "Navy"}, "price": "119.00",
                   "currency": "EUR", "stock": 4}]}

CSV: one row per variant, the product's columns repeated (or left empty after its first row):
`product_id, title, description, category, url, image_url, tags ("a; b"), variant_id, size, color,
price, currency, stock, available` plus `title_<lang>` / `description_<lang>` for translations.
Re-read when the file changes (the catalog service checks), like the FAQ and orders files.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bot.concurrency import run_blocking
from commerce.products import Product, ProductText, Variant
from commerce.sources.records import MerchantFileError, RecordError, json_records, text_field

OPTION_NAMES = {"size": "size", "größe": "size", "taille": "size", "talla": "size", "尺码": "size", "color": "color",
                "colour": "color", "farbe": "color", "couleur": "color", "颜色": "color"}
CSV_BASE = ("product_id", "title", "description", "category", "url", "image_url", "tags", "variant_id", "size", "color",
            "price", "currency", "stock", "available", "sku", "vendor")
TRANSLATED = re.compile(r"^(title|description)_([a-z]{2})$")


class CatalogFileError(MerchantFileError):
    """The catalog file cannot be used as written: names the file, the line or product, and the field."""


def option_key(name: str) -> str:
    """The options every source shares: "Size", "pa_size", "Größe" → "size"; others lower-cased."""
    key = name.strip().lower().removeprefix("pa_")
    return OPTION_NAMES.get(key, key)


def read_catalog(path: Path) -> list[Product]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFileError(path, "", f"cannot be read: {exc}") from None
    records = _csv_records(path, text) if path.suffix.lower() == ".csv" else json_records(
        path, text, plural="products", singular="product", key="id", error=CatalogFileError)
    products: list[Product] = []
    seen: set[str] = set()
    for where, record in records:
        try:
            product = product_from_record(record)
        except RecordError as exc:
            raise CatalogFileError(path, where, f"field '{exc.field}': {exc.problem}") from None
        except ValueError as exc:
            raise CatalogFileError(path, where, str(exc)) from None
        if product.id in seen:
            raise CatalogFileError(path, where, f"product id '{product.id}' is listed twice")
        seen.add(product.id)
        products.append(product)
    return products


def product_from_record(record: Mapping[str, Any]) -> Product:
    """One product from kefu's record format; ValueError naming the field when it is malformed."""
    product_id = text_field(record, "id")
    title = text_field(record, "title")
    if not product_id or not title:
        raise ValueError(f"field '{'id' if not product_id else 'title'}': is required")
    variants_raw = record.get("variants") or [{"id": product_id}]
    if not isinstance(variants_raw, list):
        raise ValueError("field 'variants': must be a list")
    translations_raw = record.get("translations") or {}
    if not isinstance(translations_raw, Mapping):
        raise ValueError("field 'translations': must be an object of language → {title, description}")
    tags = record.get("tags") or []
    if isinstance(tags, str):
        tags = [tag.strip() for tag in re.split(r"[;,]", tags) if tag.strip()]
    for key in ("url", "image_url"):
        value = text_field(record, key)
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(f"field '{key}': '{value}' must start with https:// or http://")
    return Product(
        id=product_id, title=title, description=text_field(record, "description"), url=text_field(record, "url"),
        image_url=text_field(record, "image_url"), category=text_field(record, "category"),
        vendor=text_field(record, "vendor"),
        tags=tuple(str(tag) for tag in tags),
        variants=tuple(_variant(value, index, product_id) for index, value in enumerate(variants_raw)),
        translations={lang: ProductText(text_field(value, "title") or title, text_field(value, "description"))
                      for lang, value in translations_raw.items() if isinstance(value, Mapping)},
        language=text_field(record, "language") or "en",
    )


def _variant(value: Any, index: int, product_id: str) -> Variant:
    where = f"variants[{index}]"
    if not isinstance(value, Mapping):
        raise ValueError(f"field '{where}': must be an object")
    price = text_field(value, "price")
    if price:
        try:
            if Decimal(price) < 0:
                raise InvalidOperation
        except InvalidOperation:
            raise ValueError(f"field '{where}.price': '{price}' is not a price like 59.90") from None
    stock_raw = value.get("stock")
    stock: int | None = None
    if stock_raw not in (None, ""):
        try:
            stock = int(stock_raw)
        except (TypeError, ValueError):
            raise ValueError(f"field '{where}.stock': '{stock_raw}' is not a whole number") from None
    available = value.get("available")
    if isinstance(available, str):
        available = available.strip().lower() not in ("false", "no", "0", "")
    options_raw = value.get("options") or {}
    if not isinstance(options_raw, Mapping):
        raise ValueError(f"field '{where}.options': must be an object like {{\"size\": \"M\"}}")
    options = {option_key(name): str(option).strip() for name, option in options_raw.items() if str(option).strip()}
    return Variant(
        id=text_field(value, "id") or f"{product_id}-{index + 1}",
        title=text_field(value, "title") or " / ".join(options.values()),
        options=options, price=price, currency=text_field(value, "currency"), stock=stock,
        available=(stock is None or stock > 0) if available is None else bool(available), sku=text_field(value, "sku"),
    )


def _csv_records(path: Path, text: str) -> list[tuple[str, Mapping[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    unknown = [c for c in columns if c not in CSV_BASE and not TRANSLATED.match(c)]
    if unknown or "product_id" not in columns or "title" not in columns:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "needs product_id and title columns"
        raise CatalogFileError(path, ":1", f"{problem}; columns: {', '.join(CSV_BASE)}, title_<lang>, "
                                           "description_<lang>")
    grouped: dict[str, dict[str, Any]] = {}
    lines: dict[str, str] = {}
    for row in reader:
        product_id = (row.get("product_id") or "").strip()
        if not product_id:
            raise CatalogFileError(path, f":{reader.line_num}", "field 'product_id': is required")
        record = grouped.get(product_id)
        if record is None:
            record = grouped[product_id] = {"id": product_id, "variants": [], "translations": {}}
            lines[product_id] = f":{reader.line_num}"
        for key in ("title", "description", "category", "url", "image_url", "tags", "vendor"):
            if row.get(key) and not record.get(key):
                record[key] = row[key]
        for column, value in row.items():
            match = TRANSLATED.match(column or "")
            if match and value:
                record["translations"].setdefault(match.group(2), {})[match.group(1)] = value
        options = {name: row[name] for name in ("size", "color") if row.get(name)}
        record["variants"].append({"id": row.get("variant_id") or "", "options": options, "price": row.get("price"),
                                   "currency": row.get("currency"), "stock": row.get("stock"),
                                   "available": row.get("available") or None, "sku": row.get("sku")})
    return [(lines[key], record) for key, record in grouped.items()]


class FileCatalog:
    """The catalog file as a CatalogSource: the whole file each time (it is small and local)."""

    name = "file"

    def __init__(self, path: Path):
        self.path = path

    def fingerprint(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except OSError as exc:  # a missing file: the merchant's to fix, named like any other problem in it
            raise CatalogFileError(self.path, "", f"cannot be read: {exc.strerror}") from None
        return stat.st_mtime_ns, stat.st_size

    async def products(self, changed_since: object = None) -> list[Product]:
        return await run_blocking(read_catalog, self.path)

    async def close(self) -> None:
        return None
