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
# Currency names written in CJK come before 元 and 欧 in the alternations: "100欧元以下" is euros, not yuan.
_N = r"(?P<n>\d{1,6}(?:[.,]\d{1,2})?)"
_CJK_CURRENCY = r"欧元|美元|美金|英镑|日元|港元|港币|人民币|ユーロ|ドル|유로|달러"
_CUR = rf"(?:\s*(?:€|eur(?:o|os)?|usd|\$|£|gbp|{_CJK_CURRENCY}|元|块|欧|円|yen|rmb|cny|chf|kr|zł))?"
CURRENCIES = {"€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "usd": "USD", "$": "USD", "£": "GBP",
              "gbp": "GBP", "元": "CNY", "块": "CNY", "rmb": "CNY", "cny": "CNY", "人民币": "CNY", "円": "JPY",
              "yen": "JPY", "日元": "JPY", "chf": "CHF", "zł": "PLN", "欧元": "EUR", "欧": "EUR", "ユーロ": "EUR",
              "유로": "EUR", "美元": "USD", "美金": "USD", "ドル": "USD", "달러": "USD", "英镑": "GBP", "港元": "HKD",
              "港币": "HKD"}
# A lone 欧 names euros only right after a number ("80欧以内"): 欧码 (EU sizes) and 欧洲 (Europe) are no currency.
_CUR_WORD = re.compile(rf"€|eur(?:o|os)?\b|usd\b|\$|£|gbp\b|{_CJK_CURRENCY}|元|块|(?<=\d)\s?欧|円|yen\b|rmb\b|"
                       r"cny\b|chf\b|zł", re.IGNORECASE)
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
# Base forms and the irregular inflections (Italian neri/nere, Dutch zwarte); the regular endings are in
# _colour_pattern. A single Han character is a colour only where it is used as one (see _han_pattern).
COLOURS: dict[str, tuple[str, ...]] = {
    "black": ("black", "schwarz", "noir", "noire", "negro", "negra", "nero", "nera", "neri", "nere", "zwart", "zwarte",
              "preto", "preta", "czarny", "чёрный", "черный", "黑", "黒", "검정", "검은"),
    "white": ("white", "weiß", "weiss", "blanc", "blanche", "blanco", "blanca", "bianco", "bianca", "bianchi",
              "bianche", "wit", "witte", "branco", "branca", "biały", "белый", "白", "흰", "화이트"),
    "grey": ("grey", "gray", "charcoal", "anthracite", "grau", "anthrazit", "gris", "grigio", "grigia", "grigi",
             "grigie", "grijs", "grijze", "cinza", "szary", "серый", "灰", "グレー", "회색"),
    "blue": ("blue", "navy", "blau", "marine", "bleu", "azul", "azuis", "blu", "blauw", "blauwe", "niebieski", "синий",
             "蓝", "藍", "青", "ネイビー", "파랑", "파란", "네이비"),
    "red": ("red", "rot", "rouge", "rojo", "roja", "rosso", "rossa", "rossi", "rosse", "rood", "rode", "vermelho",
            "vermelha", "czerwony", "красный", "红", "赤", "빨간", "레드"),
    "green": ("green", "olive", "grün", "gruen", "vert", "verte", "verde", "verdi", "groen", "groene", "zielony",
              "зелёный", "зеленый", "绿", "緑", "초록", "그린"),
    "brown": ("brown", "tan", "cognac", "braun", "marron", "marrón", "marrones", "marrone", "marroni", "bruin",
              "bruine", "marrom", "brązowy", "коричневый", "棕", "咖啡色", "茶色", "브라운", "갈색"),
    "beige": ("beige", "camel", "sand", "cream", "米色", "ベージュ", "베이지"),
    "yellow": ("yellow", "mustard", "gelb", "jaune", "amarillo", "amarilla", "giallo", "gialla", "gialli", "gialle",
               "geel", "gele", "amarelo", "amarela", "黄", "노란"),
    "pink": ("pink", "rosa", "rose", "roze", "różowy", "розовый", "粉", "ピンク", "핑크"),
}
_CJK_CHARS = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK = re.compile(rf"[{_CJK_CHARS}]")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# German adjective endings (schwarze, schwarzen, schwarzer, schwarzes, schwarzem) and shade prefixes (marineblau).
_GERMAN = ("schwarz", "weiß", "weiss", "grau", "anthrazit", "blau", "rot", "grün", "gruen", "braun", "gelb", "rosa")
_GERMAN_SHADE = (r"(?:hell|dunkel|marine|navy|himmel|königs|koenigs|tief|wein|kirsch|oliv|moos|tannen|knall|zart|"
                 r"pastell)?")
