"""Orders and products at shop size: 10,000 products and 100,000 orders in the fake Shopify (issue 18).

    .venv/bin/python bench/commerce.py [--products 10000] [--orders 100000] [--turns 200] [--quick]
                                       [--seed 18] [--warm-catalog]

Everything runs in one process, over real HTTP on 127.0.0.1: the fake Shopify of the tests
(tests/fake_shopify.py, Admin GraphQL) holds a generated shop, and the real app (`KefuApp`, the
webhook channel, the sample shop's FAQ) reads its orders and its catalog from it
(`[orders] source = "shopify"`, `[catalog] source = "shopify"`).

- The shop is generated from a fixed seed: products of 34 product types (outdoor, clothing, home),
  "<line> <material> <type>" with size and colour variants, prices and stock (a fifth of the
  variants sold out), and the 31 hand-written target products of bench/data/products_targets.json
  inserted at random places. No generated product has a target's material in the target's product
  type (there is no other waxed-cotton jacket), but they share its types, colours and words. Orders
  are #100001, #100002, …, with an email each, line items from the catalog, and a status: being
  prepared, waiting for payment, shipped with tracking, delivered, cancelled or refunded.
- Start: the time to a running app, and within it the time the catalog took to be read from the
  fake (pages) and indexed (the catalog index folder is emptied first, unless --warm-catalog).
- Order turns: `--turns` conversations, each one message "where is my order #1xxxxx? my email is …"
  (en, de, es, zh), sent one at a time over POST /v1/messages after 5 warm-up turns. Each turn's
  latency, the fake's own handling time of the requests it made during the turn (timed inside the
  fake's handler), and kefu's overhead (the turn less the fake). A reply counts as right when it
  carries the order's status line (kefu's template for the status the generator gave the order,
  filled from the record) and, for shipped and delivered orders, its tracking number.
- Product search: every row of bench/data/products_labelled.csv in a fresh conversation; top-1 is
  right when the first product id kefu shows (the stored trace's `products.ids[0]`) is the target's.
- Recommendations: every row of bench/data/products_recommend.csv in a fresh conversation; every
  product kefu recommends is checked against the generated record: it must have one variant in
  stock that has the labelled size, the labelled colour (by family: "Navy" is blue, "Burgundy" red)
  and a price within the labelled limit, and be of the labelled product type. A product that fails
  is a violation (goal: 0). Also counted: queries with no recommendation, queries where kefu read
  fewer limits than labelled (the trace's `products.wishes`), and how many catalog products meet
  each query's limits.

Prints a table and writes bench/results/commerce.json (every query's outcome).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import json
import logging
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
# This file's own folder leaves the path: its name would hide kefu's `commerce` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the fake Shopify of the tests: a real Admin GraphQL server on 127.0.0.1

from fake_shopify import FakeShopify, fulfillment, line_item, tracking, variant  # noqa: E402

from bot.app import KefuApp  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.texts import Texts  # noqa: E402

DATA = REPO / "bench" / "data"
TARGETS = DATA / "products_targets.json"
LABELLED = DATA / "products_labelled.csv"
RECOMMEND = DATA / "products_recommend.csv"
RESULTS = REPO / "bench" / "results"
WORK = RESULTS / "commerce"  # the database, the index folder (FAQ and catalog) and nothing else
SAMPLE_FAQ = REPO / "examples" / "sample-shop" / "faq"
TOKEN = "commerce-bench-token-0123456789"
SHOP_TOKEN = "shpat_bench_0123456789abcdef"
API_VERSION = "2025-07"
SHOP_NAME = "Test Shop"
WARMUP_TURNS = 5

# -- the catalog's vocabulary --------------------------------------------------------------------------------

# Colour values as a shop writes them, and the family a shopper's word means (the ground truth of a colour
# limit; kefu knows most of these names, not Ivory, Slate, Burgundy or Khaki).
COLOURS = {
    "Black": "black", "White": "white", "Ivory": "white", "Grey": "grey", "Charcoal": "grey", "Slate": "grey",
    "Navy": "blue", "Sky blue": "blue", "Denim blue": "blue", "Red": "red", "Burgundy": "red", "Olive": "green",
    "Forest green": "green", "Sage green": "green", "Brown": "brown", "Cognac": "brown", "Tan": "brown",
    "Sand": "beige", "Beige": "beige", "Khaki": "beige", "Mustard": "yellow", "Yellow": "yellow", "Pink": "pink",
    "Dusty pink": "pink",
}
APPAREL = ("Black", "Navy", "Olive", "Grey", "Charcoal", "Red", "Burgundy", "Sand", "Forest green", "Sky blue",
           "Mustard", "White", "Brown", "Khaki", "Dusty pink", "Slate")
FOOTWEAR = ("Black", "Brown", "Cognac", "Tan", "Grey", "Navy", "Olive", "Sand", "Red")
HOME = ("White", "Ivory", "Grey", "Sand", "Beige", "Sage green", "Dusty pink", "Mustard", "Navy", "Charcoal",
        "Yellow", "Brown")
GEAR = ("Black", "Grey", "Olive", "Red", "Navy", "Sky blue", "Yellow", "Forest green", "Slate")
CLOTHING = ("XS", "S", "M", "L", "XL", "XXL")
SHOES = tuple(str(n) for n in range(36, 47))
LINES = ("Alpine", "Fjord", "Harbor", "Cedar", "Summit", "Ridge", "Tundra", "Birch", "Coastal", "Nordic", "Trail",
         "Meadow", "Canyon", "Glacier", "Willow", "Aspen", "Boulder", "Pine", "Lakeside", "Highland", "Dune", "Moor",
         "Heath", "Cliff", "Valley", "Prairie", "Timber", "Orchard", "Beacon", "Compass", "Drift", "Ember", "Fern",
         "Grove", "Haven", "Isle", "Juniper", "Kestrel", "Lark", "Maple", "Nook", "Oak", "Pebble", "Quarry",
         "Raven", "Shore", "Thistle", "Upland", "Vale", "Wren", "Yarrow", "Zephyr", "Basin", "Crest", "Delta",
         "Estuary", "Falcon", "Gorge", "Hollow", "Inlet")
ADJECTIVES = ("lightweight", "durable", "classic", "versatile", "comfortable", "hard-wearing", "everyday", "handsome",
              "practical", "timeless")


@dataclass(frozen=True)
class Kind:
    """One product type (Shopify's productType): its nouns with the materials each comes in, and the rest."""

    types: dict[str, tuple[str, ...]]
    colours: tuple[str, ...]
    price: tuple[int, int]
    uses: tuple[str, ...]
    tags: tuple[str, ...]
    sizes: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "Jackets": Kind({"rain jacket": ("recycled polyester", "ripstop nylon", "organic cotton", "nylon"),
                     "shell jacket": ("recycled nylon", "ripstop nylon", "3-layer polyester"),
                     "fleece jacket": ("recycled fleece", "polar fleece", "sherpa fleece"),
                     "down jacket": ("duck down", "goose down", "synthetic fill"),
                     "softshell jacket": ("softshell", "stretch polyester"),
                     "parka": ("duck down", "synthetic fill", "cotton twill"),
                     "field jacket": ("cotton twill", "organic cotton", "cotton canvas"),
                     "windbreaker": ("ripstop nylon", "recycled polyester")},
                    APPAREL, (59, 329), ("for hiking, city days and travel", "with a hood and zipped pockets",
                                         "packs into its own pocket", "warm enough for cold mornings"),
                    ("outdoor", "hiking", "waterproof", "winter", "rain", "travel"), CLOTHING),
    "Boots": Kind({"hiking boots": ("leather", "full-grain leather", "synthetic", "nubuck"),
                   "winter boots": ("leather", "synthetic", "felt-lined leather"),
                   "rain boots": ("PVC", "recycled rubber"),
                   "chelsea boots": ("leather", "waxed leather")},
                  FOOTWEAR, (79, 229), ("with a grippy rubber sole", "for trails and muddy paths",
                                        "with a waterproof membrane", "broken in from the first day"),
                  ("hiking", "outdoor", "winter", "waterproof"), SHOES),
    "Shoes": Kind({"trail running shoes": ("mesh", "recycled mesh", "synthetic"),
                   "sneakers": ("canvas", "leather", "suede"), "approach shoes": ("suede", "synthetic")},
                  FOOTWEAR, (59, 169), ("with a cushioned sole", "for trails and town", "light and breathable"),
                  ("running", "everyday", "trail"), SHOES),
    "Sandals": Kind({"sandals": ("EVA", "rubber", "cork footbed", "leather"),
                     "hiking sandals": ("webbing", "recycled polyester")},
                    FOOTWEAR, (29, 119), ("for summer days and rivers", "with adjustable straps"),
                    ("summer", "beach", "travel"), SHOES),
    "Slippers": Kind({"slippers": ("sheepskin", "fleece-lined cotton", "knitted wool", "suede")},
                     HOME, (19, 69), ("for cold floors", "with a non-slip sole"), ("home", "winter", "gift"), SHOES),
    "Scarves": Kind({"scarf": ("cotton", "linen", "cashmere", "alpaca", "lambswool", "silk", "recycled polyester"),
                     "snood": ("fleece", "knitted acrylic")},
                    APPAREL, (19, 129), ("soft and warm", "light enough for spring", "a generous 180 cm long"),
                    ("winter", "gift", "knit")),
    "Hats": Kind({"beanie": ("merino wool", "acrylic", "recycled wool", "cotton"),
                  "cap": ("cotton twill", "waxed cotton", "recycled polyester"),
                  "bucket hat": ("cotton canvas", "linen")},
                 APPAREL, (15, 79), ("one size fits most", "warm without itching", "for sun and rain"),
                 ("winter", "summer", "gift")),
    "Gloves": Kind({"gloves": ("merino wool", "leather", "fleece", "softshell"), "mittens": ("wool", "down")},
                   APPAREL, (15, 89), ("touchscreen-friendly fingertips", "warm on cold mornings"),
                   ("winter", "warm", "outdoor"), ("S", "M", "L", "XL")),
    "Socks": Kind({"hiking socks": ("merino wool", "wool blend"), "everyday socks": ("organic cotton", "cotton"),
                   "ski socks": ("merino wool",), "running socks": ("recycled polyester",)},
                  APPAREL, (8, 29), ("cushioned where it matters", "that don't slip"), ("everyday", "hiking"),
                  ("36-38", "39-42", "43-46")),
    "Sunglasses": Kind({"sunglasses": ("acetate", "metal", "recycled plastic", "walnut wood")},
                       ("Black", "Brown", "Tan", "Grey", "Navy"), (29, 149),
                       ("with polarised UV400 lenses", "with a hard case"), ("summer", "beach", "travel")),
    "Backpacks": Kind({"hiking backpack": ("ripstop nylon", "recycled polyester"),
                       "daypack": ("waxed canvas", "recycled nylon", "cotton canvas"),
                       "roll-top backpack": ("TPU-coated nylon", "waxed cotton")},
                      GEAR, (39, 229), ("with a padded laptop sleeve", "with a rain cover", "for day hikes and commutes"),
                      ("hiking", "travel", "everyday")),
    "Bags": Kind({"tote bag": ("cotton canvas", "organic cotton", "jute", "recycled PET"),
                  "duffel bag": ("waxed canvas", "recycled nylon", "canvas"),
                  "hip pack": ("recycled nylon", "ripstop nylon"), "messenger bag": ("canvas", "waxed canvas")},
                 GEAR, (19, 199), ("with an inside pocket", "for travel and the market", "with a shoulder strap"),
                 ("travel", "everyday", "shopping")),
    "Tents": Kind({"2-person tent": ("nylon", "polyester", "silnylon"), "3-person tent": ("polyester", "nylon"),
                   "bell tent": ("cotton canvas",), "tunnel tent": ("polyester",)},
                  GEAR, (99, 699), ("pitched in minutes", "with two porches", "for three seasons"),
                  ("camping", "outdoor", "trekking")),
    "Sleeping bags": Kind({"sleeping bag": ("synthetic fill", "duck down", "recycled down", "recycled polyester fill"),
                           "camping quilt": ("duck down", "synthetic fill")},
                          GEAR, (69, 449), ("comfortable down to 0 °C", "packs small", "with a draught collar"),
                          ("camping", "trekking", "winter"), ("Regular", "Long")),
    "Trekking poles": Kind({"trekking poles": ("aluminium", "aluminium 7075"), "folding trekking poles": ("aluminium",),
                            "walking stick": ("ash wood", "aluminium")},
                           GEAR, (29, 129), ("with foam grips", "adjustable from 100 to 135 cm"),
                           ("hiking", "trekking")),
    "Lanterns": Kind({"camping lantern": ("LED", "rechargeable LED"), "hanging lantern": ("brass", "steel"),
                      "candle lantern": ("glass", "brass"), "oil lantern": ("brass",)},
                     GEAR, (15, 89), ("for the tent and the garden", "with a warm, dimmable light"),
                     ("camping", "light", "garden")),
    "Headlamps": Kind({"headlamp": ("rechargeable", "AAA battery", "aluminium")},
                      GEAR, (19, 79), ("up to 400 lumens", "with a red night mode"), ("camping", "running", "light")),
    "Bottles": Kind({"water bottle": ("aluminium", "Tritan plastic", "glass", "recycled plastic"),
                     "sports bottle": ("silicone", "Tritan plastic"), "thermos flask": ("glass-lined", "plastic")},
                    GEAR, (12, 45), ("leak-proof", "dishwasher safe", "with a carry loop"), ("hiking", "everyday"),
                    ("500 ml", "750 ml", "1 l")),
    "Mugs": Kind({"camping mug": ("enamel", "stainless steel"), "coffee mug": ("ceramic", "stoneware", "porcelain"),
                  "travel mug": ("stainless steel", "bamboo fibre")},
                 HOME, (9, 39), ("for coffee by the fire", "holds 350 ml"), ("camping", "kitchen", "coffee")),
    "Cookware": Kind({"frying pan": ("stainless steel", "aluminium", "carbon steel"),
                      "camping pot set": ("aluminium", "stainless steel", "titanium"),
                      "dutch oven": ("enamelled steel",)},
                     GEAR, (19, 129), ("for the stove and the campfire", "with a folding handle"),
                     ("camping", "cooking", "kitchen")),
    "Coffee gear": Kind({"pour-over dripper": ("glass", "stainless steel", "plastic"),
                         "french press": ("glass", "stainless steel"), "coffee grinder": ("steel burr",),
                         "moka pot": ("aluminium", "stainless steel")},
                        HOME, (15, 149), ("for one to four cups", "easy to clean"), ("coffee", "kitchen")),
    "Yoga mats": Kind({"yoga mat": ("TPE", "natural rubber", "PVC", "jute"), "travel yoga mat": ("natural rubber", "TPE")},
                      HOME, (25, 119), ("non-slip on both sides", "with a carry strap"), ("yoga", "fitness")),
    "Blankets": Kind({"blanket": ("merino wool", "cotton", "fleece", "recycled wool", "cashmere"),
                      "throw blanket": ("cotton", "chunky knit acrylic", "linen"),
                      "picnic blanket": ("recycled polyester", "wool")},
                     HOME, (39, 249), ("for the sofa or the bed", "130 x 170 cm"), ("home", "cosy", "gift")),
    "Bedding": Kind({"duvet cover": ("cotton percale", "cotton sateen", "organic cotton"),
                     "bed sheet set": ("cotton percale", "bamboo lyocell", "flannel"),
                     "pillowcase": ("silk", "organic cotton")},
                    HOME, (39, 199), ("soft from the first night", "with hidden buttons"), ("bedroom", "home"),
                    ("Single", "Double", "King")),
    "Cushions": Kind({"cushion cover": ("linen", "velvet", "cotton", "wool"), "floor cushion": ("cotton canvas", "jute")},
                     HOME, (15, 69), ("45 x 45 cm with a zip", "for the sofa and the floor"), ("home", "living room")),
    "Candles": Kind({"candle": ("soy wax", "rapeseed wax", "coconut wax", "paraffin"), "scented candle": ("soy wax",),
                     "tealights": ("paraffin", "soy wax")},
                    HOME, (8, 45), ("burns for about 40 hours", "with a cotton wick"), ("home", "gift")),
    "Baskets": Kind({"storage basket": ("seagrass", "jute", "cotton rope", "wire", "water hyacinth"),
                     "laundry basket": ("seagrass", "cotton rope"), "bread basket": ("willow",)},
                    HOME, (15, 79), ("hand-woven", "with sturdy handles"), ("home", "storage"),
                    ("Small", "Medium", "Large")),
    "Aprons": Kind({"apron": ("cotton canvas", "denim", "waxed canvas", "organic cotton"), "bib apron": ("cotton twill",)},
                   HOME, (19, 59), ("with two front pockets", "with long ties"), ("kitchen", "cooking")),
    "Hoodies": Kind({"hoodie": ("recycled polyester", "fleece", "merino wool", "cotton blend"),
                     "zip hoodie": ("fleece", "cotton")},
                    APPAREL, (39, 119), ("with a kangaroo pocket", "brushed inside"), ("everyday", "casual"), CLOTHING),
    "Sweaters": Kind({"sweater": ("merino wool", "cotton", "cashmere", "alpaca", "recycled wool"),
                      "cardigan": ("merino wool", "cotton"), "turtleneck": ("merino wool",)},
                     APPAREL, (49, 199), ("a relaxed fit", "knitted in Portugal"), ("winter", "knit", "gift"), CLOTHING),
    "Shirts": Kind({"shirt": ("oxford cotton", "linen", "chambray", "denim", "merino wool"),
                    "overshirt": ("cotton twill", "wool")},
                   APPAREL, (29, 109), ("with a button-down collar", "for work and weekends"), ("everyday", "casual"),
                   CLOTHING),
    "T-shirts": Kind({"t-shirt": ("organic cotton", "merino wool", "recycled polyester", "linen"),
                      "long-sleeve t-shirt": ("merino wool", "cotton")},
                     APPAREL, (15, 59), ("a regular fit", "soft and breathable"), ("everyday", "summer"), CLOTHING),
    "Trousers": Kind({"trousers": ("cotton twill", "softshell", "linen", "denim", "wool"),
                      "hiking trousers": ("stretch nylon", "softshell"), "chinos": ("cotton twill",)},
                     APPAREL, (39, 149), ("with a gusseted crotch", "a straight leg"), ("everyday", "hiking"), CLOTHING),
    "Shorts": Kind({"shorts": ("cotton twill", "linen", "recycled nylon"), "hiking shorts": ("stretch nylon",)},
                   APPAREL, (25, 79), ("with a drawstring waist", "quick-drying"), ("summer", "hiking"), CLOTHING),
}

