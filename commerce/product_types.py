"""Kinds of product named in a message or a catalog category, in the languages shoppers write.

"Ich suche einen Rucksack bis 60 Euro", "¿me recomiendas una mochila…?", "推荐一个背包" all ask
for backpacks; a shop's category is "Backpacks" (Shopify's productType, WooCommerce's category,
in the shop's language). A recommendation that names a kind must only offer products of that kind:
measured (bench/commerce.py), reading only English category words let "Rucksack" and "sac à dos"
bring tote bags and "sleeping bag" bring bags. The words are a small lexicon per kind, read with
the longest phrase first ("sleeping bag" before "bag", "sac à dos" before "sac"), and German
compounds by their last part ("Regenjacke", "Wanderstiefel"). A category no kind covers is
matched by its own words, as before.
"""

from __future__ import annotations

import re
from functools import lru_cache

# kind → its words: English (singular; plurals are read), German (compound heads), French, Spanish,
# Italian, Dutch, Portuguese, Chinese, Japanese.
KINDS: dict[str, tuple[str, ...]] = {
    "jacket": ("jacket", "anorak", "parka", "windbreaker", "jacke", "veste", "blouson", "doudoune", "chaqueta",
               "cazadora", "giacca", "giubbotto", "piumino", "jas", "jasje", "jaqueta", "casaco", "夹克", "外套", "羽绒服",
               "冲锋衣", "雨衣", "ジャケット", "コート", "パーカー"),
    "coat": ("coat", "mantel", "manteau", "abrigo", "cappotto", "überzieher", "大衣"),
    "vest": ("vest", "gilet", "weste", "chaleco", "马甲", "背心", "ベスト"),
    "hoodie": ("hoodie", "hoody", "hooded sweatshirt", "sweatshirt", "kapuzenpullover", "sudadera", "felpa",
               "trui met capuchon", "moletom", "卫衣", "パーカ"),
    "sweater": ("sweater", "jumper", "pullover", "cardigan", "knitwear", "pulli", "pull", "strickjacke", "jersey",
                "suéter", "maglione", "trui", "camisola", "毛衣", "针织衫", "セーター", "ニット"),
    "shirt": ("shirt", "t-shirt", "blouse", "hemd", "bluse", "chemise", "tee-shirt", "camiseta", "camisa", "blusa",
              "maglietta", "camicia", "overhemd", "shirtje", "衬衫", "t恤", "上衣", "シャツ"),
    "trousers": ("trousers", "pants", "jeans", "leggings", "chinos", "hose", "pantalon", "pantalón", "pantalones",
                 "vaqueros", "pantaloni", "broek", "calça", "calças", "裤子", "长裤", "牛仔裤", "パンツ", "ズボン"),
    "shorts": ("shorts", "bermuda", "pantalones cortos", "pantaloncini", "korte broek", "短裤", "ショートパンツ"),
    "dress": ("dress", "skirt", "kleid", "jupe", "vestido", "falda", "vestito", "gonna", "jurk", "rok", "saia",
              "连衣裙", "裙子", "ワンピース", "スカート"),
    "socks": ("sock", "socke", "strumpf", "chaussette", "calcetín", "calcetines", "calzino", "calzini", "sok",
              "sokken", "meia", "meias", "袜子", "袜", "靴下", "ソックス"),
    "gloves": ("glove", "mitten", "handschuh", "gant", "moufle", "guante", "guanto", "guanti", "handschoen", "luva",
               "luvas", "手套", "手袋", "グローブ"),
    "hat": ("hat", "cap", "beanie", "mütze", "hut", "kappe", "bonnet", "chapeau", "casquette", "gorro", "gorra",
            "sombrero", "cappello", "berretto", "muts", "hoed", "chapéu", "boné", "帽子", "ニット帽", "キャップ"),
    "scarf": ("scarf", "scarves", "shawl", "snood", "schal", "halstuch", "tuch", "écharpe", "foulard", "bufanda",
              "sciarpa", "sjaal", "cachecol", "围巾", "披肩", "マフラー", "スカーフ"),
    "boots": ("boot", "stiefel", "stiefelette", "botte", "bottine", "bota", "botas", "stivale", "stivali", "laars",
              "laarzen", "靴子", "靴", "登山靴", "短靴", "ブーツ"),
    "shoes": ("shoe", "sneaker", "trainer", "loafer", "schuh", "turnschuh", "chaussure", "zapato",
              "zapatilla", "scarpa", "scarpe", "schoen", "schoenen", "sapato", "tênis", "鞋", "鞋子", "运动鞋", "スニーカー",
              "シューズ"),
    "sandals": ("sandal", "flip-flop", "flip flop", "sandale", "sandalia", "sandalo", "sandali", "sandaal",
                "sandália", "凉鞋", "拖鞋", "サンダル"),
    "slippers": ("slipper", "hausschuh", "pantoffel", "chausson", "pantufla", "zapatilla de casa", "pantofola",
                 "pantufa", "室内拖鞋", "スリッパ"),
    "backpack": ("backpack", "rucksack", "daypack", "knapsack", "sac à dos", "sac a dos", "mochila", "zaino",
                 "rugzak", "背包", "双肩包", "リュック", "バックパック"),
    "bag": ("bag", "tote", "handbag", "purse", "satchel", "duffel", "tasche", "beutel", "sac", "sacoche", "bolso",
            "bolsa", "borsa", "tas", "手提包", "包包", "バッグ"),
    "wallet": ("wallet", "geldbörse", "portemonnaie", "portefeuille", "cartera", "portafoglio", "carteira", "钱包",
               "財布"),
    "sunglasses": ("sunglasses", "sonnenbrille", "lunettes de soleil", "gafas de sol", "occhiali da sole",
                   "zonnebril", "óculos de sol", "太阳镜", "墨镜", "サングラス"),
    "tent": ("tent", "zelt", "tente", "tienda de campaña", "carpa", "tenda", "barraca", "帐篷", "テント"),
    "sleeping bag": ("sleeping bag", "schlafsack", "sac de couchage", "saco de dormir", "sacco a pelo", "slaapzak",
                     "睡袋", "寝袋"),
    "trekking poles": ("trekking pole", "hiking pole", "walking pole", "trekkingstock", "wanderstock",
                       "bâton de marche", "bâton de randonnée", "bastón de trekking", "bastón", "bastoncino",
                       "bastoncini", "wandelstok", "bastão", "登山杖", "徒步杖", "トレッキングポール"),
    "lantern": ("lantern", "lamp", "torch", "flashlight", "headlamp", "laterne", "lampe", "taschenlampe",
                "stirnlampe", "lanterne", "frontale", "linterna", "farol", "lámpara", "lanterna", "lampada",
                "lantaarn", "zaklamp", "提灯", "露营灯", "台灯", "手电筒", "头灯", "ランタン", "ライト"),
    "basket": ("basket", "hamper", "korb", "panier", "cesta", "cesto", "mand", "收纳篮", "篮子", "バスケット", "かご"),
    "candle": ("candle", "kerze", "bougie", "vela", "candela", "kaars", "蜡烛", "香薰蜡烛", "キャンドル"),
    "mug": ("mug", "cup", "tumbler", "becher", "tasse", "taza", "tazza", "mok", "kopje", "caneca", "xícara", "杯子",
            "马克杯", "マグ", "カップ"),
    "bottle": ("bottle", "flask", "thermos", "flasche", "trinkflasche", "thermoskanne", "bouteille", "gourde",
               "botella", "termo", "borraccia", "bottiglia", "fles", "garrafa", "水壶", "水瓶", "保温杯", "ボトル", "水筒"),
    "blanket": ("blanket", "decke", "kuscheldecke", "couverture", "plaid", "manta", "coperta", "deken", "cobertor",
                "毯子", "毛毯", "盖毯", "ブランケット", "毛布"),
    "bedding": ("bedding", "duvet cover", "bed linen", "pillowcase", "bettwäsche", "linge de lit",
                "housse de couette", "ropa de cama", "funda nórdica", "biancheria da letto", "beddengoed",
                "roupa de cama", "床品", "床单", "被套", "寝具"),
    "towel": ("towel", "handtuch", "serviette", "toalla", "asciugamano", "handdoek", "toalha", "毛巾", "浴巾", "タオル"),
    "pillow": ("pillow", "cushion", "kissen", "oreiller", "coussin", "almohada", "cojín", "cuscino", "kussen",
               "travesseiro", "almofada", "枕头", "抱枕", "靠垫", "クッション"),
    "jewellery": ("jewellery", "jewelry", "necklace", "bracelet", "earring", "schmuck", "kette", "armband",
                  "ohrring", "bijou", "collier", "bague", "boucle d'oreille", "joya", "pulsera", "anillo",
                  "pendiente", "gioiello", "collana", "anello", "sieraad", "ketting", "joia", "colar", "anel", "首饰",
                  "项链", "手链", "戒指", "耳环", "アクセサリー", "ネックレス"),
}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
# German compounds are read by their head: "Regenjacke", "Wanderstiefel", "Wollmütze".
_GERMAN_HEADS = {"jacke", "mantel", "mütze", "stiefel", "schuh", "socke", "tasche", "decke", "lampe", "flasche",
                 "kissen", "hose", "kleid", "schal", "zelt", "becher", "kerze", "handschuh", "weste"}


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, re.Pattern[str], str]]:
    """(phrase, its pattern, kind), longest phrase first, so "sleeping bag" is read before "bag"."""
    pairs = sorted({(word.casefold(), kind) for kind, words in KINDS.items() for word in words},
                   key=lambda pair: len(pair[0]), reverse=True)
    patterns = []
    for phrase, kind in pairs:
        if _CJK.search(phrase):
            patterns.append((phrase, re.compile(re.escape(phrase)), kind))
            continue
        # A compound's first part has 3 letters or more: "Latzhose", "Regenjacke", never "those" or "whose".
        head = rf"(?:\w{{3,}})?{_forms(phrase)}" if phrase in _GERMAN_HEADS else _forms(phrase)
        patterns.append((phrase, re.compile(rf"(?<![\w-]){head}(?![\w-])"), kind))
    return patterns


