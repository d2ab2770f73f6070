"""knowledge/keyword.py, knowledge/bm25.py and knowledge/search.py: the keyword index over FAQ phrasings and answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.faq import load_faq_dir
from knowledge.index_folders import remove_if_unheld
from knowledge.keyword import KeywordIndex, MixedScriptTokenizer, language_analyzer
from knowledge.search import FaqSearch, Hit

LANGUAGES = ("en", "zh")

FAQ_YAML = """\
- id: shipping-cost
  question: How much does shipping cost?
  alternatives:
    - delivery fee
  answer: Standard shipping costs EUR 4.95 and is free over EUR 50.
  translations:
    zh:
      question: 运费是多少？
      alternatives:
        - 运费多少钱
      answer: 标准运费 4.95 欧元，满 50 欧元包邮。
- id: returns-policy
  question: How do I return an item?
  alternatives:
    - return policy
  answer: You can send items back within 30 days for a refund.
  translations:
    zh:
      question: 怎么退货？
      answer: 30 天内可以退货退款。
- id: order-tracking
  question: Where is my order?
  alternatives:
    - track my parcel
  answer: Use the tracking link in your confirmation email.
  translations:
    zh:
      question: 我的订单在哪里？
      answer: 请使用确认邮件中的物流链接查询。
