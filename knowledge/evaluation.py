"""Retrieval evaluation as a product feature: test an FAQ against labelled questions.

`build_faq` turns a labelled question set into an FAQ directory (one entry per
label, a few example questions as its phrasings); `evaluate` reports top-1,
top-3, MRR and the "not sure" rate for hybrid, keyword-only and semantic-only
ranking in the same run, per language when the data has one.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import KefuError
from knowledge.search import MODES, FaqSearch, Query, is_confident

BATCH = 256  # questions encoded and scored together


class EvalDataError(KefuError):
    """The evaluation CSV lacks a column or a label is not an FAQ id."""


@dataclass(frozen=True)
class LabelledQuestion:
    text: str
    label: str
    language: str | None = None


def read_questions(path: Path, *, text_col: str, label_col: str, lang_col: str | None = None) -> list[LabelledQuestion]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in filter(None, (text_col, label_col, lang_col)):
            if column not in columns:
                raise EvalDataError(f"{path}: no column '{column}'; columns: {', '.join(columns)}")
        return [
            LabelledQuestion(row[text_col].strip(), row[label_col].strip(), row[lang_col].strip() if lang_col else None)
            for row in reader
            if row[text_col].strip()
        ]


def _metrics(ranks: Sequence[int | None], not_sure: Sequence[bool]) -> dict[str, float | int]:
    """Ranking figures, and what a shopper would get: answered right, answered wrong, or "not sure"."""
    n = len(ranks)
    if n == 0:
        return {"top1": 0.0, "top3": 0.0, "mrr": 0.0, "not_sure": 0.0, "answered_right": 0.0,
                "answered_wrong": 0.0, "n": 0}
    return {
        "top1": round(sum(r == 1 for r in ranks) / n, 4),
        "top3": round(sum(r is not None and r <= 3 for r in ranks) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 4),
        "not_sure": round(sum(not_sure) / n, 4),
        "answered_right": round(sum(r == 1 and not u for r, u in zip(ranks, not_sure)) / n, 4),
        "answered_wrong": round(sum(r != 1 and not u for r, u in zip(ranks, not_sure)) / n, 4),
        "n": n,
    }


def evaluate(
    search: FaqSearch,
    questions: Sequence[LabelledQuestion],
    *,
    answer_threshold: float,
    ambiguity_ratio: float = 1.0,
    detect_language: Callable[[str], str] | None = None,
    modes: Sequence[str] = MODES,
    limit: int = 10,
) -> dict:
    """Rank every question in each mode; the label must be an FAQ id.

    A question counts as answered as the responder decides: the best hit at or above the answer
    threshold and no runner-up within `ambiguity_ratio` of it (1.0: only a runner-up tied with it).
    """
    unknown = sorted({q.label for q in questions} - set(search.faq.by_id))
    if unknown:
        raise EvalDataError(f"labels that are not FAQ ids: {', '.join(unknown[:10])}")
    available = [m for m in modes if m == "keyword" or search.semantic]
    languages = [q.language or (detect_language(q.text) if detect_language else None) for q in questions]
    result: dict = {}
    per_language: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for mode in available:
        ranks: list[int | None] = []
        not_sure: list[bool] = []
        queries = [Query(q.text, language, limit, mode) for q, language in zip(questions, languages)]
        ranked = [hits for start in range(0, len(queries), BATCH)
                  for hits in search.search_many(queries[start:start + BATCH])]
        for question, language, hits in zip(questions, languages, ranked):
            ids = [hit.entry.id for hit in hits]
            rank = ids.index(question.label) + 1 if question.label in ids else None
            unsure = not is_confident(hits, answer_threshold, ambiguity_ratio)
            ranks.append(rank)
            not_sure.append(unsure)
            if mode == "hybrid" and question.language:
                per_language[question.language][0].append(rank)
                per_language[question.language][1].append(unsure)
        result[mode] = _metrics(ranks, not_sure)
    if per_language:
        result["per_language"] = {lang: _metrics(*values) for lang, values in sorted(per_language.items())}
    return result


def _stable_order(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def slug_label(label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")
    return slug or "label-" + _stable_order(label)[:8]


def build_faq(
    data: Path,
    out_dir: Path,
    *,
    text_col: str,
    label_col: str,
    answer_col: str | None = None,
    lang_col: str | None = None,
    faq_lang: str | None = None,
    group_col: str | None = None,
    per_label: int = 10,
    rest_path: Path | None = None,
) -> dict[str, int]:
    """Write `faq.yaml` with an entry per label; optionally the unused rows to `rest_path`.

    Examples are chosen by a stable hash (not file order). With `group_col`, rows that
    share a group with a chosen example (e.g. its translations) are not written to the
    rest, so the evaluation never sees a translation of a training phrase.
    """
    if per_label < 1:
        raise EvalDataError(f"--per-label must be at least 1, got {per_label}")
    with data.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        fieldnames = list(reader.fieldnames or [])
        for column in filter(None, (text_col, label_col, answer_col, lang_col, group_col)):
            if column not in fieldnames:
                raise EvalDataError(f"{data}: no column '{column}'; columns: {', '.join(fieldnames)}")
        rows = list(reader)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if faq_lang and lang_col and row[lang_col] != faq_lang:
            continue
        by_label[row[label_col]].append(row)
    chosen: set[int] = set()
    used_groups: set[str] = set()
    entries = []
    for label in sorted(by_label):
        candidates = sorted(by_label[label], key=lambda r: _stable_order(r[text_col]))
        examples: list[dict] = []
        for row in candidates:
            if row[text_col].strip() and row[text_col].strip() not in {r[text_col].strip() for r in examples}:
                examples.append(row)
            if len(examples) == per_label:
                break
        if not examples:
            continue  # a label whose questions are all empty cannot become an entry
        chosen.update(id(r) for r in examples)
        if group_col:
            used_groups.update(r[group_col] for r in examples)
        answer = next((r[answer_col].strip() for r in examples if answer_col and r[answer_col].strip()), "")
        entry = {
            "id": slug_label(label),
            "question": examples[0][text_col].strip(),
            "alternatives": [r[text_col].strip() for r in examples[1:]],
            "answer": answer or f"(answer for {label})",
        }
        if faq_lang:
            entry["lang"] = faq_lang
        entries.append(entry)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "faq.yaml").write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    labels_with_entries = {entry["id"] for entry in entries}
    rest = [
        r for r in rows
        if id(r) not in chosen
        and not (group_col and r[group_col] in used_groups)
        and slug_label(r[label_col]) in labels_with_entries  # e.g. a label with no row in --faq-lang
    ]
    if rest_path is not None:
        with rest_path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fieldnames + ["faq_id"])
            writer.writeheader()
            for row in rest:
                writer.writerow({**row, "faq_id": slug_label(row[label_col])})
    return {"entries": len(entries), "phrasings": sum(1 + len(e["alternatives"]) for e in entries),
            "rest": len(rest)}
