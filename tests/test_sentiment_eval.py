"""`kefu eval sentiment` on a small labelled CSV written by the test, and the figures behind it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, write_config

from bot.sentiment.evaluation import score_figures

ROWS = [
    ("thank you, arrived fast and it looks great", "1", "en"),
    ("love it, will order again", "positive", "en"),
    ("this is ridiculous, three weeks and still no parcel", "0", "en"),
    ("worst shop ever, I want my money back NOW", "negative", "en"),
    ("do you ship to Canada?", "neutral", "en"),
    ("质量很好，非常满意，谢谢", "1", "zh"),
    ("快递太慢了，气死我了", "0", "zh"),
    ("请问可以开发票吗", "neutral", "zh"),
]


def run_eval(tmp_path, *extra: str):
    data = tmp_path / "mood.csv"
    data.write_text("text,label,lang\n" + "".join(f'"{t}",{label},{lang}\n' for t, label, lang in ROWS),
                    encoding="utf-8")
    out = tmp_path / "mood.json"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "sentiment", "-c", str(write_config(tmp_path)), "--data", str(data),
         "--text-col", "text", "--label-col", "label", "--json", str(out), *extra],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    return result, out


def test_eval_sentiment_reports_the_analyzer_and_each_backend(tmp_path):
    result, out = run_eval(tmp_path, "--lang-col", "lang")
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert set(figures) == {"default", "embeddings", "vader", "snownlp"}
    assert figures["default"]["backend"] == "default"
    for values in figures.values():
        assert values["n"] == len(ROWS) and 0.0 <= values["accuracy"] <= 1.0
    assert figures["default"]["auc"] == 1.0  # every happy row above every unhappy one
    assert figures["default"]["accuracy"] >= 0.75  # three-way: negative / neutral / positive bands
    assert set(figures["default"]["by_language"]) == {"en", "zh"}
    assert "default (default)" in result.stdout


def test_eval_sentiment_rejects_unknown_labels(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("text,label\nhello,meh\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "sentiment", "-c", str(write_config(tmp_path)), "--data", str(data),
         "--text-col", "text", "--label-col", "label"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 2
    assert "bad.csv:2: label 'meh'" in result.stderr


def test_figures_use_the_sign_for_two_labels_and_bands_for_three():
    two = score_figures([0.4, -0.1, 0.2, -0.6], ["positive", "positive", "negative", "negative"])
    assert two == {"accuracy": 0.5, "auc": 0.75, "n": 4}
    three = score_figures([0.4, 0.0, -0.6], ["positive", "neutral", "negative"])
    assert three["accuracy"] == 1.0 and three["auc"] == 1.0
    assert score_figures([0.1, 0.2], ["positive", "positive"])["auc"] is None


@pytest.mark.parametrize(("header", "missing"), [("body,label", "text"), ("text,mood", "label")])
def test_missing_column_is_named(tmp_path, header, missing):
    from bot.sentiment.evaluation import SentimentDataError, read_sentiment_rows

    data = tmp_path / "x.csv"
    data.write_text(f"{header}\nhi,1\n", encoding="utf-8")
    with pytest.raises(SentimentDataError, match=f"no column '{missing}'"):
        read_sentiment_rows(data, "text", "label")