# -- the generated shop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantRecord:
    size: str | None
    colour: str
    price: Decimal
    stock: int

    @property
    def title(self) -> str:
        return f"{self.size} / {self.colour}" if self.size else self.colour


@dataclass
class ProductRecord:
    handle: str
    title: str
    type: str
    material: str
    description: str
    tags: tuple[str, ...]
    variants: list[VariantRecord]
    target: bool = False
    kefu_id: str = ""  # the numeric tail of the Shopify gid, kefu's product id

    def fits(self, *, size: str | None, colour: str | None, max_price: Decimal | None) -> bool:
        """Whether one variant in stock has the size, the colour (family) and a price within the limit."""
        return any(v.stock > 0 and (size is None or (v.size or "").casefold() == size.casefold())
                   and (colour is None or COLOURS.get(v.colour) == colour)
                   and (max_price is None or v.price <= max_price) for v in self.variants)


def _price(rng: random.Random, low: int, high: int) -> Decimal:
    whole = rng.randint(low, high)
    return Decimal(f"{whole}.{rng.choice(('00', '00', '90', '95'))}")


def _variants(rng: random.Random, sizes: list[str], colours: list[str], base: Decimal, *,
              sold_out: tuple[str, ...] = (), stock: bool = True) -> list[VariantRecord]:
    out = []
    for colour in colours:
        for size in sizes or [None]:
            record = VariantRecord(size, colour, base, 0)
            up = Decimal("5.00") if size in ("XXL", "King", "1 l", "Long") else Decimal("0")
            quantity = (0 if rng.random() < 0.2 else rng.randint(1, 30)) if stock else rng.randint(2, 30)
            if record.title in sold_out:
                quantity = 0
            out.append(VariantRecord(size, colour, base + up, quantity))
    return out


