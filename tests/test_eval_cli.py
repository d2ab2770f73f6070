"""`kefu eval` as a merchant runs it: real processes, real CSV and FAQ files."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SHARED_INDEX, write_config

KEFU = [sys.executable, "-m", "bot.cli"]

# label → answer and five rows (uid, lang, text); rows sharing a uid are translations of each other.
LABELLED = {
    "shipping time": ("Orders arrive within 3-5 business days.", [
        ("s1", "en", "How long does shipping take?"),
        ("s2", "en", "when will my order arrive"),
        ("s3", "en", "how many days for delivery"),
        ("s1", "zh", "发货需要多长时间？"),
        ("s2", "de", "Wann kommt meine Bestellung an?"),
    ]),
    "refund": ("Refunds are paid within 5-7 business days.", [
        ("r1", "en", "When will I get my refund?"),
        ("r2", "en", "how long does a refund take"),
        ("r3", "en", "when do i get my money back"),
        ("r1", "zh", "我的退款什么时候到账？"),
        ("r2", "de", "Wie lange dauert eine Rückerstattung?"),
    ]),
    "payment": ("We accept Visa, Mastercard and PayPal.", [
        ("p1", "en", "Which payment methods do you accept?"),
        ("p2", "en", "can i pay with paypal"),
        ("p3", "en", "how can i pay"),
        ("p1", "zh", "支持哪些支付方式？"),
        ("p2", "de", "Kann ich mit PayPal bezahlen?"),
    ]),
}
SLUGS = {"shipping time": "shipping-time", "refund": "refund", "payment": "payment"}


def kefu(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*KEFU, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def write_labelled(path: Path) -> list[dict[str, str]]:
    rows = [
        {"text": text, "intent": label, "answer": answer if lang == "en" else "", "uid": uid, "lang": lang}
        for label, (answer, examples) in LABELLED.items()
        for uid, lang, text in examples
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "intent", "answer", "uid", "lang"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def eval_config(directory: Path) -> Path:
    """write_config, with the index in its own folder so the sample shop's cached embeddings stay."""
    path = write_config(directory)
    text = re.sub(r'index_dir = ".*"', f'index_dir = "{(SHARED_INDEX / "eval-cli").as_posix()}"',
                  path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def labelled(tmp_path) -> tuple[Path, list[dict[str, str]]]:
    path = tmp_path / "labelled.csv"
    return path, write_labelled(path)


def build(labelled_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return kefu("eval", "build-faq", "--data", str(labelled_path), "--text-col", "text", "--label-col", "intent",
                "--out", str(out), *extra)


def test_build_faq_writes_one_entry_per_label_with_its_answer(tmp_path, labelled):
    path, _ = labelled
    result = build(path, tmp_path / "faq", "--answer-col", "answer")
    assert result.returncode == 0, result.stderr
    assert f"wrote 3 entries (15 phrasings) to {tmp_path / 'faq' / 'faq.yaml'}" in result.stdout
    entries = yaml.safe_load((tmp_path / "faq" / "faq.yaml").read_text(encoding="utf-8"))
    assert [e["id"] for e in entries] == ["payment", "refund", "shipping-time"]
    for entry in entries:
        label = next(label for label, slug in SLUGS.items() if slug == entry["id"])
        answer, examples = LABELLED[label]
        assert entry["answer"] == answer
        assert sorted([entry["question"], *entry["alternatives"]]) == sorted(text for _, _, text in examples)


def test_build_faq_without_answer_column_writes_a_placeholder(tmp_path, labelled):
    path, _ = labelled
    assert build(path, tmp_path / "faq").returncode == 0
    entries = yaml.safe_load((tmp_path / "faq" / "faq.yaml").read_text(encoding="utf-8"))
    assert {e["id"]: e["answer"] for e in entries} == {
        "payment": "(answer for payment)", "refund": "(answer for refund)",
        "shipping-time": "(answer for shipping time)"}


def test_build_faq_per_label_in_one_language_and_rest_without_translations(tmp_path, labelled):
    path, rows = labelled
    rest_path = tmp_path / "rest.csv"
    result = build(path, tmp_path / "faq", "--answer-col", "answer", "--lang-col", "lang", "--faq-lang", "en",
                   "--group-col", "uid", "--per-label", "2", "--rest", str(rest_path))
    assert result.returncode == 0, result.stderr
    entries = yaml.safe_load((tmp_path / "faq" / "faq.yaml").read_text(encoding="utf-8"))
    text_to_row = {row["text"]: row for row in rows}
    used_uids = set()
    for entry in entries:
        phrasings = [entry["question"], *entry["alternatives"]]
        assert len(phrasings) == 2
        assert entry["lang"] == "en"
        assert all(text_to_row[p]["lang"] == "en" and SLUGS[text_to_row[p]["intent"]] == entry["id"]
                   for p in phrasings)
        used_uids.update(text_to_row[p]["uid"] for p in phrasings)
    rest = read_csv(rest_path)
    expected = [row for row in rows if row["uid"] not in used_uids]
    assert [r["text"] for r in rest] == [r["text"] for r in expected]
    assert [r["faq_id"] for r in rest] == [SLUGS[r["intent"]] for r in expected]
    assert len(rest) < 15 - 6  # translations of the chosen examples are left out too
    assert f"; {len(rest)} other rows to {rest_path}" in result.stdout


def test_build_faq_lang_needs_lang_col(tmp_path, labelled):
    path, _ = labelled
    result = build(path, tmp_path / "faq", "--faq-lang", "en")
    assert result.returncode == 2
    assert "--faq-lang needs --lang-col" in result.stderr
    assert not (tmp_path / "faq").exists()


FAQ = """\
- id: shipping-time
  question: How long does shipping take?
  alternatives: [when will my order arrive, how many days for delivery, delivery time]
  answer: Orders arrive within 3-5 business days.
- id: refund
  question: When will I get my refund?
  alternatives: [how long does a refund take, refund time, when do i get my money back]
  answer: Refunds are paid within 5-7 business days.
- id: payment-methods
  question: Which payment methods do you accept?
  alternatives: [how can i pay, can i pay with paypal, payment options]
  answer: We accept Visa, Mastercard and PayPal.
"""
QUESTIONS = [
    ("my parcel still has not arrived, how many days does delivery take", "shipping-time", "en"),
    ("money back for my return when", "refund", "en"),
    ("do you take paypal", "payment-methods", "en"),
    ("我的退款什么时候到账？", "refund", "zh"),
    ("怎么付款？", "payment-methods", "zh"),
]


@pytest.fixture
def retrieval_setup(tmp_path) -> tuple[Path, Path, Path]:
    faq = tmp_path / "faq"
    faq.mkdir()
    (faq / "faq.yaml").write_text(FAQ, encoding="utf-8")
    questions = tmp_path / "questions.csv"
    with questions.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "faq_id", "lang"])
        writer.writerows(QUESTIONS)
    return eval_config(tmp_path), faq, questions


