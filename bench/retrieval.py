"""Retrieval benchmark: accuracy on real data, latency, throughput, build time, memory.

    .venv/bin/python bench/retrieval.py [--data ../shared/data] [--quick]

Prints a table and writes bench/results/retrieval.json. Accuracy uses the public
datasets described in ../shared/data/README.md (never copied into the project):
an FAQ is built from a few labelled questions per intent and evaluated on the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config import load_config  # noqa: E402
from bot.language import LanguageDetector  # noqa: E402
from knowledge.evaluation import build_faq, evaluate, read_questions  # noqa: E402
from knowledge.service import load_encoders, load_faq, open_search  # noqa: E402

RESULTS = REPO / "bench" / "results"
CONFIGS = REPO / "bench" / "configs"


def accuracy(data: Path) -> dict:
    out = {}
    bitext = RESULTS / "bitext"
    build_faq(data / "bitext_customer_support" / "bitext_customer_support.csv", bitext / "faq",
              text_col="instruction", label_col="intent", answer_col="response", per_label=10,
              rest_path=bitext / "questions.csv")
    xsid = RESULTS / "xsid"
    build_faq(data / "xsid_multilingual_intents" / "xsid_intents.csv", xsid / "faq", text_col="text",
              label_col="intent", lang_col="lang", faq_lang="en", group_col="uid", per_label=10,
              rest_path=xsid / "questions.csv")
    for name, lang_col, text_col in (("bitext", None, "instruction"), ("xsid", "lang", "text")):
        config = load_config(CONFIGS / f"{name}.toml", environ={})
        search = open_search(config, load_faq(config), load_encoders(config))
        detector = LanguageDetector.from_config(config)
        questions = read_questions(RESULTS / name / "questions.csv", text_col=text_col, label_col="faq_id",
                                   lang_col=lang_col)
        started = time.perf_counter()
        out[name] = evaluate(search, questions, answer_threshold=config.retrieval.answer_threshold,
                             detect_language=lambda text: detector.detect(text).language)
        out[name]["seconds"] = round(time.perf_counter() - started, 1)
        search.close()
    per_language = out["xsid"]["per_language"]
    others = [v["top1"] for lang, v in per_language.items() if lang != "en"]
    out["xsid"]["others_top1_mean"] = round(sum(others) / len(others), 4)
    return out


def synthetic_faq(data: Path, folder: Path, entries: int, phrasings: int) -> list[str]:
    """An FAQ of real sentences (Tatoeba, Bitext): for timing, not accuracy. Returns spare queries."""
    sentences: list[str] = []
    with (data / "tatoeba_langid" / "tatoeba_langid.csv").open(encoding="utf-8") as handle:
        sentences += [row["text"] for row in csv.DictReader(handle)]
    with (data / "bitext_customer_support" / "bitext_customer_support.csv").open(encoding="utf-8") as handle:
        sentences += [row["instruction"] for row in csv.DictReader(handle)]
    sentences = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    queries, pool = sentences[-2000:], sentences[:-2000]
    texts: list[str] = []
    round_number = 0
    while len(texts) < entries * (phrasings + 1):  # reuse sentences with a suffix when there are too few
        suffix = f" ({round_number})" if round_number else ""
        texts += [text + suffix for text in pool[: entries * (phrasings + 1) - len(texts)]]
        round_number += 1
    items = []
    for i in range(entries):
        chunk = texts[i * (phrasings + 1):(i + 1) * (phrasings + 1)]
        items.append({"id": f"e{i}", "question": chunk[0], "alternatives": chunk[1:-1], "answer": chunk[-1]})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "faq.yaml").write_text(yaml.safe_dump(items, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return queries


def write_config(name: str, languages: list[str]) -> Path:
    folder = RESULTS / name
    path = folder / "kefu.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[shop]\nname = "{name}"\ndefault_language = "en"\nlanguages = {json.dumps(languages)}\n'
        '[storage]\ndatabase = "kefu.db"\nindex_dir = "index"\n[knowledge]\nfaq_dir = "faq"\n'
        "[search]\nreload_interval_seconds = 0\n",
        encoding="utf-8",
    )
    return path


async def latency(config_path: Path, queries: list[str]) -> dict:
    config = load_config(config_path, environ={})
    started = time.perf_counter()
    search = open_search(config, load_faq(config), load_encoders(config))
    build_seconds = time.perf_counter() - started
    encoders = search.encoders
    assert encoders is not None
    for query in queries[:20]:  # warm up
        await search.search(query)
    single = []
    for query in queries[:200]:
        t = time.perf_counter()
        await search.search(query)
        single.append((time.perf_counter() - t) * 1000)
    concurrent_queries = queries[200:200 + 640]
    search.batcher.batches = search.batcher.items = 0
    t = time.perf_counter()
    for start in range(0, len(concurrent_queries), 64):
        await asyncio.gather(*(search.search(q) for q in concurrent_queries[start:start + 64]))
    concurrent_qps = len(concurrent_queries) / (time.perf_counter() - t)
    # The encoders alone on the same questions in the same batches: the ceiling batching aims at.
    t = time.perf_counter()
    for start in range(0, len(concurrent_queries), 64):
        for encoder in encoders.encoders:
            encoder.encode(concurrent_queries[start:start + 64])
    raw_qps = len(concurrent_queries) / (time.perf_counter() - t)
    search.close()
    single.sort()
    return {
        "entries": len(search.faq),
        "index_open_seconds": round(build_seconds, 1),
        "query_p50_ms": round(statistics.median(single), 1),
        "query_p95_ms": round(single[int(len(single) * 0.95)], 1),
        "concurrent64_qps": round(concurrent_qps, 1),
        "encoder_raw_batch_qps": round(raw_qps, 1),
        "concurrent_vs_raw": round(concurrent_qps / raw_qps, 3),
        "concurrent_mean_batch": round(search.batcher.items / max(1, search.batcher.batches), 1),
    }


def build_time(config_path: Path) -> dict:
    config = load_config(config_path, environ={})
    started = time.perf_counter()
    search = open_search(config, load_faq(config), load_encoders(config))
    first = time.perf_counter() - started
    search.close()
    started = time.perf_counter()
    search = open_search(config, load_faq(config), load_encoders(config))
    second = time.perf_counter() - started
    search.close()
    return {"entries": len(search.faq), "first_build_seconds": round(first, 1),
            "cached_open_seconds": round(second, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-entry build")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict = {"accuracy": accuracy(args.data)}
    queries = synthetic_faq(args.data, RESULTS / "faq1000" / "faq", 1000, 4)
    results["latency_1000"] = asyncio.run(latency(write_config("faq1000", ["en"]), queries))
    if not args.quick:
        synthetic_faq(args.data, RESULTS / "faq10000" / "faq", 10_000, 1)
        results["build_10000"] = build_time(write_config("faq10000", ["en"]))
    results["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    (RESULTS / "retrieval.json").write_text(json.dumps(results, indent=2), encoding="utf-8")

    acc = results["accuracy"]
    print(f"{'dataset':28} {'hybrid':>7} {'keyword':>8} {'semantic':>9} {'not sure':>9} {'n':>6}")
    rows = [("bitext (en)", acc["bitext"])]
    xsid = acc["xsid"]
    rows.append(("xsid all", xsid))
    for name, values in rows:
        print(f"{name:28} {values['hybrid']['top1']:7.3f} {values['keyword']['top1']:8.3f} "
              f"{values['semantic']['top1']:9.3f} {values['hybrid']['not_sure']:9.3f} {values['hybrid']['n']:6d}")
    print(f"{'xsid en':28} {xsid['per_language']['en']['top1']:7.3f}")
    print(f"{'xsid 12 others (mean)':28} {xsid['others_top1_mean']:7.3f}")
    for lang, values in xsid["per_language"].items():
        print(f"  {lang:26} {values['top1']:7.3f}")
    print()
    for key, values in results.items():
        if key.startswith(("latency", "build")):
            print(key, json.dumps(values))
    print("max_rss_mb", results["max_rss_mb"])
    print(f"wrote {RESULTS / 'retrieval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
