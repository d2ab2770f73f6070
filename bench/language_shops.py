"""Language ID as a shop sees it: shoppers writing in languages the shop did and did not enable.

    .venv/bin/python bench/language_shops.py [--data ../shared/data] [--tatoeba 2500]

Two shops on the same messages: one that enables only en+zh (the sample shop) and one that
enables every language in the set. Sets: bench/data/shoppers.csv (chat-style shopper messages
written for kefu, 11 languages) and a seeded sample of the dev part of tatoeba_langid (short
sentences, the languages kefu has texts for). Reports accuracy per language and how many
messages of an enabled language were taken for another one (a shopper answered wrongly). Prints a
table and writes bench/results/language_shops.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.language.detector import LanguageDetector, known_languages  # noqa: E402

RESULTS = REPO / "bench" / "results"


def shoppers() -> list[tuple[str, str]]:
    with (REPO / "bench" / "data" / "shoppers.csv").open(encoding="utf-8") as handle:
        return [(row["text"], row["language"]) for row in csv.DictReader(handle)]


def tatoeba(data: Path, size: int) -> list[tuple[str, str]]:
    with (data / "tatoeba_langid" / "tatoeba_langid.csv").open(encoding="utf-8") as handle:
        rows = [(row["text"], row["lang"]) for row in csv.DictReader(handle) if row["lang"] in known_languages()]
    random.Random(1).shuffle(rows)
    return rows[:size]


def score(rows: list[tuple[str, str]], enabled: tuple[str, ...]) -> dict:
    detector = LanguageDetector(enabled=enabled, default="en" if "en" in enabled else enabled[0], min_confidence=0.8)
    total, right, taken_away = Counter(), Counter(), 0
    started = time.perf_counter()
    for text, label in rows:
        found = detector.detect(text).language
        total[label] += 1
        right[label] += found == label
        taken_away += label in enabled and found != label
    return {"enabled": list(enabled), "n": len(rows), "accuracy": round(sum(right.values()) / len(rows), 4),
            "enabled_taken_for_another": taken_away,
            "ms_per_message": round((time.perf_counter() - started) * 1000 / len(rows), 3),
            "by_language": {lang: round(right[lang] / total[lang], 3) for lang in sorted(total)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--tatoeba", type=int, default=2500, help="sentences sampled from tatoeba_langid (dev)")
    args = parser.parse_args()
    sets = {"shoppers": shoppers(), "tatoeba": tatoeba(args.data, args.tatoeba)}
    results = {}
    print(f"{'set':<10} {'shop enables':<14} {'n':>5} {'accuracy':>9} {'enabled taken for another':>26} {'ms/msg':>7}")
    for name, rows in sets.items():
        for label, enabled in (("en+zh", ("en", "zh")), ("all", tuple(sorted({lang for _, lang in rows})))):
            result = score(rows, enabled)
            results[f"{name}/{label}"] = result
            print(f"{name:<10} {label:<14} {result['n']:>5} {result['accuracy']:>9.3f} "
                  f"{result['enabled_taken_for_another']:>26} {result['ms_per_message']:>7.2f}")
    for key, result in results.items():
        print(f"\n{key}: " + "  ".join(f"{lang} {value:.2f}" for lang, value in result["by_language"].items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "language_shops.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