def retrieval(config: Path, faq: Path, questions: Path, *extra: str) -> subprocess.CompletedProcess:
    return kefu("eval", "retrieval", "-c", str(config), "--faq", str(faq), "--questions", str(questions),
                "--text-col", "text", *extra)


def test_eval_retrieval_prints_table_and_writes_json(tmp_path, retrieval_setup):
    config, faq, questions = retrieval_setup
    out = tmp_path / "figures.json"
    result = retrieval(config, faq, questions, "--label-col", "faq_id", "--lang-col", "lang", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert f"5 questions against 3 FAQ entries in {faq}" in result.stdout
    for row in ("hybrid", "keyword", "semantic", "  en", "  zh"):
        assert re.search(rf"^{row}( +\d\.\d{{3}}){{6}} +\d+$", result.stdout, re.M), row
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert set(figures) == {"hybrid", "keyword", "semantic", "per_language"}
    for mode in ("hybrid", "keyword", "semantic"):
        assert set(figures[mode]) == {"top1", "top3", "mrr", "not_sure", "answered_right", "answered_wrong", "n"}
        assert figures[mode]["n"] == len(QUESTIONS)
        # Every question is answered right, answered wrong, or not sure.
        shares = figures[mode]["answered_right"] + figures[mode]["answered_wrong"] + figures[mode]["not_sure"]
        assert shares == pytest.approx(1.0, abs=1e-3)
        assert figures[mode]["answered_right"] <= figures[mode]["top1"]
    assert {lang: values["n"] for lang, values in figures["per_language"].items()} == {"en": 3, "zh": 2}
    assert figures["hybrid"]["top1"] >= figures["keyword"]["top1"]
    assert figures["hybrid"]["top1"] >= 0.8


def test_eval_retrieval_rejects_a_label_that_is_not_an_faq_id(tmp_path, retrieval_setup):
    config, faq, _ = retrieval_setup
    questions = tmp_path / "bad.csv"
    questions.write_text("text,faq_id\nhow can i pay,payment-methods\nwhere is my order,order-tracking\n",
                         encoding="utf-8")
    result = retrieval(config, faq, questions, "--label-col", "faq_id")
    assert result.returncode == 2
    assert "kefu: error: labels that are not FAQ ids: order-tracking" in result.stderr


def test_eval_retrieval_names_a_missing_column(retrieval_setup):
    config, faq, questions = retrieval_setup
    result = retrieval(config, faq, questions, "--label-col", "intent")
    assert result.returncode == 2
    assert f"kefu: error: {questions}: no column 'intent'; columns: text, faq_id, lang" in result.stderr


def test_build_faq_skips_a_label_without_text_and_keeps_orphans_out_of_the_rest(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("text,intent,lang\nhow can i pay,payment,en\nwie kann ich zahlen,payment,de\n"
                    ",empty,en\nwo ist mein paket,tracking,de\n", encoding="utf-8")
    rest = tmp_path / "rest.csv"
    result = kefu("eval", "build-faq", "--data", str(data), "--text-col", "text", "--label-col", "intent",
                  "--lang-col", "lang", "--faq-lang", "en", "--out", str(tmp_path / "faq"), "--rest", str(rest))
    assert result.returncode == 0, result.stderr
    entries = yaml.safe_load((tmp_path / "faq" / "faq.yaml").read_text(encoding="utf-8"))
    assert [entry["id"] for entry in entries] == ["payment"]
    with rest.open(encoding="utf-8") as handle:
        assert [(r["text"], r["faq_id"]) for r in csv.DictReader(handle)] == [("wie kann ich zahlen", "payment")]


@pytest.mark.parametrize("per_label", ["0", "-2"])
def test_build_faq_rejects_a_per_label_below_one(tmp_path, labelled, per_label):
    result = kefu("eval", "build-faq", "--data", str(labelled[0]), "--text-col", "text", "--label-col", "intent",
                  "--out", str(tmp_path / "faq"), "--per-label", per_label)
    assert result.returncode == 2
    assert f"--per-label must be at least 1, got {per_label}" in result.stderr
