"""`kefu eval language` on a small labelled CSV written by the test."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, write_config

ROWS = [
    ("Where is my order?", "en"), ("ok thx", "en"), ("How long does shipping take to Berlin?", "en"),
    ("Wo ist meine Bestellung?", "de"), ("Wie lange dauert der Versand nach Hamburg?", "de"), ("Danke", "de"),
    ("我的订单在哪里", "zh"), ("运费多少钱？", "zh"), ("Где мой заказ?", "ru"), ("Спасибо большое за помощь!", "ru"),
]


def test_eval_language_reports_each_backend_by_length(tmp_path):
    data = tmp_path / "lang.csv"
    data.write_text("text,lang\n" + "".join(f'"{text}",{lang}\n' for text, lang in ROWS), encoding="utf-8")
    out = tmp_path / "lang.json"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "language", "-c", str(write_config(tmp_path)), "--data", str(data),
         "--text-col", "text", "--label-col", "lang", "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "10 messages in 4 languages" in result.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert set(figures) == {"default", "lingua", "langdetect"}
    assert figures["default"]["backend"] == "lingua"
    for values in figures.values():
        assert values["n"] == 10
        assert set(values["by_length"]) == {"<=10", "11-20", "21-40", ">40"}
        assert sum(bucket["n"] for bucket in values["by_length"].values()) == 10
    assert figures["default"]["accuracy"] >= 0.9  # Cyrillic and Han narrow the choice; lingua does the rest
    assert figures["default"]["by_length"]["<=10"]["n"] == 4


def test_eval_language_rejects_labels_that_are_not_language_codes(tmp_path):
    data = tmp_path / "lang.csv"
    data.write_text("text,lang\nhello,english\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "language", "-c", str(write_config(tmp_path)), "--data", str(data),
         "--text-col", "text", "--label-col", "lang"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 2
    assert "labels must be ISO 639-1 codes" in result.stderr
