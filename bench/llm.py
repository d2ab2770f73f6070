"""LLM responder benchmark: event-loop lag during generation, responder overhead, and — with a real
model — answer quality on Bitext questions against the sample shop's FAQ.

    .venv/bin/python bench/llm.py                       # tiny local model: lag and overhead only
    .venv/bin/python bench/llm.py --gguf MODEL.gguf     # plus 50 Bitext + 12 Chinese questions through llama-cpp
    .venv/bin/python bench/llm.py --gguf MODEL.gguf --set second   # bench/data/shoppers.csv's en + zh questions
    .venv/bin/python bench/llm.py --gguf MODEL.gguf --set other    # its questions in 9 other languages
    (--style compose|write: how the model shapes the reply; the sample shop's config by default)

Prints a table, writes bench/results/llm_SET.json and, with a model, every question, draft and
verdict to bench/results/llm_replies_SET.md for reading.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bot.config import LlamaCppConfig, TransformersLMConfig, load_config  # noqa: E402
from bot.responder.grounding import SemanticGrounder  # noqa: E402
from bot.language.detector import LanguageDetector, reply_language  # noqa: E402
from bot.llm import Generation, LlamaCppBackend, Sampling, TransformersBackend  # noqa: E402
from bot.responder.llm import GroundedResponder  # noqa: E402
from bot.responder.compose import INSTRUCTIONS  # noqa: E402
from bot.responder.prompt import ChatMessage  # noqa: E402
from bot.responder import ExtractiveResponder  # noqa: E402
from bot.texts import Texts  # noqa: E402
from knowledge.service import load_encoders, load_faq, open_search  # noqa: E402

RESULTS = REPO / "bench" / "results"
SAMPLE = REPO / "examples" / "sample-shop" / "kefu.toml"
# Bitext intents the sample shop has an FAQ entry for.
INTENTS = ("track_order", "delivery_period", "delivery_options", "check_payment_methods", "check_refund_policy",
           "get_refund", "track_refund", "cancel_order", "change_shipping_address", "recover_password",
           "create_account", "delete_account", "newsletter_subscription", "get_invoice", "payment_issue")


async def loop_lag() -> dict:
    from tiny_lm import build_tiny_model

    with tempfile.TemporaryDirectory() as folder:
        build_tiny_model(Path(folder), chat_template=True)
        backend = TransformersBackend(TransformersLMConfig(folder, "float32", 1), max_waiting=4)
        await backend.start()
        lags: list[float] = []

        async def tick() -> None:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append((time.perf_counter() - before - 0.005) * 1000)

        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        messages = [ChatMessage("user", "how long does shipping take?")]
        tokens = 0
        for _ in range(5):
            generation = await backend.generate(messages, Sampling(200, 0.0, 1.0), time.monotonic() + 60)
            tokens += generation.completion_tokens or 0
        elapsed = time.perf_counter() - started
        ticker.cancel()
        await backend.stop()
    lags.sort()
    return {"generations": 5, "tokens": tokens, "seconds": round(elapsed, 2),
            "loop_lag_p50_ms": round(statistics.median(lags), 2), "loop_lag_p99_ms": round(lags[int(0.99 * len(lags))], 2)}


class Canned:
    """A generator that answers at once with the entry's own first sentence: what is left is kefu's own cost."""

    name = "canned"

    async def generate(self, messages, sampling, deadline):  # noqa: ANN001
        system = messages[0].content
        if system == INSTRUCTIONS:  # the compose style: copy the first sentence
            return Generation(messages[1].content.split("\n1. ", 1)[1].split("\n", 1)[0], self.name)
        answer = system.split("\nA: ", 1)[1].split("\n", 1)[0]
        return Generation(answer.split(". ")[0] + ".", self.name)


def questions(n: int) -> list[tuple[str, str]]:
    source = REPO.parent / "shared" / "data" / "bitext_customer_support" / "bitext_customer_support.csv"
    with source.open(encoding="utf-8", newline="") as handle:
        rows = [(row["instruction"], row["intent"]) for row in csv.DictReader(handle) if row["intent"] in INTENTS]
    rows.sort(key=lambda row: hashlib.sha256(row[0].encode()).hexdigest())
    picked, per_intent = [], {}
    for text, intent in rows:
        if per_intent.get(intent, 0) < -(-n // len(INTENTS)) and len(picked) < n:
            picked.append((text, intent))
            per_intent[intent] = per_intent.get(intent, 0) + 1
    return picked


# Chinese shopper messages written for this bench (Bitext is English only), phrased the way shoppers
# write, not as the sample FAQ's questions: the reply language and the cross-lingual checks.
CHINESE = (
    ("我的退款呢？都一个星期了", "track_refund"), ("下单后多久能收到货", "delivery_period"),
    ("能用支付宝付款吗", "check_payment_methods"), ("地址填错了能改吗", "change_shipping_address"),
    ("我想取消刚下的订单", "cancel_order"), ("怎么开发票，公司报销要用", "get_invoice"),
    ("寄到美国运费多少钱", "shipping_cost"), ("衣服尺码不合适可以换吗", "exchange"),
    ("密码忘了登不上去", "recover_password"), ("不想再收到你们的邮件了", "newsletter_subscription"),
    ("包裹显示已签收但我没收到", "missing_parcel"), ("鞋底开胶了能保修吗", "warranty"),
)


def shoppers_set(enabled: bool) -> list[tuple[str, str, str]]:
    """bench/data/shoppers.csv's questions, written for retrieval and never used to tune the responder
    ((message, expected entry, language) triples): in the sample shop's languages (en, zh: the second set),
    or in the others (de, es, fr, it, ja, ko, nl, pt…), which the responder answers from the English
    entries before the reply is translated."""
    with (REPO / "bench" / "data" / "shoppers.csv").open(encoding="utf-8", newline="") as handle:
        return [(row["text"], row["expected"], row["language"]) for row in csv.DictReader(handle)
                if row["kind"] == "question" and (row["language"] in ("en", "zh")) == enabled]


def one_line(text: str) -> str:
    """A multi-line draft as one quoted line, so the reply that follows it stays readable."""
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


async def quality(generator, asked: list[tuple[str, str, str]], out: Path, deadline: float,  # noqa: ANN001
                  temperature: float | None = None, style: str | None = None) -> dict:
    """`asked`: (message, intent, language) triples."""
    config = load_config(SAMPLE)
    settings = dataclasses.replace(config.responder, deadline_seconds=deadline, style=style or config.responder.style)
    if temperature is not None:
        settings = dataclasses.replace(settings, temperature=temperature)
    config = dataclasses.replace(config, responder=settings)
    encoders = load_encoders(config)
    search = open_search(config, load_faq(config), encoders)
    detector = LanguageDetector.from_config(config)
    extractive = ExtractiveResponder(texts=Texts.from_config(config), retrieval=config.retrieval)
    use = next(e for e in encoders.encoders if e.id.startswith("use"))
    responder = GroundedResponder(
        generator=generator, fallback=extractive, config=config.responder,
        shop=config.shop.name, detect_language=lambda t: (detector.detect(t).language, detector.detect(t).confidence),
        grounder=SemanticGrounder(use.encode, config.responder.min_similarity))
    records = []
    for text, intent, language in asked:
        hits = search.search_blocking(text, language=language, limit=5)
        started = time.perf_counter()
        written_in = reply_language(language, config.shop.languages, config.shop.default_language)
        draft = await responder.respond(question=text, language=written_in, hits=hits, faq=search.faq)
        records.append({"question": text, "intent": intent, "language": language, "written_in": written_in, "reply": draft.text,
                        "kind": draft.kind.value, "trace": dict(draft.trace or {}),
                        "ms": (time.perf_counter() - started) * 1000})
    search.close()
    asked = [r for r in records if r["trace"]]
    used = [r for r in asked if r["trace"].get("used") == "llm"]
    per_language = {}
    for language in sorted({r["language"] for r in records}):
        theirs = [r for r in asked if r["language"] == language]
        sent = [r for r in theirs if r["trace"].get("used") == "llm"]
        per_language[language] = {
            "questions": sum(r["language"] == language for r in records), "model_asked": len(theirs),
            "llm_used": len(sent), "llm_in_right_language": sum(detector.detect(r["reply"]).language == r["written_in"]
                                                                 for r in sent)}
    latencies = sorted(r["ms"] for r in asked) or [0.0]
    lines = [f"# {generator.name} replies ({len(records)} questions, sample shop FAQ, {config.responder.style} style)\n"]
    for r in records:
        verdict = r["trace"].get("used", "not asked (no confident answer)")
        reason = r["trace"].get("fallback", "")
        refused = f"\n> model's draft (refused): {one_line(r['trace']['draft'])}\n" if "draft" in r["trace"] else ""
        if "copy" in r["trace"]:
            sent = f" → sentences {r['trace']['sentences']} of {r['trace']['of_sentences']}" if "sentences" in r["trace"] else ""
            refused += f"\n> model's copy: {one_line(r['trace']['copy'])}{sent}\n"
            if "pointer" in r["trace"]:
                refused += f"> asked for the sentence's number: {r['trace']['pointer']}\n"
        if "refused" in r["trace"]:
            first = r["trace"]["refused"]
            refused = f"\n> first draft (refused: {first['reason']}): {one_line(first['draft'])}\n{refused}"
        lines.append(f"## {r['question']}\n\n*{r['language']} · intent {r['intent']} · {verdict}{' · ' + reason if reason else ''} · "
                     f"{r['ms']:.0f} ms*\n{refused}\n{r['reply']}\n")
    out.write_text("\n".join(lines), encoding="utf-8")
    return {"questions": len(records), "model_asked": len(asked), "llm_used": len(used),
            "llm_share_of_asked": round(len(used) / len(asked), 3) if asked else 0.0,
            "latency_p50_ms": round(statistics.median(latencies)), "latency_p95_ms":
            round(latencies[int(0.95 * (len(latencies) - 1))]),
            "temperature": config.responder.temperature, "style": config.responder.style,
            "second_tries": sum("refused" in r["trace"] or "pointer" in r["trace"] for r in asked),
            "sent_after_second_try": sum("refused" in r["trace"] or "pointer" in r["trace"] for r in used),
            "per_language": per_language,
            "fallback_reasons": sorted({r["trace"]["fallback"].split(":")[0] for r in asked if "fallback" in r["trace"]})}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, help="a GGUF instruct model for llama-cpp (e.g. Qwen2.5 1.5B Q4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds per reply before the fallback")
    parser.add_argument("--no-chinese", dest="chinese", action="store_false",
                        help="skip the 12 Chinese messages asked after the Bitext ones")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: the config's, 0 = greedy)")
    parser.add_argument("--style", choices=("compose", "write"), help="the responder's style (default: the config's)")
    parser.add_argument("--set", choices=("dev", "second", "other"), default="dev",
                        help="dev: Bitext + the Chinese messages; second: bench/data/shoppers.csv (en, zh); "
                             "other: its messages in the languages the sample shop does not enable")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    figures = {"tiny_model": await loop_lag()}
    figures["overhead_canned"] = await quality(Canned(), [(*q, "en") for q in questions(20)],
                                               RESULTS / "llm_canned_replies.md", args.deadline)
    if args.gguf:
        backend = LlamaCppBackend(LlamaCppConfig(str(args.gguf), args.threads, 4096), max_waiting=4)
        await backend.start()
        if args.set == "dev":
            asked = [(*q, "en") for q in questions(args.n)] + ([(*q, "zh") for q in CHINESE] if args.chinese else [])
        else:
            asked = shoppers_set(enabled=args.set == "second")
        figures["llama_cpp"] = await quality(backend, asked, RESULTS / f"llm_replies_{args.set}.md", args.deadline,
                                             args.temperature, args.style)
        figures["llama_cpp"]["set"] = args.set
        await backend.stop()
    print(json.dumps(figures, indent=2))
    (RESULTS / f"llm_{args.set}.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
