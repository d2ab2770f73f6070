"""`kefu eval language`: accuracy of the language decision, overall and by message length."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from bot.errors import KefuError
from bot.language.detector import BACKENDS, LanguageDetector

BUCKETS = (("<=10", 0, 10), ("11-20", 11, 20), ("21-40", 21, 40), (">40", 41, 10**9))


class LanguageDataError(KefuError):
    """The evaluation CSV lacks a column or has unusable labels."""


def read_labelled(path: Path, text_col: str, label_col: str) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in (text_col, label_col):
            if column not in columns:
                raise LanguageDataError(f"{path}: no column '{column}'; columns: {', '.join(columns)}")
        rows = [(row[text_col].strip(), row[label_col].strip().lower()) for row in reader if row[text_col].strip()]
    bad = sorted({label for _, label in rows if not (2 <= len(label) <= 3 and label.isalpha())})
    if bad:
        raise LanguageDataError(f"{path}: labels must be ISO 639-1 codes such as 'en', got {', '.join(bad[:5])}")
    return rows


def _score(detector: LanguageDetector, rows: Sequence[tuple[str, str]]) -> dict:
    buckets = {name: [0, 0] for name, _, _ in BUCKETS}
    correct = 0
    for text, label in rows:
        right = detector.detect(text).language == label
        correct += right
        for name, low, high in BUCKETS:
            if low <= len(text) <= high:
                buckets[name][0] += 1
                buckets[name][1] += right
    return {
        "accuracy": round(correct / len(rows), 4) if rows else 0.0,
        "n": len(rows),
        "by_length": {name: {"n": n, "accuracy": round(ok / n, 4) if n else 0.0}
                      for name, (n, ok) in buckets.items()},
    }


def evaluate_language(rows: Sequence[tuple[str, str]], *, backend: str, min_confidence: float) -> dict:
    """The configured detector with its priors ("default") and each bare backend, on the same rows.

    Enabled languages are the labels present, as a shop would enable the languages it serves.
    """
    languages = tuple(sorted({label for _, label in rows}))
    default_language = "en" if "en" in languages else languages[0]
    result = {"default": {"backend": backend, **_score(
        LanguageDetector(enabled=languages, default=default_language, min_confidence=min_confidence,
                         backend=backend), rows)}}
    for name in BACKENDS:
        bare = LanguageDetector(enabled=languages, default=default_language, min_confidence=0.0, backend=name,
                                use_priors=False)
        result[name] = {"backend": name, **_score(bare, rows)}
    return result
