"""knowledge/faq.py: YAML, Markdown and CSV FAQ files → merged, validated entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import FaqError
from knowledge.faq import FaqProblems, load_faq_dir

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FAQ = REPO / "examples" / "sample-shop" / "faq"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(directory: Path, languages: tuple[str, ...] = ("en", "zh")):
    return load_faq_dir(directory, default_language="en", languages=languages)


YAML_WITH_TRANSLATION = """\
- id: shipping-time
  question: How long does shipping take?
  alternatives:
    - when will my order arrive
    - HOW LONG DOES SHIPPING TAKE?
    - delivery time
    - Delivery Time
  answer: |
    Three to five business days.
  tags: [shipping, delivery]
  translations:
    zh:
      question: 发货需要多长时间？
      alternatives:
        - 多久能到
      answer: 三到五个工作日。
"""


# -- YAML ---------------------------------------------------------------------


def test_yaml_translation_merges_into_one_entry_with_both_variants(tmp_path):
    write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    faq = load(tmp_path)
    assert len(faq) == 1
    entry = faq.entries[0]
    assert entry.id == "shipping-time"
    assert entry.default_language == "en"
    assert set(entry.variants) == {"en", "zh"}
    assert entry.tags == ("shipping", "delivery")
    assert faq.by_id["shipping-time"] is entry


def test_yaml_variant_zh_returns_chinese_answer(tmp_path):
    write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    entry = load(tmp_path).entries[0]
    zh = entry.variant("zh")
    assert zh.language == "zh"
    assert zh.answer == "三到五个工作日。"
    assert zh.questions == ("发货需要多长时间？", "多久能到")


@pytest.mark.parametrize("language", ["fr", None, ""])
def test_yaml_variant_of_unwritten_language_falls_back_to_default(tmp_path, language):
    write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    entry = load(tmp_path).entries[0]
    assert entry.variant(language).language == "en"
    assert entry.variant(language).answer == "Three to five business days."


def test_yaml_questions_canonical_first_then_alternatives_without_case_insensitive_duplicates(tmp_path):
    write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    entry = load(tmp_path).entries[0]
    assert entry.variant("en").questions == (
        "How long does shipping take?",
        "when will my order arrive",
        "delivery time",
    )
    assert entry.question == "How long does shipping take?"


def test_yaml_source_points_at_entry_line(tmp_path):
    path = write(tmp_path, "shipping.yaml", "# comment\n\n" + YAML_WITH_TRANSLATION)
    entry = load(tmp_path).entries[0]
    assert str(entry.source) == f"{path}:3"
    assert entry.variant("zh").source.line == 14


def test_yaml_lang_key_sets_entry_language(tmp_path):
    write(tmp_path, "zh.yaml", "- id: hello\n  lang: zh\n  question: 你好\n  answer: 您好！\n")
    entry = load(tmp_path).entries[0]
    assert list(entry.variants) == ["zh"]
    assert entry.default_language == "zh"
    assert entry.variant("en").answer == "您好！"


def test_yaml_empty_file_is_skipped_when_other_files_have_entries(tmp_path):
    write(tmp_path, "empty.yaml", "# nothing yet\n")
    write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    assert [e.id for e in load(tmp_path).entries] == ["shipping-time"]


# -- Markdown -----------------------------------------------------------------

MARKDOWN_EN = """\
# Returns

Intro text before the first question is ignored.

## How do I return an item?
<!-- id: returns; tags: returns, refunds; also: send something back | return policy -->
You can return items within 30 days.

Steps:

- Log in
- Open your order

