"""Sentiment benchmark: accuracy and ROC AUC on real data, and the cost of scoring one message.

    .venv/bin/python bench/sentiment.py [--data ../shared/data]

Runs `kefu eval sentiment` (the command a merchant would run) on
- zh_shopping_sentiment: Chinese shopping and delivery reviews labelled 1/0;
- bitext_customer_support: messages tagged W (offensive) or with intent `complaint` labelled
  negative (0), every other message positive (1): the AUC says whether unhappy shoppers score
  lower than the rest. (Accuracy means little there: most "rest" messages are neutral questions.)
Also: how well requests for a person are recognised (Bitext intent contact_human_agent vs the rest).
Prints a table and writes bench/results/sentiment.json. The data is never copied into the project;
the derived CSV lives in the git-ignored bench/results/.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config import load_config  # noqa: E402
from bot.cues import CueDetector  # noqa: E402
from bot.sentiment.analyzer import SentimentAnalyzer, build_backend  # noqa: E402
from knowledge.service import load_encoders  # noqa: E402

RESULTS = REPO / "bench" / "results"
CONFIG = REPO / "bench" / "configs" / "sentiment.toml"
KEFU = [sys.executable, "-m", "bot.cli"]


def bitext_anger_csv(data: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    source = data / "bitext_customer_support" / "bitext_customer_support.csv"
    with source.open(encoding="utf-8", newline="") as handle, out.open("w", encoding="utf-8", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(["text", "label"])
        for row in csv.DictReader(handle):
            unhappy = "W" in row["tags"] or row["intent"] == "complaint"
            writer.writerow([row["instruction"], 0 if unhappy else 1])
    return out


def run_eval(data_csv: Path, text_col: str, label_col: str, language: str, out: Path) -> dict:
    command = [*KEFU, "eval", "sentiment", "-c", str(CONFIG), "--data", str(data_csv), "--text-col", text_col,
               "--label-col", label_col, "--language", language, "--json", str(out)]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    return json.loads(out.read_text(encoding="utf-8"))


def human_requests(data: Path) -> dict:
    """How often a request for a person is recognised (Bitext intent contact_human_agent) and how often
    another message is mistaken for one (every other intent, contact_customer_service included)."""
    detector = CueDetector(("en",))
    source = data / "bitext_customer_support" / "bitext_customer_support.csv"
    with source.open(encoding="utf-8", newline="") as handle:
        rows = [(row["instruction"], row["intent"] == "contact_human_agent") for row in csv.DictReader(handle)]
    asks = [bool(detector.human_request(text)) for text, _ in rows]
    wanted = sum(1 for _, human in rows if human)
    found = sum(1 for (_, human), ask in zip(rows, asks) if human and ask)
    mistaken = sum(1 for (_, human), ask in zip(rows, asks) if not human and ask)
    return {"recall": round(found / wanted, 4), "false_positive_rate": round(mistaken / (len(rows) - wanted), 4),
            "n_requests": wanted, "n_other": len(rows) - wanted}


def build_analyzer() -> SentimentAnalyzer:
    config = load_config(CONFIG)
    encoders = load_encoders(config)
    return SentimentAnalyzer(
        build_backend("default", languages=config.shop.languages, encoders=encoders.encoders if encoders else [],
                      cache_dir=config.storage.index_dir / "sentiment"),
        CueDetector(config.shop.languages))


def upset_rates(analyzer: SentimentAnalyzer, anger_csv: Path) -> dict:
    """Share of single messages at or below the `upset` handoff threshold (-0.5) and the negative band (-0.25)."""
    with anger_csv.open(encoding="utf-8", newline="") as handle:
        rows = [(row["text"], row["label"] == "0") for row in csv.DictReader(handle)]
    scores = []
    for start in range(0, len(rows), 256):
        chunk = [text for text, _ in rows[start:start + 256]]
        scores.extend(item.score for item in analyzer.analyze_many(chunk, ["en"] * len(chunk)))
    out = {}
    for threshold in (-0.5, -0.25):
        unhappy = [score <= threshold for score, (_, bad) in zip(scores, rows) if bad]
        rest = [score <= threshold for score, (_, bad) in zip(scores, rows) if not bad]
        out[str(threshold)] = {"unhappy": round(sum(unhappy) / len(unhappy), 4), "rest": round(sum(rest) / len(rest), 4)}
    return out


def latency(analyzer: SentimentAnalyzer) -> dict:
    messages = [("where is my order??", "en"), ("this is ridiculous, refund me now", "en"),
                ("我的退款呢", "zh"), ("快递太慢了，气死我了", "zh")] * 25
    analyzer.analyze(*messages[0])
    timings = []
    for text, language in messages:
        started = time.perf_counter()
        analyzer.analyze(text, language)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {"p50_ms": round(statistics.median(timings), 2), "p95_ms": round(timings[int(0.95 * len(timings))], 2),
            "n": len(timings)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    out = RESULTS / "sentiment"
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "zh_shopping_sentiment": run_eval(args.data / "zh_shopping_sentiment" / "zh_shopping_sentiment.csv", "text",
                                          "label", "zh", out / "zh.json"),
        "bitext_unhappy_vs_rest": run_eval(bitext_anger_csv(args.data, out / "bitext_anger.csv"), "text", "label",
                                           "en", out / "bitext.json"),
        "human_request_bitext": human_requests(args.data),
    }
    analyzer = build_analyzer()
    figures["bitext_share_at_or_below"] = upset_rates(analyzer, out / "bitext_anger.csv")
    figures["latency_one_message"] = latency(analyzer)
    print(f"\n{'data':26} {'backend':12} {'accuracy':>9} {'auc':>7} {'n':>6}")
    for name in ("zh_shopping_sentiment", "bitext_unhappy_vs_rest"):
        for backend, values in figures[name].items():
            auc = f"{values['auc']:7.3f}" if values["auc"] is not None else "      -"
            print(f"{name:26} {backend:12} {values['accuracy']:9.3f} {auc} {values['n']:6d}")
    for threshold, shares in figures["bitext_share_at_or_below"].items():
        print(f"Bitext messages scoring <= {threshold}: unhappy {shares['unhappy']:.3f}, rest {shares['rest']:.3f}")
    human = figures["human_request_bitext"]
    print(f"asking for a person (Bitext): recall {human['recall']:.3f} of {human['n_requests']}, "
          f"false positives {human['false_positive_rate']:.4f} of {human['n_other']}")
    lat = figures["latency_one_message"]
    print(f"one message (default backend, en+zh): p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms")
    (RESULTS / "sentiment.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
