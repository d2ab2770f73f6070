"""What a shopper asks of a product, read from their words: a price limit, a size, a colour.

"a warm jacket for hiking under 120 EUR", "有没有黑色的", "die Jacke in M?" — the limits are read
with small per-language patterns (numbers and units, colour words, size tokens), not guessed by
a model: a recommendation must honour them exactly, and a limit kefu did not read is not applied
(the shopper then sees the products with their prices, not a silent filter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# Price limits: the number is group "n". "under 120", "unter 120 €", "moins de 120", "120以内", "不超过120元".
_N = r"(?P<n>\d{1,6}(?:[.,]\d{1,2})?)"
_CUR = r"(?:\s*(?:€|eur(?:o|os)?|usd|\$|£|gbp|元|块|円|yen|rmb|cny|chf|kr|zł))?"
CURRENCIES = {"€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "usd": "USD", "$": "USD", "£": "GBP",
              "gbp": "GBP", "元": "CNY", "块": "CNY", "rmb": "CNY", "cny": "CNY", "円": "JPY", "yen": "JPY",
              "chf": "CHF", "zł": "PLN"}
_CUR_WORD = re.compile(r"€|eur(?:o|os)?\b|usd\b|\$|£|gbp\b|元|块|円|yen\b|rmb\b|cny\b|chf\b|zł", re.IGNORECASE)
MAX_PRICE = [re.compile(p, re.IGNORECASE) for p in (
    rf"(?:under|below|less than|max(?:imum)?|up to|no more than|cheaper than|within|<|unter|bis(?: zu)?|maximal|"
    rf"höchstens|weniger als|moins de|jusqu'à|max\.?|menos de|hasta|meno di|fino a|sotto(?: i)?|onder(?: de)?|"
    rf"minder dan|tot|até|no máximo|до|дешевле)\s*{_CUR}\s*{_N}{_CUR}",
    rf"{_N}{_CUR}\s*(?:以内|以下|之内|以内的|以下的|まで|이하|이내)",
    rf"(?:不超过|不到|低于|少于|便宜于)\s*{_N}{_CUR}",
)]
MIN_PRICE = [re.compile(p, re.IGNORECASE) for p in (
    rf"(?:over|above|more than|at least|from|über|mehr als|ab|plus de|à partir de|más de|desde|più di|"
    rf"boven|meer dan|mais de|от)\s*{_CUR}\s*{_N}{_CUR}",
    rf"{_N}{_CUR}\s*(?:以上)",
)]
# Colour words in the shop's languages → one family name; the catalog's own colour values are matched by family.
COLOURS: dict[str, tuple[str, ...]] = {
    "black": ("black", "schwarz", "noir", "noire", "negro", "negra", "nero", "nera", "zwart", "preto", "preta",
              "czarny", "чёрный", "черный", "黑", "黒", "검정", "검은"),
    "white": ("white", "weiß", "weiss", "blanc", "blanche", "blanco", "blanca", "bianco", "bianca", "wit", "branco",
              "branca", "biały", "белый", "白", "흰", "화이트"),
    "grey": ("grey", "gray", "charcoal", "anthracite", "grau", "anthrazit", "gris", "grigio", "grijs", "cinza",
             "szary", "серый", "灰", "グレー", "회색"),
    "blue": ("blue", "navy", "blau", "marine", "bleu", "azul", "blu", "blauw", "niebieski", "синий", "蓝", "藍",
             "青", "ネイビー", "파랑", "파란", "네이비"),
    "red": ("red", "rot", "rouge", "rojo", "roja", "rosso", "rossa", "rood", "vermelho", "vermelha", "czerwony",
            "красный", "红", "赤", "빨간", "레드"),
    "green": ("green", "olive", "grün", "vert", "verte", "verde", "groen", "zielony", "зелёный", "зеленый", "绿",
              "緑", "초록", "그린"),
    "brown": ("brown", "tan", "cognac", "braun", "marron", "marrón", "marrone", "bruin", "marrom", "brązowy",
              "коричневый", "棕", "咖啡", "茶色", "브라운", "갈색"),
    "beige": ("beige", "camel", "sand", "cream", "米色", "ベージュ", "베이지"),
    "yellow": ("yellow", "mustard", "gelb", "jaune", "amarillo", "giallo", "geel", "amarelo", "黄", "노란"),
    "pink": ("pink", "rosa", "rose", "roze", "różowy", "розовый", "粉", "ピンク", "핑크"),
}
_COLOUR_WORD = {word: family for family, words in COLOURS.items() for word in words}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
CLOTHING_SIZES = ("XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL", "2XL", "3XL")
_SIZE_WORD = r"(?:size|sz|größe|groesse|taille|talla|taglia|maat|tamanho|rozmiar|размер|尺码|尺寸|码|サイズ|사이즈)"


@dataclass(frozen=True)
class Wishes:
    max_price: Decimal | None = None
    min_price: Decimal | None = None
    size: str | None = None  # as the catalog writes it ("M", "39"), matched case-insensitively
    colour: str | None = None  # a family from COLOURS
    colour_word: str | None = None  # the shopper's own word for it ("黑色", "navy")
    currency: str | None = None  # the price limit's currency when the shopper named one ("EUR", "CNY")

    @property
    def any(self) -> bool:
        return any(value is not None for value in (self.max_price, self.min_price, self.size, self.colour))

    def describe(self) -> list[str]:
        """The wishes as read, for the reply's "why" and the trace."""
        parts = []
        if self.max_price is not None:
            parts.append(f"at most {self.max_price}")
        if self.min_price is not None:
            parts.append(f"at least {self.min_price}")
        if self.size:
            parts.append(f"size {self.size}")
        if self.colour:
            parts.append(self.colour)
        return parts


