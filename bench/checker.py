"""The LLM responder's draft checks measured like a classifier, on drafts labelled by reading.

    .venv/bin/python bench/checker.py [--set dev|second|both] [--config PATH]

Each row of bench/data/checker_drafts.csv (the dev set) and bench/data/checker_drafts_second.csv
(written after the checks, to measure them only: never tuned on) is a shopper's message, the sample
FAQ entry the responder would hand the model, a draft reply in English or Chinese, and its label,
read against that entry: `supported` (every statement backed by the entry's answer) or `unsupported`,
with the kind of draft (a paraphrase, a changed number, a status claim …). Every draft goes through
`DraftReviewer.review`, the responder's own checks, with the grounder and the language detector built
as `kefu serve` builds them (USE through the same similarity threshold, lingua over every language).

Reports per set and language: recall on unsupported drafts (refused / unsupported: what slips through
is what hurts a shop; the goal 0.98), false refusals (refused / supported; the goal at most 0.10), both
by kind, and every miss with the check's reason. Writes bench/results/checker.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config import load_config  # noqa: E402
from bot.language.detector import LanguageDetector  # noqa: E402
from bot.responder.grounding import SemanticGrounder  # noqa: E402
from bot.responder.review import DraftRejected, DraftReviewer, DraftSources  # noqa: E402
from knowledge.encoders import UseEncoder, one_blas_thread  # noqa: E402
from knowledge.service import load_faq  # noqa: E402

SETS = {"dev": REPO / "bench" / "data" / "checker_drafts.csv",
        "second": REPO / "bench" / "data" / "checker_drafts_second.csv"}
SAMPLE_CONFIG = REPO / "examples" / "sample-shop" / "kefu.toml"
RESULTS = REPO / "bench" / "results" / "checker.json"
LABELS = ("supported", "unsupported")


@dataclass(frozen=True)
class Verdict:
    row: dict[str, str]
    refused: bool
    reason: str
    sent: str  # the draft as it would be sent (a borrowed premise cut), when passed


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, start=2):
        if row["label"] not in LABELS or row["language"] not in ("en", "zh"):
            raise SystemExit(f"{path}:{number}: label must be supported/unsupported and language en/zh: {row}")
    return rows


async def review_all(rows: list[dict[str, str]], reviewer: DraftReviewer, faq) -> list[Verdict]:  # noqa: ANN001
    verdicts = []
    for row in rows:
        entry = faq.by_id.get(row["faq_id"])
        if entry is None:
            raise SystemExit(f"row {row['id']}: no FAQ entry '{row['faq_id']}'")
        given = DraftSources.of(row["question"], row["language"], [entry.variant(row["language"])])
        try:
            sent = await reviewer.review(row["draft"], given, {})
            verdicts.append(Verdict(row, False, "", sent))
        except DraftRejected as refused:
            verdicts.append(Verdict(row, True, refused.reason, ""))
    return verdicts


def figures(verdicts: list[Verdict]) -> dict:
    unsupported = [v for v in verdicts if v.row["label"] == "unsupported"]
    supported = [v for v in verdicts if v.row["label"] == "supported"]
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for v in verdicts:
        by_kind[f"{v.row['label']}/{v.row['kind']}"]["refused" if v.refused else "passed"] += 1
    return {
        "drafts": len(verdicts),
        "unsupported": len(unsupported),
        "supported": len(supported),
        "recall_unsupported": round(sum(v.refused for v in unsupported) / len(unsupported), 3) if unsupported else None,
        "false_refusals": round(sum(v.refused for v in supported) / len(supported), 3) if supported else None,
        "precision_of_refusals": (round(sum(v.refused for v in unsupported) / refused, 3)
                                  if (refused := sum(v.refused for v in verdicts)) else None),
        "by_kind": {kind: dict(counts) for kind, counts in sorted(by_kind.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=("dev", "second", "both"), default="both")
    parser.add_argument("--config", type=Path, default=SAMPLE_CONFIG)
    args = parser.parse_args()
    config = load_config(args.config)
    faq = load_faq(config)
    one_blas_thread()
    use = UseEncoder()
    grounder = SemanticGrounder(use.encode, config.responder.min_similarity)
    detector = LanguageDetector.from_config(config)
    reviewer = DraftReviewer(shop=config.shop.name, detect_language=detector.language_of, grounder=grounder)
    report: dict = {}
    for name in (("dev", "second") if args.set == "both" else (args.set,)):
        verdicts = asyncio.run(review_all(read_rows(SETS[name]), reviewer, faq))
        report[name] = {"all": figures(verdicts)}
        for language in ("en", "zh"):
            report[name][language] = figures([v for v in verdicts if v.row["language"] == language])
        report[name]["slipped_through"] = [
            {k: v.row[k] for k in ("id", "language", "faq_id", "kind", "draft", "note")}
            for v in verdicts if v.row["label"] == "unsupported" and not v.refused]
        report[name]["refused_supported"] = [
            {**{k: v.row[k] for k in ("id", "language", "faq_id", "kind", "draft")}, "reason": v.reason}
            for v in verdicts if v.row["label"] == "supported" and v.refused]
    print(f"{'set':8s} {'lang':4s} {'drafts':>6s} {'unsup.':>6s} {'recall':>7s} {'false refusals':>15s} "
          f"{'precision':>9s}")
    for name, parts in report.items():
        for language in ("all", "en", "zh"):
            f = parts[language]
            print(f"{name:8s} {language:4s} {f['drafts']:6d} {f['unsupported']:6d} {f['recall_unsupported']!s:>7s} "
                  f"{f['false_refusals']!s:>15s} {f['precision_of_refusals']!s:>9s}")
    for name, parts in report.items():
        print(f"\n{name}: unsupported drafts that passed ({len(parts['slipped_through'])}):")
        for row in parts["slipped_through"]:
            print(f"  {row['id']} {row['language']} {row['kind']:18s} {row['draft'][:110]}")
        print(f"{name}: supported drafts refused ({len(parts['refused_supported'])}):")
        for row in parts["refused_supported"]:
            print(f"  {row['id']} {row['language']} {row['kind']:18s} {row['reason'][:110]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