def load_targets() -> list[ProductRecord]:
    rng = random.Random(0)
    targets = []
    for t in json.loads(TARGETS.read_text(encoding="utf-8"))["targets"]:
        if t["type"] not in KINDS:
            raise SystemExit(f"{TARGETS}: target '{t['handle']}' has type '{t['type']}', not one of the catalog's")
        unknown = [c for c in t["colours"] if c not in COLOURS]
        if unknown:
            raise SystemExit(f"{TARGETS}: target '{t['handle']}' has colours {unknown} without a family")
        variants = _variants(rng, t["sizes"], t["colours"], Decimal(t["price"]), sold_out=tuple(t["sold_out"]),
                             stock=False)
        targets.append(ProductRecord(t["handle"], t["title"], t["type"], t["material"], t["description"],
                                     tuple(t["tags"]), variants, target=True))
    return targets


def generate_catalog(rng: random.Random, count: int, targets: list[ProductRecord]) -> list[ProductRecord]:
    """`count` products in all: the targets at random places among generated ones that never share a target's
    material within its product type."""
    forbidden = [(t.type, t.material.casefold()) for t in targets]
    choices = {kind: [(noun, material) for noun, materials in spec.types.items() for material in materials
                      if not any(kind == f_kind and f_material in material.casefold() for f_kind, f_material in forbidden)]
               for kind, spec in KINDS.items()}
    kinds = sorted(choices)
    used_titles = {t.title.casefold() for t in targets}
    generated = []
    for n in range(max(0, count - len(targets))):
        kind_name = rng.choice(kinds)
        noun, material = rng.choice(choices[kind_name])
        kind = KINDS[kind_name]
        title = f"{material[0].upper()}{material[1:]} {noun}"
        if title.casefold() in used_titles or rng.random() < 0.75:
            title = f"{rng.choice(LINES)} {material} {noun}"
        while title.casefold() in used_titles:
            title = f"{rng.choice(LINES)} {material} {noun} {rng.choice(('II', 'Pro', 'Lite', '2.0', 'Plus', 'Classic'))}"
        used_titles.add(title.casefold())
        adjective = rng.choice(ADJECTIVES)
        article = "" if noun.endswith("s") else "an " if adjective[0] in "aeiou" else "a "  # "hiking boots"
        uses = rng.sample(kind.uses, k=min(2, len(kind.uses)))
        opening = f"{article}{adjective} {noun} in {material}"
        description = f"{opening[0].upper()}{opening[1:]}, {uses[0]}." + (
            f" {uses[1][0].upper()}{uses[1][1:]}." if len(uses) > 1 else "")
        sizes = list(kind.sizes)
        if kind.sizes == SHOES:
            low = rng.randint(0, 3)
            sizes = list(SHOES[low:low + rng.randint(6, 11 - low)])
        elif kind.sizes == CLOTHING and rng.random() < 0.5:
            sizes = list(CLOTHING[1:5])
        colours = rng.sample(kind.colours, k=rng.randint(1, min(3, len(kind.colours))))
        tags = tuple(sorted(rng.sample(kind.tags, k=min(len(kind.tags), rng.randint(1, 3)))))
        generated.append(ProductRecord(f"p{n + 1:05d}-{_slug(title)}", title, kind_name, material, description, tags,
                                       _variants(rng, sizes, colours, _price(rng, *kind.price))))
    products = list(generated)
    for target in targets:
        products.insert(rng.randint(0, len(products)), target)
    return products


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())[:60]