def _forms(word: str) -> str:
    """A Latin word with its plural and German endings ("jacket" → jackets, "Jacke" → Jacken)."""
    return rf"{re.escape(word)}(?:s|es|en|n|e|er|x)?"


# Words that name a kind in one language and are common words in English ("pull up", "a basket", "Hut"):
# read only when the message is in that language.
ANY_LANGUAGE = "*"  # a catalog's own words: its categories and titles are read with every word
ONLY_IN = {"pull": "fr", "hut": "de", "hose": "de", "tas": "nl", "pet": "nl", "rok": "nl"}


def kinds_in(text: str, language: str | None = None) -> set[str]:
    """The kinds of product the text names; each stretch of text is read once, by its longest phrase.
    `language`: the message's, when known (the words of ONLY_IN need it)."""
    rest = text.casefold()
    found: set[str] = set()
    for phrase, pattern, kind in _patterns():
        if phrase not in rest:  # every form contains the phrase: most of the ~400 are skipped here
            continue
        if phrase in ONLY_IN and language != ANY_LANGUAGE and ONLY_IN[phrase] != language:
            continue
        rest, count = pattern.subn(" ", rest)
        if count:
            found.add(kind)
    return found


# Kinds a broader category holds: a "Shoes" category has boots and sandals, named in their titles.
FAMILIES = ({"shoes", "boots", "sandals", "slippers"}, {"jacket", "coat", "vest"}, {"shirt", "sweater", "hoodie"},
            {"trousers", "shorts"}, {"bag", "backpack", "wallet"}, {"blanket", "bedding", "pillow", "towel"})


@lru_cache(maxsize=8192)
def product_kinds(category: str, title: str) -> frozenset[str]:
    """A product's kinds: its category's, with those of its title in the same family ("Shoes" and "Trail
    hiking boots": shoes and boots; "Sleeping bags" and "Down mummy bag": a sleeping bag only); a product
    whose category names no kind, its title's."""
    named, titled = kinds_in(category, ANY_LANGUAGE), kinds_in(title, ANY_LANGUAGE)
    if not named:
        return frozenset(titled)
    related = {kind for kind in titled if any(kind in family and family & named for family in FAMILIES)}
    return frozenset(named | related)