def read_wishes(text: str, sizes: set[str]) -> Wishes:
    """The limits in the message; `sizes`: every size value in the catalog (only those are read as sizes)."""
    colour = _colour_match(text)
    return Wishes(max_price=_price(text, MAX_PRICE), min_price=_price(text, MIN_PRICE), size=_size(text, sizes),
                  colour=colour[0] if colour else None, colour_word=colour[1] if colour else None,
                  currency=_currency(text))


def colour_family(value: str) -> str | None:
    """The family of a catalog colour ("Navy" → "blue", "Charcoal" → "grey"); None for names kefu doesn't know."""
    found = _colour_match(value)
    return found[0] if found else None


def _currency(text: str) -> str | None:
    """The currency a price limit is written in, when the shopper wrote one."""
    match = _CUR_WORD.search(text)
    return CURRENCIES.get(match.group(0).casefold()) if match else None


def _price(text: str, patterns: list[re.Pattern[str]]) -> Decimal | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return Decimal(match.group("n").replace(",", "."))
    return None


def _colour_match(text: str) -> tuple[str, str] | None:
    """(family, the word as written) of the first colour word in the text."""
    lowered = text.casefold()
    for word, family in _COLOUR_WORD.items():
        if _CJK.match(word):
            at = lowered.find(word)
            if at >= 0:
                color_suffix = text[at:at + len(word) + 1]
                return family, color_suffix if color_suffix.endswith("色") else text[at:at + len(word)]
        else:
            match = re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", lowered)
            if match:
                return family, text[match.start():match.end()]
    return None


def _size(text: str, sizes: set[str]) -> str | None:
    """A size the catalog has, named in the message: "in M", "size 39", "M码", "尺码L", "EU 39".

    A lone letter counts only in capitals or after a size word ("a" or "s" in a sentence are words);
    a number only after a size word or "EU", or before 码/号 (a price or an order number is not a size).
    """
    by_key = {size.casefold(): size for size in sizes}
    for match in re.finditer(rf"{_SIZE_WORD}\s*[:：]?\s*(?:eu\s*)?([A-Za-z0-9.]{{1,5}})|\beu\s*(\d{{2}}(?:\.5)?)\b|"
                             r"([A-Za-z0-9.]{1,5})\s*(?:码|號|号)", text, re.IGNORECASE):
        value = next(group for group in match.groups() if group)
        if value.casefold() in by_key:
            return by_key[value.casefold()]
    for token in re.findall(r"(?<![A-Za-z0-9])([A-Z0-9]{1,4})(?![A-Za-z0-9])", text):
        if token in CLOTHING_SIZES and token.casefold() in by_key:
            return by_key[token.casefold()]
    return None