## Do you ship abroad?
Yes, worldwide.
"""

MARKDOWN_ZH = """\
## 怎么退货？
<!-- id: returns; also: 退货政策 -->
30 天内可以退货。
"""


def test_markdown_heading_becomes_question_with_metadata(tmp_path):
    write(tmp_path, "returns.md", MARKDOWN_EN)
    faq = load(tmp_path)
    entry = faq.by_id["returns"]
    assert entry.variant("en").questions == ("How do I return an item?", "send something back", "return policy")
    assert entry.tags == ("returns", "refunds")


def test_markdown_answer_spans_paragraphs_and_lists(tmp_path):
    write(tmp_path, "returns.md", MARKDOWN_EN)
    entry = load(tmp_path).by_id["returns"]
    assert entry.variant("en").answer == (
        "You can return items within 30 days.\n\nSteps:\n\n- Log in\n- Open your order"
    )


def test_markdown_heading_without_id_gets_slug_id(tmp_path):
    write(tmp_path, "returns.md", MARKDOWN_EN)
    faq = load(tmp_path)
    assert [e.id for e in faq.entries] == ["returns", "do-you-ship-abroad"]
    assert faq.by_id["do-you-ship-abroad"].variant("en").answer == "Yes, worldwide."


def test_markdown_language_from_file_name_merges_with_english_by_id(tmp_path):
    write(tmp_path, "returns.md", MARKDOWN_EN)
    zh_path = write(tmp_path, "returns.zh.md", MARKDOWN_ZH)
    entry = load(tmp_path).by_id["returns"]
    assert list(entry.variants) == ["en", "zh"]
    assert entry.variant("zh").questions == ("怎么退货？", "退货政策")
    assert entry.variant("zh").answer == "30 天内可以退货。"
    assert str(entry.variant("zh").source) == f"{zh_path}:1"
    assert entry.default_language == "en"


def test_markdown_heading_inside_code_fence_is_not_a_question(tmp_path):
    write(tmp_path, "api.md", (
        "## How do I use the API?\n"
        "Send this:\n"
        "```\n"
        "## not a heading\n"
        "```\n"
        "Done.\n"
    ))
    faq = load(tmp_path)
    assert len(faq) == 1
    assert faq.entries[0].variant("en").answer == "Send this:\n```\n## not a heading\n```\nDone."


def test_markdown_source_line_is_heading_line(tmp_path):
    path = write(tmp_path, "returns.md", MARKDOWN_EN)
    faq = load(tmp_path)
    assert str(faq.by_id["returns"].source) == f"{path}:5"
    assert str(faq.by_id["do-you-ship-abroad"].source) == f"{path}:14"


# -- CSV ----------------------------------------------------------------------

CSV_FULL = """\
id,lang,question,answer,tags
hours,en,What are your opening hours?,"Mon-Fri 9-18, Sat 10-16.",contact;hours
hours,en,opening hours,,
hours,en,when are you open,,
hours,zh,你们几点上班？,周一至周五 9-18 点。,contact
hours,zh,营业时间,,
"""


def test_csv_rows_sharing_an_id_are_alternative_phrasings(tmp_path):
    write(tmp_path, "contact.csv", CSV_FULL)
    faq = load(tmp_path)
    assert len(faq) == 1
    entry = faq.by_id["hours"]
    assert entry.variant("en").questions == ("What are your opening hours?", "opening hours", "when are you open")
    assert entry.variant("en").answer == "Mon-Fri 9-18, Sat 10-16."
    assert entry.variant("zh").questions == ("你们几点上班？", "营业时间")
    assert entry.variant("zh").answer == "周一至周五 9-18 点。"
    assert entry.tags == ("contact", "hours")


def test_csv_with_only_question_and_answer_columns(tmp_path):
    write(tmp_path, "simple.csv", "question,answer\nDo you ship abroad?,Yes.\nCan I pay by card?,\"Yes, Visa.\"\n")
    faq = load(tmp_path)
    assert [e.id for e in faq.entries] == ["do-you-ship-abroad", "can-i-pay-by-card"]
    assert faq.by_id["can-i-pay-by-card"].variant("en").answer == "Yes, Visa."
    assert faq.by_id["do-you-ship-abroad"].default_language == "en"


def test_csv_quoted_fields_keep_commas_and_newlines(tmp_path):
    write(tmp_path, "faq.csv", (
        'id,question,answer\n'
        'pay,"Cards, PayPal or invoice?","We take:\n- cards, Visa and Mastercard\n- PayPal"\n'
        'pay,"how to pay, exactly",\n'
    ))
    entry = load(tmp_path).by_id["pay"]
    assert entry.variant("en").questions == ("Cards, PayPal or invoice?", "how to pay, exactly")
    assert entry.variant("en").answer == "We take:\n- cards, Visa and Mastercard\n- PayPal"


def test_csv_source_line_counts_physical_lines(tmp_path):
    path = write(tmp_path, "faq.csv", (
        'id,question,answer\n'
        'a,First?,"line one\nline two"\n'
        'b,Second?,Answer.\n'
    ))
    faq = load(tmp_path)
    assert str(faq.by_id["a"].source) == f"{path}:2"
    assert str(faq.by_id["b"].source) == f"{path}:4"


def test_formats_in_one_directory_merge_by_id(tmp_path):
    write(tmp_path, "a.yaml", "- id: hours\n  question: Opening hours?\n  answer: 9 to 5.\n")
    write(tmp_path, "b.csv", "id,lang,question,answer\nhours,zh,营业时间？,九点到五点。\n")
    write(tmp_path, "sub/c.md", "## Do you ship?\nYes.\n")
    faq = load(tmp_path)
    assert [e.id for e in faq.entries] == ["hours", "do-you-ship"]
    assert faq.by_id["hours"].variant("zh").answer == "九点到五点。"
    assert faq.by_id["hours"].variant("en").answer == "9 to 5."


# -- content hash ---------------------------------------------------------------


def test_content_hash_is_stable_for_unchanged_files(tmp_path):
    write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    first = load(tmp_path).content_hash
    second = load(tmp_path).content_hash
    assert first == second
    assert len(first) == 64


def test_content_hash_changes_when_a_file_changes(tmp_path):
    path = write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    before = load(tmp_path).content_hash
    path.write_text(YAML_WITH_TRANSLATION.replace("Three to five", "Two to four"), encoding="utf-8")
    assert load(tmp_path).content_hash != before


def test_content_hash_changes_when_a_file_is_renamed(tmp_path):
    path = write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    before = load(tmp_path).content_hash
    path.rename(tmp_path / "delivery.yaml")
    assert load(tmp_path).content_hash != before


def test_content_hash_ignores_non_faq_files(tmp_path):
    write(tmp_path, "shipping.yaml", YAML_WITH_TRANSLATION)
    before = load(tmp_path).content_hash
    write(tmp_path, "notes.txt", "not an FAQ file")
    assert load(tmp_path).content_hash == before


# -- errors -----------------------------------------------------------------------


def test_error_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.yaml", (
        "- id: a\n"
        "  question: Q?\n"
        "  answer: [unclosed\n"
        "- id: b\n"
    ))
    with pytest.raises(FaqError, match=r"invalid YAML") as info:
        load(tmp_path)
    assert info.value.path == path
    assert info.value.line == 4
    assert str(info.value) == (f"{path}:4: invalid YAML: expected ',' or ']', but got ':' "
                               "while parsing a flow sequence (column 5)")


def test_error_yaml_entry_missing_answer_names_entry_line(tmp_path):
    path = write(tmp_path, "faq.yaml", (
        "- id: a\n"
        "  question: First?\n"
        "  answer: Yes.\n"
        "\n"
        "- id: b\n"
        "  question: Second?\n"
    ))
    with pytest.raises(FaqError, match=r"'answer' is required") as info:
        load(tmp_path)
    assert str(info.value) == f"{path}:5: 'answer' is required"


def test_error_yaml_translation_missing_answer_names_translation_line(tmp_path):
    path = write(tmp_path, "faq.yaml", (
        "- id: a\n"
        "  question: First?\n"
        "  answer: Yes.\n"
        "  translations:\n"
        "    zh:\n"
        "      question: 第一？\n"
    ))
    with pytest.raises(FaqError, match=r"'answer' is required") as info:
        load(tmp_path)
    assert str(info.value) == f"{path}:5: 'answer' is required"


def test_error_yaml_unknown_key_names_key_line(tmp_path):
    path = write(tmp_path, "faq.yaml", (
        "- id: a\n"
        "  question: First?\n"
        "  anwser: Yes.\n"
    ))
    with pytest.raises(FaqError, match=r"unknown key 'anwser'") as info:
        load(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:1: 'answer' is required",
        f"{path}:3: unknown key 'anwser' (did you mean 'answer'?); allowed: alternatives, answer, handoff, id, lang, "
        "question, tags, translations",
    ]


def test_error_yaml_top_level_not_a_list(tmp_path):
    path = write(tmp_path, "faq.yaml", "id: a\nquestion: Q?\nanswer: A.\n")
    with pytest.raises(FaqError, match=r"must be a list of entries") as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{path}:1:")


def test_error_csv_unknown_column(tmp_path):
    path = write(tmp_path, "faq.csv", "id,question,answr\na,Q?,A.\n")
    with pytest.raises(FaqError, match=r"unknown column 'answr' \(did you mean 'answer'\?\)") as info:
        load(tmp_path)
    assert [p.line for p in info.value.problems] == [1, 1]
    assert f"{path}:1: the header must name at least 'question' and 'answer'" in str(info.value)


def test_error_csv_different_answer_for_same_id_names_that_row(tmp_path):
    path = write(tmp_path, "faq.csv", (
        "id,question,answer\n"
        "a,First?,One.\n"
        "a,first again,\n"
        "a,First once more?,Two.\n"
    ))
    with pytest.raises(FaqError, match=r"already has a different answer at line 2") as info:
        load(tmp_path)
    assert info.value.line == 4
    assert str(info.value).startswith(f"{path}:4: 'a' (en) already has a different answer at line 2")


def test_error_csv_line_counts_embedded_newlines(tmp_path):
    path = write(tmp_path, "faq.csv", (
        "id,question,answer\n"              # 1
        'a,First?,"One,\nstill one,\n'      # 2, 3
        'and still one."\n'                 # 4
        "b,Other?,Other.\n"                 # 5
        "a,first again,Two.\n"              # 6
    ))
    with pytest.raises(FaqError, match=r"already has a different answer at line 2") as info:
        load(tmp_path)
    assert info.value.line == 6
    assert str(info.value).startswith(f"{path}:6:")


def test_error_csv_wrong_field_count(tmp_path):
    path = write(tmp_path, "faq.csv", "question,answer\nQ?,A.\nonly one field\n")
    with pytest.raises(FaqError, match=r"expected 2 fields, found 1") as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{path}:3:")


def test_error_markdown_heading_without_answer(tmp_path):
    path = write(tmp_path, "faq.md", (
        "## Do you ship?\n"
        "Yes.\n"
        "\n"
        "## Do you gift wrap?\n"
        "<!-- id: gift-wrap -->\n"
        "\n"
    ))
    with pytest.raises(FaqError, match=r"'Do you gift wrap\?' has no answer") as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{path}:4:")


def test_error_markdown_bad_metadata_key(tmp_path):
    path = write(tmp_path, "faq.md", "## Do you ship?\n<!-- id: ship; tagz: a -->\nYes.\n")
    with pytest.raises(FaqError, match=r"bad metadata 'tagz: a'") as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{path}:2:")


def test_error_duplicate_id_and_language_across_files_names_first_location(tmp_path):
    first = write(tmp_path, "a.yaml", "# first\n- id: hours\n  question: Opening hours?\n  answer: 9 to 5.\n")
    second = write(tmp_path, "b.md", "intro\n\n## When are you open?\n<!-- id: hours -->\n9 to 5.\n")
    with pytest.raises(FaqError, match=r"id 'hours' \(en\) is already defined at") as info:
        load(tmp_path)
    assert str(info.value) == f"{second}:3: id 'hours' (en) is already defined at {first}:2"


def test_same_id_in_different_languages_is_not_a_duplicate(tmp_path):
    write(tmp_path, "a.yaml", "- id: hours\n  question: Opening hours?\n  answer: 9 to 5.\n")
    write(tmp_path, "b.yaml", "- id: hours\n  lang: zh\n  question: 营业时间？\n  answer: 九点到五点。\n")
    assert set(load(tmp_path).by_id["hours"].variants) == {"en", "zh"}


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("faq.yaml", "- id: a\n  question: Q?\n  answer: A.\n  translations:\n    fr:\n      question: Q ?\n"
                     "      answer: R.\n", 5),
        ("faq.fr.md", "\n## Q ?\nR.\n", 2),
        ("faq.csv", "id,lang,question,answer\na,en,Q?,A.\na,fr,Q ?,R.\n", 3),
    ],
)
def test_error_language_not_enabled(tmp_path, name, text, line):
    path = write(tmp_path, name, text)
    with pytest.raises(FaqError, match=r"language 'fr' of '.+' is not enabled in shop.languages \(en, zh\)") as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{path}:{line}:")


def test_error_invalid_id(tmp_path):
    path = write(tmp_path, "faq.yaml", "- id: has space\n  question: Q?\n  answer: A.\n")
    with pytest.raises(FaqError, match=r"id 'has space' must be letters, digits") as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{path}:1:")


def test_error_empty_directory(tmp_path):
    write(tmp_path, "readme.txt", "not an FAQ")
    with pytest.raises(FaqError, match=r"no FAQ entries found") as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: no FAQ entries found")


def test_error_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("- id: a\n  question: Où?\n  answer: Là.\n".encode("latin-1"))
    with pytest.raises(FaqError, match=r"not UTF-8 text") as info:
        load(tmp_path)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}:2: not UTF-8 text")  # the line of the first bad byte
    assert str(info.value).endswith("save the file as UTF-8")


def test_error_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FaqError, match=r"FAQ directory does not exist") as info:
        load(missing)
    assert str(info.value) == f"{missing}: FAQ directory does not exist"


def test_utf8_bom_is_accepted(tmp_path):
    (tmp_path / "faq.csv").write_bytes("\ufeffquestion,answer\nDo you ship?,Yes.\n".encode())
    assert load(tmp_path).entries[0].id == "do-you-ship"


# -- the bundled sample shop ------------------------------------------------------


def test_sample_shop_faq_has_at_least_30_entries_all_in_english_and_chinese():
    faq = load_faq_dir(SAMPLE_FAQ, default_language="en", languages=("en", "zh"))
    assert len(faq) >= 30
    missing = [e.id for e in faq.entries if set(e.variants) != {"en", "zh"}]
    assert missing == []
    assert all(e.default_language == "en" for e in faq.entries)
    assert all(v.answer and v.questions for e in faq.entries for v in e.variants.values())


def test_handoff_flag_in_each_format(tmp_path):
    write(tmp_path, "a.yaml", "- id: legal\n  question: I will sue you\n  answer: Our team will contact you.\n"
                               "  handoff: true\n- id: plain\n  question: hi\n  answer: hello\n")
    write(tmp_path, "b.md", "## Broken item?\n<!-- id: broken; handoff: yes -->\nSend photos.\n")
    write(tmp_path, "c.csv", "id,question,answer,handoff\nchargeback,chargeback?,We will check.,1\n"
                              "fine,is it fine?,Yes.,\n")
    faq = load(tmp_path)
    assert {e.id: e.handoff for e in faq.entries} == {"legal": True, "plain": False, "broken": True,
                                                     "chargeback": True, "fine": False}


@pytest.mark.parametrize(("name", "text", "line"), [
    ("a.yaml", "- id: x\n  question: q\n  answer: a\n  handoff: maybe\n", 4),
    ("b.md", "## q\n<!-- handoff: perhaps -->\nanswer\n", 1),
    ("c.csv", "question,answer,handoff\nq,a,sometimes\n", 2),
])
def test_handoff_flag_must_be_true_or_false(tmp_path, name, text, line):
    write(tmp_path, name, text)
    with pytest.raises(FaqError) as info:
        load(tmp_path)
    assert info.value.line == line and "'handoff' must be true or false" in str(info.value)


def test_sample_shop_sends_damage_claims_to_a_person():
    faq = load(SAMPLE_FAQ)
    assert [e.id for e in faq.entries if e.handoff] == ["damaged-or-wrong-item"]


# -- every problem in one run ------------------------------------------------------


def test_every_problem_in_every_file_is_reported_in_one_run_with_file_and_line(tmp_path):
    yaml_path = write(tmp_path, "a.yaml", (
        "- id: ok\n"                       # 1
        "  question: Fine?\n"              # 2
        "  answer: Yes.\n"                 # 3
        "- id: no-answer\n"                # 4
        "  question: Where?\n"             # 5
        "- id: listless\n"                 # 6
        "  question: Shipping?\n"          # 7
        "  alternatives: a, b\n"           # 8
        "  answer: Soon.\n"                # 9
    ))
    md_path = write(tmp_path, "b.md", "## Do you gift wrap?\n\n## Do you ship?\nYes.\n")
    csv_path = write(tmp_path, "c.csv", "question,answer\n,No question.\nQ?,A.\n")
    with pytest.raises(FaqProblems) as info:
        load(tmp_path)
    assert [(p.path, p.line) for p in info.value.problems] == [
        (str(yaml_path), 4), (str(yaml_path), 8), (str(md_path), 1), (str(csv_path), 2)]
    lines = str(info.value).splitlines()
    assert lines[0] == f"4 problems in 3 FAQ file(s) under {tmp_path}:"
    assert lines[1:] == [
        f"  {yaml_path}:4: 'answer' is required",
        f"  {yaml_path}:8: 'alternatives' must be a list, not the text 'a, b': write each phrasing on its own line "
        "starting with '- ' under 'alternatives:', or alternatives: [a, b]",
        f"  {md_path}:1: question 'Do you gift wrap?' has no answer below it",
        f"  {csv_path}:2: 'question' is empty",
    ]


def test_a_single_problem_reads_like_one_faq_error(tmp_path):
    path = write(tmp_path, "a.yaml", "- id: a\n  question: Q?\n")
    with pytest.raises(FaqError) as info:
        load(tmp_path)
    assert isinstance(info.value, FaqProblems) and len(info.value.problems) == 1
    assert (info.value.path, info.value.line, str(info.value)) == (path, 1, f"{path}:1: 'answer' is required")


@pytest.mark.parametrize(("key", "noun"), [("alternatives", "phrasing"), ("tags", "tag")])
def test_yaml_list_field_written_as_text_names_file_line_and_key(tmp_path, key, noun):
    path = write(tmp_path, "faq.yaml", f"- id: a\n  question: Q?\n  answer: A.\n  {key}: one, two\n")
    with pytest.raises(FaqProblems) as info:
        load(tmp_path)
    assert str(info.value) == (
        f"{path}:4: '{key}' must be a list, not the text 'one, two': write each {noun} on its own line starting "
        f"with '- ' under '{key}:', or {key}: [one, two]")


@pytest.mark.parametrize(("body", "line", "message"), [
    ("  question: 42\n  answer: A.\n", 2, "'question' must be text, got the number 42; put it in quotes to keep it as text"),
    ("  question: Open today?\n  answer: yes\n", 3, "'answer' must be text, got true (YAML reads yes, no, on, off, "
     "true and false as true or false); put it in quotes to keep it as text"),
    ("  question: '   '\n  answer: A.\n", 2, "'question' is empty; write the question or remove the entry"),
    ("  question: [Where, other]\n  answer: A.\n", 2, "'question' must be text, got a list ['Where', 'other']; put other "
     "phrasings under 'alternatives'"),
    ("  question: Q?\n  alternatives:\n    - fine\n    - 404\n  answer: A.\n", 5,
     "phrasing 2 of 'alternatives' must be text, got the number 404; put it in quotes to keep it as text"),
    ("  question: Q?\n  answer: A.\n  answer: B.\n", 4, "'answer' is written twice (also at line 3); keep one"),
    ("  question: Q?\n  answer: A.\n  handoff: maybe\n", 4, "'handoff' must be true or false, got 'maybe'"),
])
def test_yaml_wrong_types_name_the_key_line(tmp_path, body, line, message):
    path = write(tmp_path, "faq.yaml", "- id: a\n" + body)
    with pytest.raises(FaqProblems) as info:
        load(tmp_path)
    assert [str(p) for p in info.value.problems] == [f"{path}:{line}: {message}"]


@pytest.mark.parametrize(("code", "message"), [
    ("zh-CN", "language 'zh-CN' of 'a' is not an ISO 639-1 code such as 'en' or 'zh'; write 'zh'"),
    ("ZH", "language 'ZH' of 'a' is not an ISO 639-1 code such as 'en' or 'zh'; write 'zh'"),
    ("chinese", "language 'chinese' of 'a' is not an ISO 639-1 code such as 'en' or 'zh'"),
])
def test_yaml_translation_with_a_code_that_is_not_iso_639_1(tmp_path, code, message):
    path = write(tmp_path, "faq.yaml", f"- id: a\n  question: Q?\n  answer: A.\n  translations:\n    {code}:\n"
                                       "      question: 问？\n      answer: 答。\n")
    with pytest.raises(FaqProblems) as info:
        load(tmp_path)
    assert str(info.value) == f"{path}:5: {message}"


def test_yaml_translation_key_yaml_reads_as_false_is_named(tmp_path):
    path = write(tmp_path, "faq.yaml", "- id: a\n  question: Q?\n  answer: A.\n  translations:\n    no:\n"
                                       "      question: Spørsmål?\n      answer: Svar.\n")
    with pytest.raises(FaqProblems) as info:
        load(tmp_path, languages=("en", "no"))
    assert str(info.value) == (f"{path}:5: key 'no' is read by YAML as false (YAML reads yes, no, on, off, true and "
                               "false as true or false), not as text; put it in quotes: \"no\":")


def test_markdown_file_name_with_a_region_code_is_named_not_read_as_english(tmp_path):
    path = write(tmp_path, "faq.zh-CN.md", "## 运费？\n5 欧元。\n")
    with pytest.raises(FaqProblems) as info:
        load(tmp_path)
    assert str(info.value) == (f"{path}: the language 'zh-CN' in the file name is not an ISO 639-1 code; "
                               "name the file faq.zh.md")


def test_csv_language_and_markdown_metadata_problems_come_together(tmp_path):
    csv_path = write(tmp_path, "a.csv", "id,lang,question,answer\nx,en,Q?,A.\nx,zh_TW,问？,答。\n")
    md_path = write(tmp_path, "b.md", "## Q2?\n<!-- id: y; id: z; tagz: a -->\nA2.\n")
    with pytest.raises(FaqProblems) as info:
        load(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"{csv_path}:3: language 'zh_TW' of 'x' is not an ISO 639-1 code such as 'en' or 'zh'; write 'zh'",
        f"{md_path}:2: metadata 'id' is written twice; keep one",
        f"{md_path}:2: bad metadata 'tagz: a'; write e.g. <!-- id: returns; tags: a, b; also: q1 | q2 -->",
    ]


def test_duplicate_ids_across_files_are_all_reported(tmp_path):
    first = write(tmp_path, "a.yaml", "- id: hours\n  question: Hours?\n  answer: 9-5.\n"
                                      "- id: ship\n  question: Ship?\n  answer: Yes.\n")
    second = write(tmp_path, "b.csv", "id,question,answer\nhours,Open?,9-5.\nship,Do you ship?,Yes.\n")
    with pytest.raises(FaqProblems) as info:
        load(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"{second}:2: id 'hours' (en) is already defined at {first}:1",
        f"{second}:3: id 'ship' (en) is already defined at {first}:4",
    ]


def test_yaml_merge_keys_still_work_and_own_keys_override(tmp_path):
    write(tmp_path, "faq.yaml", "- &base\n  id: a\n  question: Q?\n  answer: A.\n"
                                "- <<: *base\n  id: b\n  answer: B.\n")
    faq = load(tmp_path)
    assert faq.by_id["b"].variant("en").answer == "B."
    assert faq.by_id["b"].variant("en").questions == ("Q?",)