# Romance plurals: rojas, negros, blancas, verdes, noires, blanches, vertes, rouges; azules, grises, bleues.
_PLURAL = {**dict.fromkeys(("noir", "noire", "blanc", "blanche", "vert", "verte", "rouge", "jaune", "rose", "marron",
                            "negro", "negra", "blanco", "blanca", "rojo", "roja", "verde", "amarillo", "amarilla",
                            "preto", "preta", "branco", "branca", "vermelho", "vermelha", "amarelo", "amarela"), "s?"),
           "bleu": "(?:es?|s)?", "azul": "(?:es)?", "gris": "(?:es)?"}
# Slavic adjectives change their ending, not add one: чёрный → чёрная, чёрные; czarny → czarna, czarne.
_SLAVIC_ENDINGS = {"ый": "(?:ый|ая|ое|ые|ого|ой|ую|ых|ым|ыми|ом|ому)",
                   "ий": "(?:ий|яя|ее|ие|его|ей|юю|их|им|ими|ем|ему)",
                   "y": "(?:y|a|e|ego|ej|ą|ych|ym|ymi|emu)", "i": "(?:i|a|ie|iego|iej|ą|ich|im|imi|iemu)"}
_POLISH = ("czarny", "biały", "szary", "niebieski", "czerwony", "zielony", "brązowy", "różowy")
# Words in which a Han colour character before 的 is no colour: 明白的 (understood), 网红的 (viral), 蛋黄的 (yolk).
_NOT_HAN_COLOUR = {"白": "明空蛋坦表告独旁对", "红": "网走爆分眼当", "黑": "拉抹天摸", "灰": "石烟骨", "黄": "蛋", "青": "年知"}
_HAN_SHADE = "深浅淡"
_HAN_WHOLE = " \t\n?？!！。.,，"

CLOTHING_SIZES = ("XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL", "2XL", "3XL")
# Size words count as whole words ("sizes" is no "size" followed by "s"); "Schuhgröße" keeps its compound.
_SIZE_WORD = (r"(?:(?:size|sz|größe|groesse|taille|talla|taglia|maat|tamanho|rozmiar|размер)(?![^\W\d_])|"
              r"尺码|尺寸|码|サイズ|사이즈)")
# A letter or digit of a script that spaces its words: a size token is no part of one ("Mütze" is not M). CJK text
# does not space its words, so a CJK character next to a token is a boundary ("要M的", "Mサイズ").
_ALNUM = rf"(?:(?![{_CJK_CHARS}])\w)"
_NUM = r"\d{1,3}(?:[.,]\d)?"
_CLOTHING = "|".join(sorted(CLOTHING_SIZES, key=len, reverse=True))
_RANGE_JOIN = r"(?:\s*[-–~/]\s*|\s+(?:to|bis|à|a|al|até|tot)\s+)"
_NUM_RANGE = rf"{_NUM}{_RANGE_JOIN}{_NUM}"
_LETTER_RANGE = rf"(?:{_CLOTHING}){_RANGE_JOIN}(?:{_CLOTHING})"
# One size, not the first end of a range ("taille 43-46" is not 43).
_ONE = rf"[A-Za-z0-9]{{1,7}}(?:[.,]\d)?(?!{_RANGE_JOIN}\d)(?!{_RANGE_JOIN}(?:{_CLOTHING})(?!{_ALNUM}))"
_END = rf"(?!{_ALNUM})(?![.,]\d)"
_VALUE = rf"(?P<value>{_NUM_RANGE}|{_LETTER_RANGE}|{_ONE}){_END}"
_SIZE_PATTERNS = [re.compile(p, re.IGNORECASE) for p in (
    rf"{_SIZE_WORD}\s*[:：]?\s*(?:eu\s*)?{_VALUE}",  # "size 39", "Größe 39-42", "尺码L"
    rf"(?<!\w)eu\s*(?P<value>{_NUM_RANGE}|\d{{2}}(?:[.,]5)?(?!{_RANGE_JOIN}\d)){_END}",  # "EU 39"
    rf"(?<!{_ALNUM}){_VALUE}\s*(?:码|號|号)",  # "42码", "M码"
)]
# After "in"/"en" a number is a size only when no unit or currency follows it ("in 3 days", "in 42 EUR").
_UNIT = (r"(?:€|\$|£|eur(?:o|os)?|usd|gbp|chf|元|块|欧|円|yen|%|°|x|ml|cl|l|cm|mm|m|km|kg|g|lbs?|inch(?:es)?|"
         r"secs?|seconds?|min|mins|minutes?|h|hours?|days?|weeks?|months?|years?|pcs|pieces?|pairs?|colou?rs?|"
         r"sekunden|minuten|stunden?|tage?n?|wochen?|monate?n?|jahre?n?|stück|paar|farben?|"
         r"secondes?|heures?|jours?|semaines?|mois|ans?|paires?|couleurs?|"
         r"segundos?|minutos?|horas?|días?|dias?|semanas?|mes|meses|años?|anos?|pares?|colores|cores|"
         r"secondi|minuti|ore|ora|giorni|giorno|settimane?|mesi|mese|anni|anno|colori|"
         r"uur|dagen|dag|weken|week|maanden|maand|jaar|jaren|kleuren)(?!\w)")