"""


def make_faq(tmp_path: Path, text: str = FAQ_YAML):
    faq_dir = tmp_path / "faq"
    faq_dir.mkdir(exist_ok=True)
    (faq_dir / "faq.yaml").write_text(text, encoding="utf-8")
    return load_faq_dir(faq_dir, default_language="en", languages=LANGUAGES)


@pytest.fixture
def index(tmp_path):
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    ix.open_or_build(make_faq(tmp_path))
    yield ix
    ix.close()


def tokens(analyzer, text: str) -> list[str]:
    return [token.text for token in analyzer(text)]


# -- tokenizer and analyzers ----------------------------------------------------


def test_chinese_run_becomes_overlapping_bigrams():
    assert tokens(language_analyzer("zh"), "运费多少钱") == ["运费", "费多", "多少", "少钱"]


def test_chinese_bigrams_are_the_same_in_every_language_analyzer():
    assert tokens(language_analyzer("en"), "运费多少钱") == ["运费", "费多", "多少", "少钱"]


def test_a_latin_word_glued_to_chinese_is_a_word_of_its_own():
    """Shoppers write "可以用paypal付款吗": "paypal付款吗" as one term matched nothing."""
    assert tokens(language_analyzer("zh"), "可以用paypal付款吗") == ["可以", "以用", "paypal", "付款", "款吗"]
    assert tokens(language_analyzer("zh"), "visa可以吗") == ["visa", "可以", "以吗"]


@pytest.mark.parametrize("analyzer", [MixedScriptTokenizer(), language_analyzer("zh")])
def test_single_han_character_stays_a_token(analyzer):
    assert tokens(analyzer, "运") == ["运"]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_mixed_order_number_and_chinese(language):
    assert tokens(language_analyzer(language), "LL-123456 退款") == ["ll", "123456", "退款"]


def test_english_is_lowercased_stemmed_and_stop_words_removed():
    assert tokens(language_analyzer("en"), "Shipping") == ["ship"]
    assert tokens(language_analyzer("en"), "How long does the Shipping take?") == ["long", "ship", "take"]


def test_tokenizer_positions_and_character_offsets():
    found = [(t.text, t.pos, t.startchar, t.endchar)
             for t in MixedScriptTokenizer()("ab 运费多", positions=True, chars=True)]
    assert found == [("ab", 0, 0, 2), ("运费", 1, 3, 5), ("费多", 2, 4, 6)]


def test_analyze_uses_the_language_analyzer(index):
    assert index.analyze("Shipping costs", "en") == ["ship", "cost"]
    assert index.analyze("运费", "zh") == ["运费"]


# -- search ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "entry_id", "language"),
    [
        ("how much is shipping", "shipping-cost", "en"),
        ("where is my order", "order-tracking", "en"),
        ("怎么退货", "returns-policy", "zh"),
        ("运费多少钱？", "shipping-cost", "zh"),
    ],
)
def test_right_entry_is_first(index, query, entry_id, language):
    hits = index.search(query)
    assert hits[0].entry_id == entry_id
    assert hits[0].language == language


def test_hit_names_the_phrasing_that_matched(index):
    hit = index.search("return policy")[0]
    assert hit.entry_id == "returns-policy"
    assert hit.matched_text == "return policy"
    assert hit.kind == "question"
    assert hit.matched_terms == ("polici", "return")


def test_chinese_hit_names_the_phrasing_and_bigrams(index):
    hit = index.search("运费多少钱")[0]
    assert hit.matched_text == "运费多少钱"
    assert hit.matched_terms == ("多少", "少钱", "费多", "运费")


def test_exact_phrasing_has_confidence_one(index):
    hit = index.search("How much does shipping cost?")[0]
    assert hit.matched_text == "How much does shipping cost?"
    assert hit.confidence == 1.0
    assert hit.matched_terms == ("cost", "much", "ship")


def test_partial_phrasing_has_lower_confidence(index):
    hit = index.search("shipping cost")[0]
    assert hit.entry_id == "shipping-cost"
    assert hit.matched_text == "How much does shipping cost?"
    assert hit.kind == "question"
    assert hit.matched_terms == ("cost", "ship")
    assert 0.5 < hit.confidence < 1.0


def test_answer_only_match_is_capped(index):
    hit = index.search("confirmation email")[0]
    assert hit.entry_id == "order-tracking"
    assert hit.kind == "answer"
    assert hit.matched_text == "Use the tracking link in your confirmation email."
    assert hit.matched_terms == ("confirm", "email")
    assert 0.0 < hit.confidence <= 0.6


def test_one_hit_per_entry(index):
    hits = index.search("shipping cost delivery fee")
    assert [h.entry_id for h in hits] == ["shipping-cost"]


def test_limit_caps_hits(index):
    assert len(index.search("order return shipping", limit=2)) == 2
    assert {h.entry_id for h in index.search("order return shipping")} == {
        "shipping-cost", "returns-policy", "order-tracking"}


@pytest.mark.parametrize(
    "query",
    ["shipping AND cost*", '"shipping (cost" OR ?', "title:shipping cost)", 'AND OR "* ? ( ) shipping cost'],
)
def test_query_syntax_around_words_is_plain_text(index, query):
    hits = index.search(query)
    assert [h.entry_id for h in hits] == ["shipping-cost"]
    assert hits[0].matched_terms == ("cost", "ship")


@pytest.mark.parametrize("query", ['AND OR "* ? ( ) title:x', "*", "NOT", "a:b:c", "[1 TO 5]", "~2 ^3"])
def test_query_of_only_syntax_characters_does_not_raise(index, query):
    assert index.search(query) == []


@pytest.mark.parametrize("query", ["", "   ", "???", "the of a"])
def test_query_without_terms_finds_nothing(index, query):
    assert index.search(query) == []


def test_search_before_open_raises(tmp_path):
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    with pytest.raises(RuntimeError, match=r"open_or_build\(\) must run before search\(\)"):
        ix.search("shipping")


# -- reuse and rebuild ----------------------------------------------------------------


def folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_first_open_builds_the_index_in_a_published_folder(tmp_path):
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    assert ix.open_or_build(make_faq(tmp_path)) is True
    assert ix.directory is not None and ix.directory.parent == tmp_path / "index"
    assert (ix.directory / "faq.marker").is_file()
    assert folders(tmp_path / "index") == [ix.directory.name]  # no staging folder left beside it
    ix.close()


def test_close_releases_the_folder(tmp_path):
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    ix.open_or_build(make_faq(tmp_path))
    published = ix.directory
    assert remove_if_unheld(published) is False
    ix.close()
    assert ix.directory is None
    assert remove_if_unheld(published) is True
    assert folders(tmp_path / "index") == []


def test_unchanged_faq_reuses_the_index(tmp_path):
    faq = make_faq(tmp_path)
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    assert ix.open_or_build(faq) is True
    assert ix.open_or_build(make_faq(tmp_path)) is False
    assert ix.search("return policy")[0].entry_id == "returns-policy"
    ix.close()


def test_new_index_object_on_same_directory_reuses_it(tmp_path):
    faq = make_faq(tmp_path)
    first = KeywordIndex(tmp_path / "index", LANGUAGES)
    assert first.open_or_build(faq) is True
    first.close()
    second = KeywordIndex(tmp_path / "index", LANGUAGES)
    assert second.open_or_build(faq) is False
    assert second.search("track my parcel")[0].entry_id == "order-tracking"
    second.close()


def test_changed_faq_builds_a_new_folder_and_never_writes_into_the_old_one(tmp_path):
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    assert ix.open_or_build(make_faq(tmp_path)) is True
    assert ix.search("return policy")[0].entry_id == "returns-policy"  # caches filled for this version
    old = ix.directory
    old_files = {p.name: p.stat().st_mtime_ns for p in old.iterdir()}
    changed = make_faq(tmp_path, FAQ_YAML + "- id: gift-wrap\n  question: Do you gift wrap?\n  answer: Yes.\n")
    assert ix.open_or_build(changed) is True
    assert ix.directory != old
    assert ix.search("gift wrap")[0].entry_id == "gift-wrap"
    assert ix.search("return policy")[0].entry_id == "returns-policy"
    assert {p.name: p.stat().st_mtime_ns for p in old.iterdir()} == old_files
    assert ix.open_or_build(changed) is False
    ix.close()


def test_changed_languages_use_their_own_folder(tmp_path):
    faq = make_faq(tmp_path)
    first = KeywordIndex(tmp_path / "index", LANGUAGES)
    first.open_or_build(faq)
    ix = KeywordIndex(tmp_path / "index", ("zh", "en"))
    assert ix.open_or_build(faq) is True
    assert ix.directory != first.directory
    assert first.search("return policy")[0].entry_id == "returns-policy"
    first.close()
    ix.close()


def test_a_damaged_unheld_folder_is_rebuilt(tmp_path):
    faq = make_faq(tmp_path)
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    ix.open_or_build(faq)
    published = ix.directory
    ix.close()
    (published / "faq.marker").unlink()
    assert ix.open_or_build(faq) is True
    assert ix.directory == published
    assert ix.search("track my parcel")[0].entry_id == "order-tracking"
    ix.close()


# -- FaqSearch ----------------------------------------------------------------------


@pytest.fixture
def faq_search(tmp_path):
    search = FaqSearch(make_faq(tmp_path), tmp_path / "indexes", LANGUAGES)
    assert search.open() is True
    yield search
    search.close()


def test_faq_search_returns_hits_with_entry_and_explanation(faq_search):
    hits = faq_search.search_blocking("shipping cost")
    assert len(hits) == 1
    hit = hits[0]
    assert isinstance(hit, Hit)
    assert hit.entry is faq_search.faq.by_id["shipping-cost"]
    assert hit.matched_text == "How much does shipping cost?"
    assert hit.semantic_score is None
    assert hit.keyword_score is not None and hit.keyword_score > 0
    assert hit.why == "keyword match on 'cost', 'ship' in the en phrasing \u201cHow much does shipping cost?\u201d"


def test_faq_search_why_names_answer_matches(faq_search):
    hit = faq_search.search_blocking("confirmation email")[0]
    assert hit.why == ("keyword match on 'confirm', 'email' in the en answer "
                       "\u201cUse the tracking link in your confirmation email.\u201d")
    assert hit.score <= 0.6


def test_faq_search_why_for_chinese(faq_search):
    hit = faq_search.search_blocking("怎么退货")[0]
    assert hit.entry.id == "returns-policy"
    assert hit.why == "keyword match on '么退', '怎么', '退货' in the zh phrasing \u201c怎么退货？\u201d"
    assert hit.score == 1.0


def test_faq_search_index_lives_under_keyword_subdirectory(faq_search, tmp_path):
    folder = faq_search.keyword_directory
    assert folder is not None and folder.parent == tmp_path / "indexes" / "keyword"
    assert faq_search.faq.content_hash in (folder / "faq.marker").read_text(encoding="utf-8")


def test_faq_search_sweep_keeps_its_own_folder_and_removes_released_ones(faq_search, tmp_path):
    changed = make_faq(tmp_path, FAQ_YAML + "- id: gift-wrap\n  question: Do you gift wrap?\n  answer: Yes.\n")
    newer = FaqSearch(changed, tmp_path / "indexes", LANGUAGES)
    newer.open()
    old_folder = faq_search.keyword_directory
    assert newer.remove_stale_indexes() == []  # the first search still holds its folder
    assert faq_search.search_blocking("shipping cost")[0].entry.id == "shipping-cost"
    faq_search.close()
    assert newer.remove_stale_indexes() == [old_folder]
    assert folders(tmp_path / "indexes" / "keyword") == [newer.keyword_directory.name]
    assert newer.search_blocking("gift wrap")[0].entry.id == "gift-wrap"
    newer.close()


async def test_faq_search_async_matches_blocking(faq_search):
    assert await faq_search.search("return policy") == faq_search.search_blocking("return policy")


# -- scores are whoosh's BM25F -------------------------------------------------------------

SAMPLE_FAQ = Path(__file__).resolve().parent.parent / "examples" / "sample-shop" / "faq"
ORACLE_QUERIES = [
    "where is my order??", "how much is shipping to austria", "do you ship to japan", "我的退款呢",
    "can I pay with klarna", "discount code does not work on sale items", "size chart for shoes",
    "change my delivery address", "运费多少钱", "order order order shipping", "return", "the of a",
    "how do i return a damaged item and get my money back", "退货 运费 谁付", "cancel order 12345",
]


def whoosh_oracle(folder: Path, ix: KeywordIndex, documents):
    """A real whoosh index of the same documents, built the way kefu did before v2."""
    from whoosh import index as whoosh_index
    from whoosh.fields import TEXT, Schema

    from knowledge.keyword import field_name

    schema = Schema(**{field_name(lang): TEXT(analyzer=language_analyzer(lang)) for lang in ix.languages})
    folder.mkdir()
    built = whoosh_index.create_in(str(folder), schema)
    writer = built.writer()
    for document in documents:
        writer.add_document(**{field_name(document.language): document.original})
    writer.commit()
    return built


@pytest.mark.parametrize("query", ORACLE_QUERIES)
def test_scores_order_and_matched_terms_are_whooshs(tmp_path, query):
    from whoosh.query import Or, Term

    from knowledge.keyword import field_name

    faq = load_faq_dir(SAMPLE_FAQ, default_language="en", languages=LANGUAGES)
    ix = KeywordIndex(tmp_path / "index", LANGUAGES)
    ix.open_or_build(faq)
    built = whoosh_oracle(tmp_path / "whoosh", ix, ix.documents_of(faq))
    terms = {field_name(lang): set(ix.analyze(query, lang)) for lang in LANGUAGES}
    clauses = [Term(name, term) for name, field_terms in terms.items() for term in sorted(field_terms)]
    with built.searcher() as searcher:
        expected = [(hit.docnum, hit.score, {t.decode() for _, t in hit.matched_terms()})
                    for hit in searcher.search(Or(clauses), limit=30, terms=True)] if clauses else []
    got = ix._bm25.top(terms, limit=30)
    assert [d.docnum for d in got] == [docnum for docnum, _, _ in expected]
    assert [d.score for d in got] == pytest.approx([score for _, score, _ in expected], rel=1e-9)
    assert [set(d.matched_terms) for d in got] == [matched for _, _, matched in expected]
    if query != "the of a":
        assert len(got) > 0  # the comparison is not vacuous
    ix.close()
    built.close()