FIRST = ("anna", "ben", "chen", "dana", "emil", "fatima", "george", "hana", "ivan", "julia", "kenji", "lena",
         "mateo", "nora", "omar", "paula", "quentin", "rosa", "sven", "tara", "umar", "vera", "wei", "xenia", "yusuf",
         "zoe")
LAST = ("silva", "meyer", "li", "novak", "garcia", "kowalski", "jensen", "rossi", "martin", "wang", "schmidt",
        "dubois", "tanaka", "ivanova", "haddad", "moreau", "fischer", "lopez", "kim", "berg")
CARRIERS = (("DHL", "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode={}"),
            ("UPS", "https://www.ups.com/track?tracknum={}"), ("DPD", "https://tracking.dpd.de/status/de_DE/parcel/{}"),
            ("GLS", "https://gls-group.com/track/{}"), ("Hermes", None))
STATUSES = (("processing", 25), ("pending_payment", 5), ("shipped", 30), ("delivered", 30), ("cancelled", 5),
            ("refunded", 5))


@dataclass(frozen=True)
class OrderRecord:
    name: str
    email: str
    status: str  # the status kefu must tell: processing, pending_payment, shipped, delivered, cancelled, refunded
    created: datetime.datetime
    shipped: datetime.datetime | None
    delivered: datetime.datetime | None
    carrier: str | None
    tracking_number: str | None


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def load_orders(shop: FakeShopify, rng: random.Random, count: int, products: list[ProductRecord]) -> list[OrderRecord]:
    """`count` orders #100001… in the fake, and what each must be told as."""
    # A pool of line items (the fake's own nodes; an order never changes them, so orders share them).
    pool = []
    for product in rng.sample(products, k=min(len(products), 3000)):
        v = rng.choice(product.variants)
        pool.append(line_item(product.title, rng.choice((1, 1, 1, 2)), variant_title=v.title,
                              sku=f"{product.handle[:12].upper()}-{len(pool)}"))
    names, weights = zip(*STATUSES)
    start = datetime.datetime(2026, 6, 1, 8, 0, tzinfo=datetime.UTC)
    records = []
    for n in range(count):
        name = f"#{100001 + n}"
        email = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{n}@example.com"
        status = rng.choices(names, weights)[0]
        created = start + datetime.timedelta(minutes=n * 2 + rng.randint(0, 1))
        items = rng.sample(pool, k=rng.choice((1, 1, 2, 3)))
        shipped = delivered = None
        carrier = number = None
        fulfillments = []
        financial, fulfillment_status, cancelled = "PAID", "UNFULFILLED", None
        if status in ("shipped", "delivered", "refunded"):
            shipped = created + datetime.timedelta(hours=rng.randint(10, 60))
            delivered = shipped + datetime.timedelta(hours=rng.randint(20, 90)) if status != "shipped" else None
            carrier, url = rng.choice(CARRIERS)
            number = f"{rng.randint(10 ** 11, 10 ** 12 - 1)}{n:08d}"
            fulfillments = [fulfillment(display_status="DELIVERED" if delivered else "IN_TRANSIT",
                                        created_at=_iso(shipped), updated_at=_iso(delivered or shipped),
                                        in_transit_at=_iso(shipped), delivered_at=_iso(delivered),
                                        tracking_info=[tracking(carrier, number, url.format(number) if url else None)])]
            fulfillment_status = "FULFILLED"
            financial = "REFUNDED" if status == "refunded" else "PAID"
        elif status == "pending_payment":
            financial = "PENDING"
        elif status == "cancelled":
            financial, cancelled = "VOIDED", _iso(created + datetime.timedelta(hours=3))
        total = sum((Decimal("29.90") for _ in items), Decimal("0"))
        shop.add_order(name, financial_status=financial, fulfillment_status=fulfillment_status, email=email,
                       customer_id=7_000_000 + n, created_at=_iso(created), updated_at=_iso(delivered or shipped or created),
                       cancelled_at=cancelled, cancel_reason="CUSTOMER" if cancelled else None, total=str(total),
                       line_items=items, fulfillments=fulfillments)
        records.append(OrderRecord(name, email, status, created, shipped, delivered, carrier, number))
    return records


