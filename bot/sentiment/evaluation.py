"""`kefu eval sentiment`: how well message scores separate unhappy shoppers from the rest.

Each row is scored by kefu's configured analyzer ("default": backend plus escalation
cues, as a live turn scores it) and by each bare backend that applies, on the same
rows. Accuracy uses the sign of the score for positive/negative labels (the
negative/neutral/positive bands when the data has neutral rows); AUC ranks the
positive rows against the negative ones and ignores neutral rows.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import KefuError
from bot.sentiment.analyzer import PolarityBackend, SentimentAnalyzer, label_of

LABELS = {"1": "positive", "positive": "positive", "pos": "positive", "0": "negative", "negative": "negative",
          "neg": "negative", "neutral": "neutral", "neu": "neutral"}


class SentimentDataError(KefuError):
    """The evaluation CSV lacks a column or has labels kefu cannot read."""


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str  # positive / negative / neutral
    language: str | None


def read_sentiment_rows(path: Path, text_col: str, label_col: str, lang_col: str | None = None,
                        language: str | None = None) -> list[LabelledText]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in (text_col, label_col, *([lang_col] if lang_col else [])):
            if column not in columns:
                raise SentimentDataError(f"{path}: no column '{column}'; columns: {', '.join(columns)}")
        rows = []
        for number, row in enumerate(reader, start=2):
            text = row[text_col].strip()
            if not text:
                continue
            raw = row[label_col].strip().lower()
            if raw not in LABELS:
                raise SentimentDataError(f"{path}:{number}: label '{raw}' is not one of: 1/positive, 0/negative, "
                                         "neutral")
            rows.append(LabelledText(text, LABELS[raw], (row[lang_col].strip() or None) if lang_col else language))
    if not rows:
        raise SentimentDataError(f"{path}: no rows with text")
    return rows


def score_figures(scores: Sequence[float], labels: Sequence[str]) -> dict:
    from sklearn.metrics import roc_auc_score

    three_way = "neutral" in labels
    if three_way:
        correct = sum(label_of(score) == label for score, label in zip(scores, labels))
    else:
        correct = sum((score >= 0) == (label == "positive") for score, label in zip(scores, labels))
    polar = [(score, label == "positive") for score, label in zip(scores, labels) if label != "neutral"]
    both = {is_positive for _, is_positive in polar} == {True, False}
    auc = roc_auc_score([p for _, p in polar], [s for s, _ in polar]) if both else None
    return {"accuracy": round(correct / len(labels), 4), "auc": round(float(auc), 4) if auc is not None else None,
            "n": len(labels)}


def evaluate_sentiment(rows: Sequence[LabelledText], analyzer: SentimentAnalyzer,
                       backends: dict[str, PolarityBackend], *, detect: Callable[[str], str] | None = None,
                       batch: int = 256) -> dict:
    """Figures for the analyzer ("default") and every bare backend, on the same rows.

    A row without a language gets the one `detect` finds, as a live turn would.
    """
    texts = [row.text for row in rows]
    languages = [row.language or (detect(row.text) if detect else None) for row in rows]
    labels = [row.label for row in rows]
    default: list[float] = []
    for start in range(0, len(texts), batch):
        chunk = analyzer.analyze_many(texts[start:start + batch], languages[start:start + batch])
        default.extend(item.score for item in chunk)
    figures = {"default": {"backend": analyzer.backend.name, **score_figures(default, labels)}}
    for name, backend in backends.items():
        scores: list[float] = []
        for start in range(0, len(texts), batch):
            scores.extend(backend.polarity(texts[start:start + batch], languages[start:start + batch]))
        figures[name] = {"backend": name, **score_figures(scores, labels)}
    by_language: dict[str, list[int]] = {}
    for index, language in enumerate(languages):
        by_language.setdefault(language or "?", []).append(index)
    if len(by_language) > 1:
        figures["default"]["by_language"] = {
            lang: score_figures([default[i] for i in idx], [labels[i] for i in idx])
            for lang, idx in sorted(by_language.items())
        }
    return figures