_IN = r"(?<!\w)(?:in|en|em)\s+(?:(?:der|la|el)\s+)?"
_IN_NUMBER = re.compile(rf"{_IN}(?P<value>{_NUM_RANGE}|{_NUM}(?!{_RANGE_JOIN}\d)){_END}(?!\s*{_UNIT})",
                        re.IGNORECASE)
_IN_WORD = re.compile(rf"{_IN}(?P<value>[^\W\d_][\w-]{{1,11}})(?!\w)", re.IGNORECASE)  # "in Long", as written
# Not a token joined to a word by a hyphen either: "S-Bahn", "M-65", "L-shaped".
_TOKEN = re.compile(rf"(?<!{_ALNUM})(?<!{_ALNUM}-)([A-Z0-9]{{1,4}})(?!{_ALNUM})(?!-{_ALNUM})")
_SIZE_BEFORE = re.compile(rf"{_SIZE_WORD}\s*[:：]?\s*(?:eu\s*)?{_NUM}\s*$", re.IGNORECASE)
_TOKEN_RANGE = re.compile(rf"(?<!{_ALNUM}){_LETTER_RANGE}(?!{_ALNUM})")


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
    max_match, min_match = _price_match(text, MAX_PRICE), _price_match(text, MIN_PRICE)
    limit = max_match or min_match  # the currency written with the limit wins over one elsewhere ("欧码42，200元以内")
    currency = (_currency(limit.group(0)) if limit else None) or _currency(text)
    return Wishes(max_price=_amount(max_match), min_price=_amount(min_match), size=_size(text, sizes),
                  colour=colour[0] if colour else None, colour_word=colour[1] if colour else None,
                  currency=currency)


def colour_family(value: str) -> str | None:
    """The family of a catalog colour ("Navy" → "blue", "Charcoal" → "grey"); None for names kefu doesn't know."""
    found = _colour_match(value)
    return found[0] if found else None


def _currency(text: str) -> str | None:
    """The currency a price limit is written in, when the shopper wrote one."""
    match = _CUR_WORD.search(text)
    return CURRENCIES.get(match.group(0).strip().casefold()) if match else None


def _price_match(text: str, patterns: list[re.Pattern[str]]) -> re.Match[str] | None:
    """The first price limit; "Größe 39 bis 42" and "maat 39 tot 42" are a size range, not a limit of 42."""
    for pattern in patterns:
        for match in pattern.finditer(text):
            if not _SIZE_BEFORE.search(text, 0, match.start()):
                return match
    return None


def _amount(match: re.Match[str] | None) -> Decimal | None:
    return Decimal(match.group("n").replace(",", ".")) if match else None