class TimedShopify(FakeShopify):
    """The fake, timing its own handler: (what was asked, seconds) per request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handled: list[tuple[str, float, float]] = []  # ("orders" | "products" | "other", arrived, seconds)

    async def _handle(self, request):  # noqa: ANN001, ANN202 (the fake's own signature)
        arrived = time.time()
        started = time.perf_counter()
        try:
            return await super()._handle(request)
        finally:
            body = self.requests[-1].body if self.requests else None
            query = body.get("query", "") if isinstance(body, dict) else ""
            kind = "orders" if "KefuOrderByName" in query else "products" if "KefuCatalogPage" in query else "other"
            self.handled.append((kind, arrived, time.perf_counter() - started))


def add_products(shop: FakeShopify, products: list[ProductRecord]) -> None:
    for p in products:
        variants = []
        for v in p.variants:
            options = {"Size": v.size, "Color": v.colour} if v.size else {"Color": v.colour}
            variants.append(variant(v.title, f"{v.price:.2f}", options=options,
                                    sku=f"{p.handle[:16].upper()}-{len(variants) + 1}", inventory_quantity=v.stock))
        node = shop.add_product(p.title, handle=p.handle, description=p.description, product_type=p.type,
                                vendor=SHOP_NAME, tags=p.tags, variants=variants)
        p.kefu_id = node["legacyResourceId"]


# -- the app ------------------------------------------------------------------------------------------------


def write_config(folder: Path, shop_url: str) -> Path:
    """tests/conftest.write_config's shop (the sample FAQ, the webhook), reading orders and the catalog from the fake.

    Shipments are never handed over as stuck parcels (`stuck_after_days = 0`): the generated dates are fixed, and a
    handoff would change the reply being measured.
    """
    path = folder / "kefu.toml"
    path.write_text(f"""
[shop]
name = "{SHOP_NAME}"
default_language = "en"
languages = ["en", "zh"]

[storage]
database = "{(folder / 'kefu.db').as_posix()}"
index_dir = "{(folder / 'index').as_posix()}"

[knowledge]
faq_dir = "{SAMPLE_FAQ.as_posix()}"

[retrieval]
top_topics = ["order-tracking", "shipping-time", "returns-policy"]

[http]
host = "127.0.0.1"
port = 0
shutdown_timeout_seconds = 5

[webhook]
enabled = true
token = "{TOKEN}"

[handoff]
enabled = false

[orders]
source = "shopify"
stuck_after_days = 0

[orders.shopify]
shop_url = "{shop_url}"
api_version = "{API_VERSION}"
token_env = "BENCH_SHOPIFY_TOKEN"

[catalog]
source = "shopify"

[catalog.shopify]
shop_url = "{shop_url}"
api_version = "{API_VERSION}"
token_env = "BENCH_SHOPIFY_TOKEN"
""", encoding="utf-8")
    return path


class LogTimes(logging.Handler):
    """When the catalog's log lines came (time.time()), and the warnings on the way."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: dict[str, float] = {}
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.times.setdefault(message.split(" ", 1)[0], record.created)
        if record.levelno >= logging.WARNING or message.startswith(("catalog.", "shopify.catalog.read",
                                                                    "shopify.catalog.page_too_costly")):
            self.lines.append(f"{record.levelname} {record.name}: {message}"[:300])


@dataclass
class Turn:
    reply: dict
    meta: dict
    seconds: float
    fake_seconds: float
    fake_requests: int


