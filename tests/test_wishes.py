"""Reading a shopper's limits (price, size, colour) from their words: commerce/wishes.py, without the app.

Each case was a wrong or missing limit in the commerce benchmark, or guards the nearby words that
must stay unread: a limit read wrongly filters the recommendations silently.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from commerce.wishes import colour_family, read_wishes

# Sizes as a catalog writes them: letters, shoe numbers, sock ranges, bottle volumes, sleeping-bag lengths.
SIZES = {"XS", "S", "M", "L", "XL", "36", "38", "39", "40", "41", "42", "43", "44", "46", "36-38", "39-42", "43-46",
         "500 ml", "750 ml", "Regular", "Long"}


# 1. Euro amounts written in Chinese: 欧元 and 欧 are euros, not yuan.
@pytest.mark.parametrize(("text", "max_price", "currency"), [
    ("100欧元以下", 100, "EUR"),
    ("80欧以内", 80, "EUR"),
    ("不超过100欧元", 100, "EUR"),
    ("100欧元以内的", 100, "EUR"),
    ("100欧元以下的红色围巾", 100, "EUR"),
    ("推荐一个80欧以内的背包", 80, "EUR"),
    ("有什么50欧以下的保温杯推荐吗", 50, "EUR"),
    ("100美元以下", 100, "USD"),
    ("推荐一件200元以内的保暖外套", 200, "CNY"),  # yuan stays yuan
    ("不超过300块", 300, "CNY"),
    ("欧码42，200元以内", 200, "CNY"),  # 欧码 is EU sizing: the currency is the one written with the limit
])
def test_a_price_limit_in_chinese_is_read_in_its_own_currency(text, max_price, currency):
    wishes = read_wishes(text, SIZES)
    assert (wishes.max_price, wishes.currency) == (Decimal(max_price), currency)


@pytest.mark.parametrize("text", ["欧洲的羊毛围巾", "有欧码吗"])
def test_europe_and_eu_sizing_are_no_currency(text):
    wishes = read_wishes(text, SIZES)
    assert (wishes.max_price, wishes.currency) == (None, None)


# 2. Size tokens have Unicode-aware boundaries: no letter of a spaced script right before or after them.
@pytest.mark.parametrize(("text", "size"), [
    ("Kaschmir Mütze", None),
    ("Kaschmir Mütze – gibt es die in Grau?", None),
    ("Möchte die Jacke", None),
    ("Ärmel zu lang", None),
    ("the S-Bahn", None),
    ("L-shaped sofa", None),
    ("what sizes do you have?", None),  # "sizes" is no size word followed by "s"
    ("Größe M", "M"),
    ("in M", "M"),
    ("M码", "M"),
    ("尺码L", "L"),
    ("要M的", "M"),  # Chinese does not space its words
    ("Mサイズ", "M"),
    ("T-Shirt in M, bitte", "M"),
    ("Schuhgröße 42", "42"),
    ("boots size 39.", "39"),  # a full stop is no decimal
    ("talla XL por favor", "XL"),
])
def test_a_size_token_is_a_whole_token(text, size):
    assert read_wishes(text, SIZES).size == size


# 3. A range is one size only when the catalog has that range; never its first end. Volumes are no sizes.
@pytest.mark.parametrize(("text", "sizes", "size"), [
    ("taille 43-46", {"43", "44", "46"}, None),
    ("Größe 39-42", {"39", "40", "42"}, None),
    ("Größe 39 bis 42", {"39", "42"}, None),
    ("size 39 – 42", {"39", "42"}, None),
    ("EU 39-42", {"39", "42"}, None),
    ("39-42码", {"39", "42"}, None),
    ("size S-M", {"S", "M"}, None),
    ("sizes S to L", {"S", "L"}, None),
    ("S/M", {"S", "M"}, None),
    ("taille 43-46", SIZES, "43-46"),  # the catalog's own sock size
    ("Ich suche Socken in Größe 39-42 unter 15 €", SIZES, "39-42"),
    ("je cherche des chaussettes noires en taille 43 à 46", SIZES, "43-46"),
    ("500 ml", SIZES, None),
    ("a bottle that holds 500 ml", SIZES, None),
    ("insulated steel bottle 750ml", SIZES, None),
    ("in 500 ml", SIZES, None),
    ("size 42.5", {"42.5"}, "42.5"),
    ("size 42,5", {"42.5"}, "42.5"),
])
def test_a_range_is_not_one_of_its_ends(text, sizes, size):
    assert read_wishes(text, sizes).size == size


def test_a_size_range_is_no_price_limit():
    wishes = read_wishes("Größe 39 bis 42", SIZES)
    assert (wishes.size, wishes.max_price) == ("39-42", None)
    assert read_wishes("Jacke bis 100 €", SIZES).max_price == Decimal(100)


# 4. A Han colour character is a colour only where it is used as one.
@pytest.mark.parametrize(("text", "colour"), [
    ("陶瓷手冲咖啡滤杯", None),
    ("一杯咖啡", None),
    ("蓝牙耳机", None),
    ("白天穿的外套", None),
    ("我明白的", None),
    ("网红的款式", None),
    ("面粉的保质期", None),
    ("緑茶", None),
    ("青空", None),
    ("赤ちゃん用", None),
    ("有没有黑色的围巾", "black"),
    ("红色的呢？有没有红色的", "red"),
    ("咖啡色的包", "brown"),
    ("有黑的吗", "black"),
    ("红的有吗", "red"),
    ("灰色系的毛衣", "grey"),
    ("深蓝的外套", "blue"),
    ("粉红色", "pink"),
    ("黒いバッグ", "black"),
    ("白いシャツ", "white"),
    ("赤いマフラー", "red"),
    ("青い傘", "blue"),
    ("黒のジャケット", "black"),
    ("グレーのセーター", "grey"),
    ("ネイビー", "blue"),
    ("검은 가방", "black"),
])
def test_a_han_colour_needs_colour_usage(text, colour):
    assert read_wishes(text, SIZES).colour == colour


@pytest.mark.parametrize(("value", "family"), [
    ("黑色", "black"), ("黑", "black"), ("深灰", "grey"), ("咖啡色", "brown"), ("咖啡", None), ("蓝牙", None),
    ("Navy", "blue"), ("Charcoal", "grey"), ("Olive", "green"), ("Cream", "beige"), ("Tan", "brown"),
    ("Marineblau", "blue"), ("Burgundy", None),
])
def test_a_catalog_colour_value_has_its_family(value, family):
    assert colour_family(value) == family


def test_the_colour_word_is_the_shoppers_own():
    assert read_wishes("有没有黑色的", SIZES).colour_word == "黑色"
    assert read_wishes("有黑的吗", SIZES).colour_word == "黑"
    assert read_wishes("schwarze Stiefel", SIZES).colour_word == "schwarze"


# 5. Inflected colour words, without reading unrelated words that share a stem.
@pytest.mark.parametrize(("text", "colour"), [
    ("schwarze Stiefel", "black"), ("einen schwarzen Rucksack", "black"), ("ein schwarzer Schal", "black"),
    ("ein schwarzes Hemd", "black"), ("Suche eine grüne Fleecejacke", "green"), ("rote Handschuhe", "red"),
    ("blaue Socken", "blue"), ("weiße Turnschuhe", "white"), ("dunkelblauen Pullover", "blue"),
    ("marineblau", "blue"), ("grünen Tee", "green"),
    ("busco botas rojas", "red"), ("zapatos rojos", "red"), ("botas negras", "black"), ("calcetines negros", "black"),
    ("camisas blancas", "white"), ("guantes verdes", "green"), ("mochilas azules", "blue"),
    ("scarpe nere", "black"), ("calze rosse", "red"), ("meias pretas", "black"),
    ("chaussettes noires", "black"), ("gants noirs", "black"), ("chemises blanches", "white"),
    ("chaussettes vertes", "green"), ("bottes rouges", "red"), ("zwarte laarzen", "black"),
    ("белые кроссовки", "white"), ("czarne buty", "black"),
    ("rotate the image", None), ("shipping to Rotterdam", None), ("leather sandals", None), ("Sandalen", None),
    ("a tank top", None), ("Brot", None), ("the Marines", None),
])
def test_inflected_colour_words_are_read(text, colour):
    assert read_wishes(text, SIZES).colour == colour


def test_the_first_colour_in_the_text_is_read():
    assert read_wishes("red or black?", SIZES).colour == "red"
    assert read_wishes("schwarz oder rot", SIZES).colour == "black"


# 6. A catalog size after "in"/"en", unless a unit or a currency follows the number.
@pytest.mark.parametrize(("text", "size"), [
    ("boots in 42", "42"),
    ("Stiefel in 42", "42"),
    ("schwarze Stiefel in 42", "42"),
    ("les bottes en 42", "42"),
    ("Avez-vous les chaussures en daim en 41 ?", "41"),
    ("Stiefel in der 42?", "42"),
    ("looking for sandals in 40 under 60 euros", "40"),
    ("socks in 39-42", "39-42"),
    ("Daunenschlafsack in Long", "Long"),  # a word size as the catalog writes it
    ("good in long winters", None),
    ("boots in 45", None),  # not a size the catalog has
    ("in 42 EUR", None),
    ("in 40 €", None),
    ("in 3 days", None),
    ("in 2 weeks", None),
    ("in 5 Tagen", None),
    ("in 10 minutes", None),
    ("en 40 jours", None),
    ("in 42,50 EUR", None),
    ("in 2026", None),
])
def test_a_size_after_in(text, size):
    assert read_wishes(text, SIZES | {"2", "3", "5", "10"}).size == size


def test_a_whole_request_reads_every_limit():
    wishes = read_wishes("schwarze Stiefel in 42 unter 100 €", SIZES)
    assert (wishes.colour, wishes.size, wishes.max_price, wishes.currency) == ("black", "42", Decimal(100), "EUR")
    wishes = read_wishes("je cherche des chaussettes noires en taille 43-46", SIZES)
    assert (wishes.colour, wishes.size, wishes.max_price) == ("black", "43-46", None)