def _han_pattern(char: str) -> str:
    """A Han colour character used as a colour: 黑色, 黑色系, 深蓝, "黑的", 黒い, 黒の — not 蓝牙, 白天, 明白的."""
    shade = f"(?<=[{_HAN_SHADE}]){char}"
    if char == "粉":  # 粉 alone is powder (面粉, 奶粉): only 粉色 and 粉红 are pink
        return f"粉红色?|粉色|{shade}"
    not_colour = _NOT_HAN_COLOUR.get(char)
    used_as_colour = (f"(?<![{not_colour}])" if not_colour else "") + f"{char}(?=[的いの])"
    return f"{char}色|{shade}|{used_as_colour}"


def _colour_pattern(word: str) -> str:
    """The regex for one colour word with its regular inflections, as a whole word."""
    if _CJK.match(word):
        return _han_pattern(word) if len(word) == 1 and _HAN.match(word) else re.escape(word)
    if word in _GERMAN:
        return rf"(?<!\w){_GERMAN_SHADE}{re.escape(word)}(?:e[mnrs]?)?(?!\w)"
    if word in _PLURAL:
        return rf"(?<!\w){re.escape(word)}{_PLURAL[word]}(?!\w)"
    slavic = next((e for e in ("ый", "ий") if word.endswith(e)), None) or (word[-1] if word in _POLISH else None)
    if slavic:
        return rf"(?<!\w){re.escape(word[:-len(slavic)])}{_SLAVIC_ENDINGS[slavic]}(?!\w)"
    return rf"(?<!\w){re.escape(word)}(?!\w)"


_COLOUR_FAMILIES = [(word, family) for family, words in COLOURS.items() for word in words]
_COLOUR_FAMILIES.sort(key=lambda item: -len(item[0]))  # the longer word first where two start at one place
_COLOUR_RE = re.compile("|".join(f"(?P<c{i}>{_colour_pattern(word)})" for i, (word, _) in enumerate(_COLOUR_FAMILIES)),
                        re.IGNORECASE)
_HAN_SINGLE = {word: family for word, family in _COLOUR_FAMILIES if len(word) == 1 and _HAN.match(word)}


def _colour_match(text: str) -> tuple[str, str] | None:
    """(family, the word as written) of the first colour word in the text."""
    whole = text.strip(_HAN_WHOLE)
    if whole in _HAN_SINGLE:  # a catalog value "黑", or the answer "白？": the character alone is the colour
        return _HAN_SINGLE[whole], whole
    match = _COLOUR_RE.search(text)
    if match is None or match.lastgroup is None:
        return None
    return _COLOUR_FAMILIES[int(match.lastgroup[1:])][1], match.group(0)


def _size_key(size: str) -> str:
    """A size compared as written but for case, spaces and how a range is joined ("39–42", "39 - 42", "39 to 42")."""
    return re.sub(r"\s+", "", re.sub(rf"(?<=\w){_RANGE_JOIN}(?=\w)", "-", size.casefold()))


def _in_catalog(value: str, by_key: dict[str, str]) -> str | None:
    key = _size_key(value)
    return by_key.get(key) or by_key.get(key.replace(",", "."))


def _size(text: str, sizes: set[str]) -> str | None:
    """A size the catalog has, named in the message: "in M", "size 39", "M码", "尺码L", "EU 39", "in 42".

    A lone letter counts only in capitals or after a size word ("a" or "s" in a sentence are words);
    a number only after a size word, "EU" or "in", or before 码/号 (a price or an order number is not a size).
    A range ("taille 43-46") is read only as the catalog's own range size, never as one of its ends.
    """
    by_key = {_size_key(size): size for size in sizes}
    for pattern in (*_SIZE_PATTERNS, _IN_NUMBER):
        for match in pattern.finditer(text):
            found = _in_catalog(match.group("value"), by_key)
            if found:
                return found
    for match in _IN_WORD.finditer(text):
        if match.group("value") in sizes:  # a word size only as the catalog writes it: "in Long", not "in long"
            return match.group("value")
    singles = _TOKEN_RANGE.sub(lambda m: " " * len(m.group(0)), text)  # "S/M" is neither S nor M
    for token in _TOKEN.findall(singles):
        if token in CLOTHING_SIZES and token.casefold() in by_key:
            return by_key[token.casefold()]
    return None