class Client:
    def __init__(self, app: KefuApp, shop: TimedShopify, session: aiohttp.ClientSession) -> None:
        self.app, self.shop, self.session = app, shop, session
        assert app.http is not None
        self.url = f"{app.http.base_url}/v1/messages"
        self.db = sqlite3.connect(app.config.storage.database)

    async def ask(self, text: str, conversation: str) -> Turn:
        before = len(self.shop.handled)
        started = time.perf_counter()
        async with self.session.post(self.url, json={"conversation_id": conversation, "text": text},
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            body = await response.json()
            status = response.status
        seconds = time.perf_counter() - started
        if status != 200:
            raise SystemExit(f"kefu answered {status} to {text!r}: {body}")
        reply = body["reply"]
        row = self.db.execute("SELECT meta FROM messages WHERE id = ?", [reply["message_id"]]).fetchone()
        handled = self.shop.handled[before:]
        return Turn(reply, json.loads(row[0]) if row and row[0] else {}, seconds,
                    sum(s for kind, _, s in handled if kind == "orders"), sum(1 for kind, *_ in handled if kind == "orders"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def ms(values: list[float], share: float) -> float:
    return round(percentile(values, share) * 1000, 1)


# -- order turns --------------------------------------------------------------------------------------------

ORDER_MESSAGES = (
    ("en", "where is my order {number}? my email is {email}"),
    ("en", "hi, order {number} hasn't arrived yet, email {email}"),
    ("de", "Wo bleibt meine Bestellung {number}? Meine E-Mail ist {email}"),
    ("es", "¿Dónde está mi pedido {number}? Mi correo es {email}"),
    ("zh", "我的订单 {number} 到哪了？邮箱是 {email}"),
    ("zh", "请帮我查一下订单号{digits}，邮箱{email}"),  # as Chinese shoppers write it: the digits, no spaces
)


def expected_order_text(order: OrderRecord, texts: Texts, language: str) -> tuple[str, str | None]:
    """The status line kefu's template gives this order in `language`, and the tracking number it must show."""
    day = (lambda moment: moment.date().isoformat() if moment else "—")
    line, _ = texts.get(f"order_status_{order.status}", language, order=order.name, placed=day(order.created),
                        shipped=day(order.shipped), delivered=day(order.delivered))
    shows_tracking = order.status in ("shipped", "delivered") and order.tracking_number
    return line, order.tracking_number if shows_tracking else None


async def order_turns(client: Client, orders: list[OrderRecord], turns: int, rng: random.Random,
                      texts: Texts) -> dict:
    chosen = rng.sample(orders, k=min(len(orders), turns + WARMUP_TURNS))
    rows = []
    for n, order in enumerate(chosen):
        language, template = ORDER_MESSAGES[n % len(ORDER_MESSAGES)]
        text = template.format(number=order.name, digits=order.name.lstrip("#"), email=order.email)
        turn = await client.ask(text, f"order-{n}")
        if n < WARMUP_TURNS:
            continue
        status_line, number = expected_order_text(order, texts, turn.reply["language"])
        reply_text = turn.reply["text"]
        right = status_line in reply_text and (number is None or number in reply_text)
        rows.append({"order": order.name, "status": order.status, "language": language, "template": template,
                     "right": right, "ms": round(turn.seconds * 1000, 1), "fake_ms": round(turn.fake_seconds * 1000, 2),
                     "fake_requests": turn.fake_requests, "reply_language": turn.reply["language"],
                     **({} if right else {"reply": reply_text[:300], "expected": status_line})})
    looked_up = [r for r in rows if r["fake_requests"]]
    turn_s = [r["ms"] / 1000 for r in looked_up]
    fake_s = [r["fake_ms"] / 1000 for r in looked_up]
    overhead = [(r["ms"] - r["fake_ms"]) / 1000 for r in looked_up]
    by_template = Counter((r["template"], r["right"]) for r in rows)
    return {
        "turns": len(rows), "right": sum(r["right"] for r in rows), "looked_up": len(looked_up),
        "p50_ms": ms(turn_s, 0.5), "p95_ms": ms(turn_s, 0.95),
        "fake_p50_ms": ms(fake_s, 0.5), "fake_p95_ms": ms(fake_s, 0.95),
        "kefu_p50_ms": ms(overhead, 0.5), "kefu_p95_ms": ms(overhead, 0.95),
        "all_turns_p50_ms": ms([r["ms"] / 1000 for r in rows], 0.5),
        "all_turns_p95_ms": ms([r["ms"] / 1000 for r in rows], 0.95),
        "by_template": [{"template": t, "right": by_template[(t, True)], "wrong": by_template[(t, False)]}
                        for _, t in ORDER_MESSAGES],
        "failures": [r for r in rows if not r["right"]],
        "rows": rows,
    }


# -- product search -----------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]


def check_recommend_rows(rows: list[dict[str, str]]) -> None:
    """A label the catalog cannot have is an error, not a silent pass."""
    sizes = {size for kind in KINDS.values() for size in kind.sizes}
    for number, row in enumerate(rows, start=2):
        problem = None
        if row["category"] and row["category"] not in KINDS:
            problem = f"category '{row['category']}' is not a product type of the catalog"
        elif row["colour"] and row["colour"] not in set(COLOURS.values()):
            problem = f"colour '{row['colour']}' is not a colour family"
        elif row["size"] and row["size"] not in sizes:
            problem = f"size '{row['size']}' is no size of the catalog"
        elif row["max_price"] and not row["max_price"].replace(".", "", 1).isdigit():
            problem = f"max_price '{row['max_price']}' is not a number"
        if problem:
            raise SystemExit(f"{RECOMMEND}:{number}: {problem}")


async def product_search(client: Client, rows: list[dict[str, str]], by_handle: dict[str, ProductRecord],
                         by_id: dict[str, ProductRecord], indexed: set[str]) -> dict:
    search = client.app.catalog.current if client.app.catalog else None
    outcomes = []
    for n, row in enumerate(rows):
        target = by_handle.get(row["expected_product_id"])
        if target is None:
            raise SystemExit(f"{LABELLED}: row {n + 2} expects '{row['expected_product_id']}', not a target")
        turn = await client.ask(row["query"], f"search-{n}")
        ids = (turn.meta.get("products") or {}).get("ids") or []
        first = by_id.get(ids[0]) if ids else None
        outcomes.append({"query": row["query"], "language": row["language"], "expected": target.handle,
                         "target_in_kefu_catalog": target.kefu_id in indexed,
                         "top1": first.handle if first else None, "top1_title": first.title if first else None,
                         "right": bool(first is target), "shown": [by_id[i].handle for i in ids if i in by_id],
                         "why": turn.reply.get("why", "")[:200], "faq_ids": turn.reply.get("faq_ids", []),
                         "ms": round(turn.seconds * 1000, 1)})
        if outcomes[-1]["right"] or search is None or target.kefu_id not in indexed:
            continue
        # Why it missed (a diagnosis, not the measure): where the target ranks in kefu's own catalog search
        # of the message, with the scores the product stage compares with min_similarity and the keyword bar.
        hits = await search.search(row["query"], language=None, limit=12)
        rank = next((i + 1 for i, hit in enumerate(hits) if hit.product.id == target.kefu_id), None)
        scores = (lambda hit: {"product": by_id[hit.product.id].handle if hit.product.id in by_id else hit.product.id,
                               "semantic": round(hit.semantic_score or 0.0, 3),
                               "keyword": round(hit.keyword_score or 0.0, 3)})
        outcomes[-1]["diagnosis"] = {"target_rank_in_top12": rank, "first_hit": scores(hits[0]) if hits else None,
                                     "target": scores(hits[rank - 1]) if rank else None}
    languages = sorted({o["language"] for o in outcomes}, key=lambda lang: ("en", "de", "zh", "es", "fr").index(lang)
                       if lang in ("en", "de", "zh", "es", "fr") else 9)

    def share(items: list[dict]) -> dict:
        reachable = [o for o in items if o["target_in_kefu_catalog"]]
        return {"queries": len(items), "right": sum(o["right"] for o in items),
                "top1": round(sum(o["right"] for o in items) / len(items), 3) if items else None,
                "with_target_read": len(reachable),
                "top1_of_target_read": round(sum(o["right"] for o in reachable) / len(reachable), 3) if reachable else None,
                "no_product_shown": sum(1 for o in items if o["top1"] is None)}

    misses = [o for o in outcomes if not o["right"]]
    ranks = Counter((o.get("diagnosis") or {}).get("target_rank_in_top12") if o["target_in_kefu_catalog"] else -1
                    for o in misses)
    return {"overall": share(outcomes), "by_language": {lang: share([o for o in outcomes if o["language"] == lang])
                                                         for lang in languages},
            "misses_by_what_was_shown": {"no product": sum(1 for o in misses if o["top1"] is None),
                                         "another product": sum(1 for o in misses if o["top1"] is not None)},
            "misses_by_target_rank_in_kefus_search": {
                "target not read" if k == -1 else str(k) if k else "not in top 12": v
                for k, v in sorted(ranks.items(), key=lambda kv: kv[0] if kv[0] is not None else 99)},
            "misses": misses, "rows": outcomes}


# -- recommendations ----------------------------------------------------------------------------------------


def read_wishes_trace(wishes: list[str]) -> dict[str, str]:
    """The trace's "at most 120", "size M", "black" back as {"max_price", "size", "colour"}."""
    read: dict[str, str] = {}
    for wish in wishes:
        if wish.startswith("at most "):
            read["max_price"] = wish.removeprefix("at most ")
        elif wish.startswith("at least "):
            read["min_price"] = wish.removeprefix("at least ")
        elif wish.startswith("size "):
            read["size"] = wish.removeprefix("size ")
        else:
            read["colour"] = wish
    return read


def violations_of(product: ProductRecord, row: dict[str, str]) -> list[str]:
    """What the product breaks of the labelled limits (checked on the generated record), first cause first."""
    size, colour = row["size"] or None, row["colour"] or None
    max_price = Decimal(row["max_price"]) if row["max_price"] else None
    broken = []
    if row["category"] and product.type.casefold() != row["category"].casefold():
        broken.append(f"category {product.type}")
    if not product.fits(size=size, colour=None, max_price=None):
        broken.append(f"size {size} not in stock")
    elif not product.fits(size=size, colour=colour, max_price=None):
        broken.append(f"colour {colour} not in stock" + (f" in {size}" if size else ""))
    elif not product.fits(size=size, colour=colour, max_price=max_price):
        cheapest = min(v.price for v in product.variants)
        broken.append(f"price over {max_price} (from {cheapest})")
    return broken


async def recommendations(client: Client, rows: list[dict[str, str]], by_id: dict[str, ProductRecord],
                          catalog: list[ProductRecord], texts: Texts) -> dict:
    outcomes = []
    for n, row in enumerate(rows):
        turn = await client.ask(row["query"], f"recommend-{n}")
        products = turn.meta.get("products") or {}
        ids = products.get("ids") or []
        why = turn.reply.get("why", "")
        listed = texts.get("product_recommend", turn.reply["language"])[0] in turn.reply["text"]
        if not products:
            mode = "none"
        elif why.startswith("recommended"):
            mode = "list"
        elif products.get("shown_after_the_faq_answer"):
            mode = "list after the FAQ answer" if listed else "named after the FAQ answer"
        else:
            mode = "named"
        labelled = {key: row[key] for key in ("max_price", "size", "colour") if row[key]}
        read = read_wishes_trace(products.get("wishes") or [])
        missed = [key for key in labelled if key not in read]
        extra = [f"{key} {value}" for key, value in read.items() if key not in labelled]
        misread = [f"{key} {read[key]} (labelled {labelled[key]})" for key in labelled
                   if key in read and (Decimal(read[key]) != Decimal(labelled[key]) if key == "max_price"
                                       else read[key].casefold() != labelled[key].casefold())]
        recommended = ids if mode.startswith("list") else []
        checked = []
        for product_id in recommended:
            record = by_id.get(product_id)
            broken = violations_of(record, row) if record else ["not in the generated catalog"]
            checked.append({"product": record.handle if record else product_id, "title": record.title if record else "",
                            "violations": broken})
        named = [{"product": by_id[i].handle, "violations": violations_of(by_id[i], row)} for i in ids
                 if not mode.startswith("list") and i in by_id]
        feasible = sum(1 for p in catalog if (not row["category"] or p.type.casefold() == row["category"].casefold())
                       and p.fits(size=row["size"] or None, colour=row["colour"] or None,
                                  max_price=Decimal(row["max_price"]) if row["max_price"] else None))
        outcomes.append({"query": row["query"], "language": row["language"], "labelled": labelled,
                         "category": row["category"], "mode": mode, "wishes_read": products.get("wishes") or [],
                         "price_limit_note": turn.meta.get("products_price_limit"),
                         "missed_limits": missed, "misread_limits": misread, "extra_limits": extra,
                         "recommended": checked,
                         "named": named, "feasible_in_kefu_catalog": feasible,
                         "violations": sum(1 for c in checked if c["violations"]), "why": why[:200],
                         "ms": round(turn.seconds * 1000, 1)})
    recommended = [c for o in outcomes for c in o["recommended"]]
    causes = Counter(v.split(" ")[0] for c in recommended for v in c["violations"][:1])
    return {
        "queries": len(outcomes),
        "with_recommendations": sum(1 for o in outcomes if o["recommended"]),
        "no_recommendation": sum(1 for o in outcomes if not o["recommended"]),
        "no_recommendation_though_feasible": sum(1 for o in outcomes if not o["recommended"]
                                                 and o["feasible_in_kefu_catalog"]),
        "modes": dict(Counter(o["mode"] for o in outcomes)),
        "products_recommended": len(recommended),
        "violations": sum(1 for c in recommended if c["violations"]),
        "violations_by_cause": dict(causes),
        "queries_with_violations": sum(1 for o in outcomes if o["violations"]),
        "fewer_limits_read": sum(1 for o in outcomes if o["missed_limits"]),
        "limits_labelled": sum(len(o["labelled"]) for o in outcomes),
        "limits_read": sum(len(o["labelled"]) - len(o["missed_limits"]) for o in outcomes),
        "limits_misread": sum(len(o["misread_limits"]) for o in outcomes),
        "limits_read_not_labelled": sum(len(o["extra_limits"]) for o in outcomes),
        "rows": outcomes,
    }


# -- the run ------------------------------------------------------------------------------------------------


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0) if Path("/proc/meminfo").exists() else 0
    return {"cpus": os.cpu_count(), "cpu": model, "memory_mb": memory, "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def git_commit() -> str:
    done = subprocess.run(["git", "log", "-1", "--format=%h"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + ("+changes" if dirty else "")


async def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    wall = time.perf_counter()
    facts = machine()  # the load average before the run: another job on the machine changes every time
    targets = load_targets()
    catalog = generate_catalog(rng, args.products, targets)
    labelled, recommend = read_csv(LABELLED), read_csv(RECOMMEND)
    check_recommend_rows(recommend)
    texts = Texts(shop_name=SHOP_NAME, default_language="en", overrides={})
    shop = TimedShopify(SHOP_TOKEN, api_version=API_VERSION)
    started = time.perf_counter()
    add_products(shop, catalog)
    orders = load_orders(shop, rng, args.orders, catalog)
    generated_s = time.perf_counter() - started
    print(f"generated {len(catalog):,} products ({len(targets)} targets) and {len(orders):,} orders in "
          f"{generated_s:.1f} s", flush=True)
    by_handle = {p.handle: p for p in catalog}
    by_id = {p.kefu_id: p for p in catalog}

    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "kefu.db").unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (WORK / f"kefu.db{suffix}").unlink(missing_ok=True)
    if not args.warm_catalog:
        shutil.rmtree(WORK / "index" / "catalog", ignore_errors=True)
    log = LogTimes()
    for name in ("bot.products.service", "commerce.sources.shopify_products", "bot.app"):
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).addHandler(log)

    async with shop:
        config = load_config(write_config(WORK, shop.url), environ={"BENCH_SHOPIFY_TOKEN": SHOP_TOKEN})
        started_at, started = time.time(), time.perf_counter()
        async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
            start_s = time.perf_counter() - started
            assert app.catalog is not None
            pages = [(arrived, s) for kind, arrived, s in shop.handled if kind == "products"]
            read_done = log.times.get("shopify.catalog.read") or log.times.get("shopify.catalog.page_limit")
            ready = log.times.get("catalog.ready")
            search = app.catalog.current
            indexed = set(search.products) if search is not None else set()
            startup = {
                "start_s": round(start_s, 1),
                "catalog_read_s": round(read_done - pages[0][0], 1) if pages and read_done else None,
                "catalog_index_s": round(ready - read_done, 1) if ready and read_done else None,
                "catalog_pages": len(pages), "fake_pages_s": round(sum(s for _, s in pages), 2),
                "products_in_shop": len(catalog), "products_indexed": len(indexed),
                "targets_indexed": sum(1 for t in targets if t.kefu_id in indexed),
                "texts_encoded": getattr(getattr(search, "_search", None), "encoded_at_open", None),
                "before_catalog_s": round(pages[0][0] - started_at, 1) if pages else None,
                "log": log.lines[:20],
            }
            print(f"app started in {start_s:.1f} s: catalog read {startup['catalog_read_s']} s "
                  f"({len(pages)} pages), indexed {startup['catalog_index_s']} s; "
                  f"{len(indexed):,} of {len(catalog):,} products indexed", flush=True)
            if app.warming_up is not None:
                await app.warming_up
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
                client = Client(app, shop, session)
                orders_result = await order_turns(client, orders, args.turns, rng, texts)
                print(f"order turns: {orders_result['right']}/{orders_result['turns']} right, "
                      f"p50 {orders_result['p50_ms']} ms", flush=True)
                search_result = await product_search(client, labelled, by_handle, by_id, indexed)
                print(f"product search top-1: {search_result['overall']['top1']}", flush=True)
                indexed_records = [p for p in catalog if p.kefu_id in indexed]
                recommend_result = await recommendations(client, recommend, by_id, indexed_records, texts)
                print(f"recommendations: {recommend_result['violations']} violations in "
                      f"{recommend_result['products_recommended']} products", flush=True)
                client.db.close()
    return {
        "date": datetime.date.today().isoformat(), "commit": git_commit(), "machine": facts,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "sizes": {"products": len(catalog), "targets": len(targets), "orders": len(orders), "turns": args.turns,
                  "seed": args.seed},
        "generated_s": round(generated_s, 1), "startup": startup, "orders": orders_result,
        "product_search": search_result, "recommendations": recommend_result,
        "wall_s": round(time.perf_counter() - wall, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(result: dict) -> None:
    s, o, p, r = result["startup"], result["orders"], result["product_search"], result["recommendations"]
    sizes = result["sizes"]
    print(f"\n{sizes['products']:,} products ({sizes['targets']} targets), {sizes['orders']:,} orders, "
          f"commit {result['commit']}, {result['machine']['cpus']} cores")
    rows = [
        ("app start to serving (s)", s["start_s"]),
        (f"catalog read from Shopify ({s['catalog_pages']} pages; fake {s['fake_pages_s']} s) (s)", s["catalog_read_s"]),
        (f"catalog indexed ({s['texts_encoded']} texts encoded) (s)", s["catalog_index_s"]),
        ("products indexed / in the shop", f"{s['products_indexed']:,} / {s['products_in_shop']:,}"),
        ("targets indexed", f"{s['targets_indexed']} / {sizes['targets']}"),
        (f"order turns right ({o['looked_up']} looked up)", f"{o['right']} / {o['turns']}"),
        ("order turn p50 / p95 (ms)", f"{o['p50_ms']} / {o['p95_ms']}"),
        ("  fake Shopify's handling p50 / p95 (ms)", f"{o['fake_p50_ms']} / {o['fake_p95_ms']}"),
        ("  kefu's own (turn - fake) p50 / p95 (ms)", f"{o['kefu_p50_ms']} / {o['kefu_p95_ms']}"),
        ("product search top-1, all", f"{p['overall']['top1']} ({p['overall']['right']}/{p['overall']['queries']})"),
    ]
    for language, figures in p["by_language"].items():
        rows.append((f"  {language}", f"{figures['top1']} ({figures['right']}/{figures['queries']})"))
    reachable = p["overall"]
    rows.append(("  of queries whose target kefu read",
                 f"{reachable['top1_of_target_read']} ({reachable['with_target_read']} queries)"))
    shown = p["misses_by_what_was_shown"]
    rows.append(("  misses: no product shown / another product", f"{shown['no product']} / {shown['another product']}"))
    rows.append(("  misses by the target's rank in kefu's own search",
                 ", ".join(f"{k}: {v}" for k, v in p["misses_by_target_rank_in_kefus_search"].items())))
    rows += [
        ("recommendation queries / with a recommendation", f"{r['queries']} / {r['with_recommendations']}"),
        ("products recommended / violating a limit", f"{r['products_recommended']} / {r['violations']}"),
        ("  violations by cause", ", ".join(f"{k} {v}" for k, v in r["violations_by_cause"].items()) or "-"),
        ("no recommendation (though the catalog has one)", f"{r['no_recommendation']} "
                                                          f"({r['no_recommendation_though_feasible']})"),
        ("queries where kefu read fewer limits than labelled", r["fewer_limits_read"]),
        ("limits read / labelled (misread; read but not asked)",
         f"{r['limits_read']} / {r['limits_labelled']} ({r['limits_misread']}; {r['limits_read_not_labelled']})"),
        ("wall time (s)", result["wall_s"]),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:{width}}  {value}")
    if o["failures"]:
        print("\norder turns not right, by message:")
        for entry in o["by_template"]:
            if entry["wrong"]:
                print(f"  {entry['wrong']:3d} of {entry['wrong'] + entry['right']:3d}  {entry['template']}")
    print("\nproduct search misses:")
    for miss in p["misses"]:
        flag = "" if miss["target_in_kefu_catalog"] else " [target not in kefu's catalog]"
        d = miss.get("diagnosis") or {}
        target = d.get("target") or {}
        seen = (f"; kefu's search ranks it {d['target_rank_in_top12']} (semantic {target.get('semantic')}, keyword "
                f"{target.get('keyword')})" if d.get("target_rank_in_top12") else "; not in kefu's search top 12")
        print(f"  [{miss['language']}] {miss['query']!r}: expected {miss['expected']}, got "
              f"{miss['top1'] or 'no product'}{flag}{seen if d else ''}")
    print("\nrecommendations:")
    for row in r["rows"]:
        marks = [f"{c['product']}: {'; '.join(c['violations'])}" for c in row["recommended"] if c["violations"]]
        if marks or row["missed_limits"] or row["misread_limits"] or row["extra_limits"] or not row["recommended"]:
            print(f"  [{row['language']}] {row['query']!r}: {row['mode']}, {len(row['recommended'])} recommended, "
                  f"read {row['wishes_read'] or '-'}, missed {row['missed_limits'] or '-'}"
                  + (f", misread {row['misread_limits']}" if row["misread_limits"] else "")
                  + (f", read but not asked {row['extra_limits']}" if row["extra_limits"] else "")
                  + f", feasible {row['feasible_in_kefu_catalog']}")
            for mark in marks:
                print(f"      VIOLATION {mark}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=10_000, help="products in the shop, the targets included")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=200, help="order-question conversations timed")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 products, 2,000 orders, 20 turns")
    parser.add_argument("--warm-catalog", action="store_true",
                        help="keep the catalog's index folder (embeddings cached) instead of indexing from scratch")
    args = parser.parse_args()
    if args.quick:
        args.products, args.orders, args.turns = 300, 2000, 20
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    print_table(result)
    out = RESULTS / "commerce.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
