"""Retrieval benchmark: accuracy on real data, latency, throughput, build time, memory.

    .venv/bin/python bench/retrieval.py [--data ../shared/data] [--quick] [--accuracy-only | --speed-only]
                                        [--phrasings 10 3 1]

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
sys.path.insert(0, str(REPO / "bench"))

from bot.config import load_config  # noqa: E402
from bot.language.detector import LanguageDetector  # noqa: E402
from knowledge.evaluation import LabelledQuestion, build_faq, evaluate, read_questions  # noqa: E402
from knowledge.embeddings import normalize_text  # noqa: E402
from knowledge.search import MODES  # noqa: E402
from knowledge.service import load_encoders, load_faq, open_search  # noqa: E402
from speed import threaded_rate  # noqa: E402

RESULTS = REPO / "bench" / "results"
CONFIGS = REPO / "bench" / "configs"


PHRASINGS = (10, 3, 1)  # question phrasings per FAQ entry: a curated FAQ, a quick one, what a merchant writes


def dataset_specs(data: Path) -> dict[str, dict]:
    """The public sets the FAQs are built from: the CSV (`source`) and `build_faq`'s column options."""
    return {
        "bitext": dict(source=data / "bitext_customer_support" / "bitext_customer_support.csv",
                       text_col="instruction", label_col="intent", answer_col="response"),
        "xsid": dict(source=data / "xsid_multilingual_intents" / "xsid_intents.csv", text_col="text",
                     label_col="intent", lang_col="lang", faq_lang="en", group_col="uid"),
    }


def held_out_questions(name: str, source: Path, spec: dict, per_label: int) -> list[LabelledQuestion]:
    """Build `RESULTS/name/faq` from `per_label` questions per label; the rows left over are the questions."""
    folder = RESULTS / name
    build_faq(source, folder / "faq", per_label=per_label, rest_path=folder / "questions.csv", **spec)
    return read_questions(folder / "questions.csv", text_col=spec["text_col"], label_col="faq_id",
                          lang_col=spec.get("lang_col"))


def accuracy(data: Path, phrasings: tuple[int, ...]) -> dict:
    """Each dataset with FAQs of 10, 3 and 1 phrasings per entry, asked the same held-out questions.

    The questions are the rows left over by the largest FAQ; the smaller FAQs take the first
    phrasings of the same stable order, so none of them has seen a question it is asked.
    """
    out: dict = {}
    for name, spec in dataset_specs(data).items():
        folder = RESULTS / name
        source = spec.pop("source")
        questions = held_out_questions(name, source, spec, max(phrasings))
        config = load_config(CONFIGS / f"{name}.toml", environ={})
        detector = LanguageDetector.from_config(config)
        for count in phrasings:
            build_faq(source, folder / "faq", per_label=count, **spec)
            started = time.perf_counter()
            search = open_search(config, load_faq(config), load_encoders(config))
            opened = time.perf_counter() - started
            started = time.perf_counter()
            result = evaluate(search, questions, answer_threshold=config.retrieval.answer_threshold,
                              ambiguity_ratio=config.retrieval.ambiguity_ratio,
                              detect_language=lambda text: detector.detect(text).language,
                              modes=MODES if count == max(phrasings) else ("hybrid",))
            result["seconds"] = round(time.perf_counter() - started, 1)
            result["open_seconds"] = round(opened, 1)
            search.close()
            if "per_language" in result:
                others = [v for lang, v in result["per_language"].items() if lang != "en"]
                result["others"] = {key: round(sum(v[key] for v in others) / len(others), 4)
                                    for key in ("top1", "answered_right", "answered_wrong", "not_sure")}
            out[f"{name}_{count}"] = result
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
    # The encoders alone on the same questions in the same batches: the ceiling batching aims at
    # (the better of kefu's one-core workers and one threaded call per batch, as in bench/speed.py).
    normalized = [normalize_text(q) for q in concurrent_queries]
    t = time.perf_counter()
    for start in range(0, len(normalized), 64):
        encoders.encode_many(normalized[start:start + 64], chunk=-(-64 // encoders.workers))
    raw_qps = max(len(normalized) / (time.perf_counter() - t),
                  threaded_rate(normalized, config.search.threads, config_path.parent))
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
    parser.add_argument("--phrasings", type=int, nargs="+", default=list(PHRASINGS),
                        help="question phrasings per FAQ entry to measure (default: 10 3 1)")
    parser.add_argument("--accuracy-only", action="store_true", help="skip latency and build time")
    parser.add_argument("--speed-only", action="store_true", help="skip the accuracy runs")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "retrieval.json"
    # A partial run keeps the other part's figures from the last run.
    results: dict = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    if not args.speed_only:
        results["accuracy"] = accuracy(args.data, tuple(args.phrasings))
    if not args.accuracy_only:
        queries = synthetic_faq(args.data, RESULTS / "faq1000" / "faq", 1000, 4)
        results["latency_1000"] = asyncio.run(latency(write_config("faq1000", ["en"]), queries))
    if not args.quick and not args.accuracy_only:
        big = synthetic_faq(args.data, RESULTS / "faq10000" / "faq", 10_000, 1)
        config_10k = write_config("faq10000", ["en"])
        results["build_10000"] = build_time(config_10k)
        results["latency_10000"] = asyncio.run(latency(config_10k, big))
        results["p95_10000_vs_1000"] = round(results["latency_10000"]["query_p95_ms"]
                                             / results["latency_1000"]["query_p95_ms"], 2)
    results["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")

    acc = results.get("accuracy", {})
    print(f"{'dataset':26} {'top1':>6} {'right':>6} {'wrong':>6} {'unsure':>7} {'keyword':>8} {'semantic':>9} "
          f"{'n':>6}  (right/wrong/unsure: answered at the default thresholds)")
    for key, values in acc.items():
        groups = [("", values["hybrid"])]
        if "per_language" in values:
            groups = [(" en", values["per_language"]["en"]), (" 12 others", values["others"])]
        for suffix, figures in groups:
            keyword = f"{values['keyword']['top1']:8.3f}" if "keyword" in values and not suffix.strip() else " " * 8
            semantic = f"{values['semantic']['top1']:9.3f}" if "semantic" in values and not suffix.strip() else " " * 9
            count = f"{figures['n']:6d}" if "n" in figures else " " * 6
            print(f"{key + suffix:26} {figures['top1']:6.3f} {figures['answered_right']:6.3f} "
                  f"{figures['answered_wrong']:6.3f} {figures['not_sure']:7.3f} {keyword} {semantic} {count}")
    print()
    for key, values in results.items():
        if key.startswith(("latency", "build")):
            print(key, json.dumps(values))
    print("max_rss_mb", results["max_rss_mb"])
    print(f"wrote {RESULTS / 'retrieval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
