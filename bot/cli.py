"""The `kefu` command: serve shoppers, chat in the terminal, check and query FAQ files."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import logging
import os
import signal
import sys
from pathlib import Path

from bot.app import KefuApp, enabled_channels
from bot.concurrency import run_blocking
from bot.config import CONSOLE_ROLES, CONSOLE_USER_NAME, RESPONDERS, Config, load_config, telegram_from_environment
from bot.errors import KefuError
from bot.language.detector import LanguageDetector
from bot.passwords import hash_password
from bot.privacy.cli import add_privacy_parser, privacy_command
from bot.store.cli import add_store_parsers, migrate_command, store_command
from bot.privacy.masking import install_log_masking
from bot.faq_suggest import add_suggest_parser, suggest_command
from bot.replay.cli import add_replay_parser, replay_command
from bot.language.evaluation import evaluate_language, read_labelled
from bot.cues import CueDetector
from bot.responder import ExtractiveResponder
from bot.sentiment.analyzer import (
    CombinedBackend,
    PolarityBackend,
    SentimentAnalyzer,
    SnowNlpBackend,
    VaderBackend,
    build_backend,
)
from bot.sentiment.evaluation import evaluate_sentiment, read_sentiment_rows
from bot.texts import Texts
from knowledge.calibration import quiz_summary
from knowledge.evaluation import build_faq, evaluate, read_questions
from knowledge.service import load_encoders, load_faq, open_search

log = logging.getLogger("kefu")

DEFAULT_CONFIG = "kefu.toml"


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("KEFU_CONFIG") or DEFAULT_CONFIG)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="PATH",
                        help=f"the shop's TOML config (default: $KEFU_CONFIG or ./{DEFAULT_CONFIG})")
    common.add_argument("--verbose", "-v", action="store_true", help="log debug details")
    parser = argparse.ArgumentParser(
        prog="kefu",
        parents=[common],
        description="kefu (客服) answers your shop's customers from your own FAQ files, in their language.",
        epilog="Start with: kefu faq check -c examples/sample-shop/kefu.toml, then kefu chat with the same config.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("serve", parents=[common], help="serve shoppers on the enabled channels (HTTP webhook …)",
                        description="Start every channel enabled in the config and answer until Ctrl-C / SIGTERM.")
    chat = commands.add_parser("chat", parents=[common], help="talk to the bot in this terminal",
                               description="A console conversation: one line per message; shows why it answered.")
    chat.add_argument("--user", help="conversation name (default: your login name); reuse it to continue")
    chat.add_argument("--quiet", action="store_true", help="hide the FAQ id, confidence and reason lines")
    commands.choices["serve"].add_argument(
        "--telegram", action="store_true",
        help="also serve Telegram by long polling, with the bot token from KEFU_TELEGRAM_TOKEN "
             "(or configure [telegram] in the config)")
    for command in (chat, commands.choices["serve"]):
        command.add_argument("--responder", choices=RESPONDERS,
                             help="who writes the replies (default: [responder] backend in the config)")
        command.add_argument("--model", help="with --responder: the model (transformers: hub id or folder; "
                                             "openai: model name; llama-cpp: .gguf file)")
    faq = commands.add_parser("faq", parents=[common], help="check FAQ files or see how a question is matched")
    faq_commands = faq.add_subparsers(dest="faq_command", metavar="ACTION", required=True)
    faq_commands.add_parser("check", parents=[common], help="validate the FAQ files and summarize them",
                            description="Read every FAQ file; print every error in all of them, each with file "
                                        "and line, or a summary.")
    add_suggest_parser(faq_commands, common, RESPONDERS)
    ask = faq_commands.add_parser("ask", parents=[common], help="rank FAQ entries for a question, with scores and why")
    ask.add_argument("question", help="the question, as a shopper would write it")
    ask.add_argument("--limit", type=int, default=5, help="how many entries to show (default 5)")
    ask.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate_cmd = commands.add_parser("eval", parents=[common],
                                       help="measure retrieval, language detection or sentiment on labelled data")
    eval_commands = evaluate_cmd.add_subparsers(dest="eval_command", metavar="ACTION", required=True)
    retrieval = eval_commands.add_parser(
        "retrieval", parents=[common], help="top-1/top-3/MRR/not-sure of hybrid, keyword and semantic search",
        description="Rank every question of a CSV against an FAQ folder; the label column holds FAQ ids.")
    retrieval.add_argument("--faq", type=Path, help="FAQ folder (default: knowledge.faq_dir of the config)")
    retrieval.add_argument("--questions", type=Path, required=True, help="CSV with a header row")
    retrieval.add_argument("--text-col", required=True, help="column with the question text")
    retrieval.add_argument("--label-col", required=True, help="column with the expected FAQ id")
    retrieval.add_argument("--lang-col", help="column with the language: adds per-language figures")
    retrieval.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    language = eval_commands.add_parser(
        "language", parents=[common], help="accuracy of language detection, overall and by length",
        description="Detect the language of every row; the enabled languages are the labels present. "
                    "Reports kefu's configured detector (with its priors) and each bare backend.")
    language.add_argument("--data", type=Path, required=True, help="CSV with a header row")
    language.add_argument("--text-col", required=True)
    language.add_argument("--label-col", required=True, help="column with ISO 639-1 codes")
    language.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    sentiment = eval_commands.add_parser(
        "sentiment", parents=[common], help="accuracy and ROC AUC of message sentiment scores",
        description="Score every row with kefu's configured sentiment analyzer (backend plus escalation cues) and "
                    "with each bare backend. Labels: 1/positive, 0/negative, optional neutral.")
    sentiment.add_argument("--data", type=Path, required=True, help="CSV with a header row")
    sentiment.add_argument("--text-col", required=True)
    sentiment.add_argument("--label-col", required=True, help="1/positive, 0/negative or neutral")
    sentiment.add_argument("--lang-col", help="column with each row's language (default: detected, as in a turn)")
    sentiment.add_argument("--language", help="the language of every row (instead of detecting it)")
    sentiment.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    builder = eval_commands.add_parser(
        "build-faq", parents=[common], help="turn a labelled question set into an FAQ folder",
        description="One entry per label with a few example questions as phrasings; the other rows can be "
                    "written to a CSV to evaluate on.")
    builder.add_argument("--data", type=Path, required=True, help="labelled CSV with a header row")
    builder.add_argument("--text-col", required=True)
    builder.add_argument("--label-col", required=True)
    builder.add_argument("--answer-col", help="column with answer text (first non-empty per label)")
    builder.add_argument("--lang-col", help="column with the language of each row")
    builder.add_argument("--faq-lang", help="only take examples in this language (needs --lang-col)")
    builder.add_argument("--group-col", help="rows sharing this column with an example (e.g. translations) "
                         "are left out of --rest")
    builder.add_argument("--per-label", type=int, default=10, help="example questions per entry (default 10)")
    builder.add_argument("--out", type=Path, required=True, help="FAQ folder to write (faq.yaml)")
    builder.add_argument("--rest", type=Path, help="write the rows not used as examples here, with a faq_id column")
    add_replay_parser(eval_commands, common)
    hasher = commands.add_parser(
        "hash-password", help="make a password hash for a [[console.users]] entry",
        description="Asks for a password twice (or reads one line from standard input when it is not a terminal) "
                    "and prints the hash to paste into kefu.toml as password_hash.")
    hasher.add_argument("--name", help="also print a ready [[console.users]] block for this user")
    hasher.add_argument("--role", action="append", choices=CONSOLE_ROLES,
                        help="the user's role (repeatable; default agent)")
    add_privacy_parser(commands, common)
    add_store_parsers(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    install_log_masking()  # emails, phones, cards and addresses never reach a log line
    if args.command == "chat" and not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)  # keep the conversation readable
    try:
        if args.command == "hash-password":
            return hash_password_command(args)
        if args.command == "eval" and args.eval_command == "build-faq":
            return eval_build_faq(args)
        config = load_config(_config_path(args))
        if args.command in ("serve", "chat") or getattr(args, "faq_command", None) == "suggest":
            config = with_responder(config, args.responder, args.model)
        if args.command == "serve" and args.telegram and not config.telegram.enabled:
            config = dataclasses.replace(config, telegram=telegram_from_environment(config.path, os.environ))
        if args.command == "serve":
            return asyncio.run(serve(config))
        if args.command == "chat":
            return asyncio.run(chat(config, user=args.user, show_why=not args.quiet))
        if args.command == "privacy":
            return asyncio.run(privacy_command(config, args))
        if args.command == "migrate":
            return asyncio.run(migrate_command(config, args))
        if args.command == "store":
            return asyncio.run(store_command(config, args))
        if args.command == "eval" and args.eval_command == "language":
            return eval_language(config, args)
        if args.command == "eval" and args.eval_command == "sentiment":
            return eval_sentiment(config, args)
        if args.command == "eval" and args.eval_command == "replay":
            return asyncio.run(replay_command(config, args))
        if args.command == "eval":
            return asyncio.run(eval_retrieval(config, args))
        if args.faq_command == "check":
            return asyncio.run(faq_check(config))
        if args.faq_command == "suggest":
            return asyncio.run(suggest_command(config, args))
        return asyncio.run(faq_ask(config, args.question, limit=args.limit, as_json=args.json))
    except KefuError as exc:
        print(f"kefu: error: {exc}", file=sys.stderr)
        return 2


def hash_password_command(args: argparse.Namespace) -> int:
    """Print a scrypt hash; the password itself never reaches the config, the shell history or the log."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            print("kefu: error: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if args.name and not CONSOLE_USER_NAME.match(args.name):
        print("kefu: error: --name must be 1 to 64 letters, digits or . _ @ -", file=sys.stderr)
        return 2
    if len(password) < 8:
        print("kefu: error: use at least 8 characters", file=sys.stderr)
        return 2
    encoded = hash_password(password)
    if not args.name:
        print(encoded)
        return 0
    roles = ", ".join(f'"{role}"' for role in (args.role or ["agent"]))
    print(f'[[console.users]]\nname = "{args.name}"\npassword_hash = "{encoded}"\nroles = [{roles}]')
    return 0


def with_responder(config: Config, backend: str | None, model: str | None) -> Config:
    """The config with the command line's --responder / --model applied."""
    if model and not backend:
        raise KefuError("--model needs --responder (transformers, openai or llama-cpp)")
    if not backend:
        return config
    responder = dataclasses.replace(config.responder, backend=backend)
    if model and backend == "transformers":
        responder = dataclasses.replace(responder, transformers=dataclasses.replace(responder.transformers, model=model))
    elif model and backend == "openai":
        responder = dataclasses.replace(responder, openai=dataclasses.replace(responder.openai, model=model))
    elif model and backend == "llama-cpp":
        responder = dataclasses.replace(responder, llama_cpp=dataclasses.replace(responder.llama_cpp, model_path=model))
    missing = {"transformers": responder.transformers.model, "openai": responder.openai.model,
               "llama-cpp": responder.llama_cpp.model_path}.get(backend, "x")
    if not missing:
        raise KefuError(f"--responder {backend} needs --model (or the model in [responder.{backend.replace('-', '_')}])")
    return dataclasses.replace(config, responder=responder)


async def serve(config: Config) -> int:
    channels = enabled_channels(config)
    if not channels:
        print(f"kefu: error: no channel is enabled in {config.path} (set [webhook] enabled = true)", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with KefuApp(config, channels=channels, serve_http=True) as app:
        assert app.http is not None
        print(f"kefu: {config.shop.name} is answering at {app.http.base_url} (Ctrl-C to stop)", file=sys.stderr,
              flush=True)
        if config.console.enabled:
            print(f"kefu: agents and the dashboard: {app.http.base_url}/console", file=sys.stderr, flush=True)
        if config.web_chat.enabled:
            where = f"{app.http.base_url}/chat/demo" if config.web_chat.demo_page else "your shop's pages"
            print(f"kefu: the chat widget: <script src=\"{app.http.base_url}/chat.js\" async></script>, "
                  f"try it at {where}", file=sys.stderr, flush=True)
        await app.run_until(stop)
        log.info("kefu.stopping")
    return 0


async def chat(config: Config, *, user: str | None, show_why: bool) -> int:
    options = {"console": {"user": user, "show_why": show_why}}
    # Starting takes seconds warm and ~20 s on a new FAQ (encoding it shows a progress bar): say so.
    print(f"kefu: loading the FAQ in {config.knowledge.faq_dir} and the sentence encoders…", file=sys.stderr,
          flush=True)
    async with KefuApp(config, channels=["console"], serve_http=False, adapter_options=options) as app:
        await app.run_until(asyncio.Event())
    return 0


async def faq_check(config: Config) -> int:
    faq = await run_blocking(load_faq, config)
    print(f"{len(faq)} FAQ entries in {len(faq.files)} file(s) under {config.knowledge.faq_dir}")
    for language in config.shop.languages:
        missing = [entry.id for entry in faq.entries if language not in entry.variants]
        covered = len(faq) - len(missing)
        line = f"  {language}: {covered}/{len(faq)} entries"
        if missing:
            line += f" (missing: {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''})"
        print(line)
    phrasings = sum(len(v.questions) for entry in faq.entries for v in entry.variants.values())
    added = sum(len(entry.more_questions) for entry in faq.entries)
    print(f"  {phrasings} question phrasings in all" + (f", and {added} reviewed ones from 'extends' items" if added else "")
          + "; OK")
    if faq.unreviewed:
        print(f"  {faq.unreviewed} suggested phrasings await review ('reviewed: false'): not used yet")
    if config.search.encoders:
        search = await run_blocking(open_search, config, faq, await run_blocking(load_encoders, config))
        try:
            retrieval = config.retrieval
            for line in quiz_summary(search.calibration, retrieval.answer_threshold, retrieval.suggest_threshold):
                print(line)
        finally:
            await run_blocking(search.close)
    return 0


def _open_search(config: Config):
    """Blocking: FAQ, encoders and indexes as `kefu serve` would build them."""
    faq = load_faq(config)
    return open_search(config, faq, load_encoders(config))


async def faq_ask(config: Config, question: str, *, limit: int, as_json: bool) -> int:
    search = await run_blocking(_open_search, config)
    try:
        detector = LanguageDetector.from_config(config)
        guess = await run_blocking(detector.detect, question)
        hits = await run_blocking(search.search_blocking, question, language=guess.language, limit=limit)
    finally:
        await run_blocking(search.close)
    responder = ExtractiveResponder(texts=Texts.from_config(config), retrieval=config.retrieval)
    draft = await responder.respond(question=question, language=guess.language, hits=hits, faq=search.faq)
    if as_json:
        print(json.dumps({
            "question": question,
            "language": {"language": guess.language, "confidence": guess.confidence, "reason": guess.reason},
            "decision": {"kind": draft.kind.value, "faq_ids": list(draft.faq_ids), "why": draft.why},
            "hits": [{"faq_id": h.entry.id, "score": h.score, "keyword_score": h.keyword_score,
                      "semantic_score": h.semantic_score, "matched_text": h.matched_text, "why": h.why,
                      "source": str(h.entry.variant(guess.language).source)} for h in hits],
        }, ensure_ascii=False, indent=2))
        return 0
    print(f"question: {question}")
    print(f"language: {guess.language} ({guess.reason})")
    print(f"decision: {draft.kind.value} — {draft.why}")
    if not hits:
        print("no FAQ entry matches this question")
    for rank, hit in enumerate(hits, start=1):
        semantic = f"similarity {hit.semantic_score:.2f}" if hit.semantic_score is not None else ""
        keyword = f"keyword {hit.keyword_score:.2f}" if hit.keyword_score is not None else ""
        print(f"{rank}. {hit.entry.id:<28} score {hit.score:.2f}  {semantic}  {keyword}  "
              f"[{hit.entry.variant(guess.language).source}]")
        print(f"   {hit.why}")
    return 0


async def eval_retrieval(config: Config, args: argparse.Namespace) -> int:
    if args.faq is not None:
        config = dataclasses.replace(config, knowledge=dataclasses.replace(config.knowledge, faq_dir=args.faq))
    questions = read_questions(args.questions, text_col=args.text_col, label_col=args.label_col,
                               lang_col=args.lang_col)
    search = await run_blocking(_open_search, config)
    detector = LanguageDetector.from_config(config)
    try:
        figures = await run_blocking(
            evaluate, search, questions, answer_threshold=config.retrieval.answer_threshold,
            ambiguity_ratio=config.retrieval.ambiguity_ratio,
            detect_language=lambda text: detector.detect(text).language,
        )
    finally:
        await run_blocking(search.close)
    print(f"{len(questions)} questions against {len(search.faq)} FAQ entries in {config.knowledge.faq_dir}")
    print(f"{'':14} {'top1':>6} {'top3':>6} {'mrr':>6} {'right':>6} {'wrong':>6} {'not sure':>9} {'n':>6}")
    rows = [(mode, figures[mode]) for mode in ("hybrid", "keyword", "semantic") if mode in figures]
    rows += [(f"  {lang}", values) for lang, values in figures.get("per_language", {}).items()]
    for name, values in rows:
        print(f"{name:14} {values['top1']:6.3f} {values['top3']:6.3f} {values['mrr']:6.3f} "
              f"{values['answered_right']:6.3f} {values['answered_wrong']:6.3f} {values['not_sure']:9.3f} "
              f"{values['n']:6d}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


def eval_language(config: Config, args: argparse.Namespace) -> int:
    rows = read_labelled(args.data, args.text_col, args.label_col)
    figures = evaluate_language(rows, backend=config.language.backend,
                                min_confidence=config.language.min_confidence)
    print(f"{len(rows)} messages in {len({label for _, label in rows})} languages")
    print(f"{'':22} {'all':>6} {'<=10':>6} {'11-20':>6} {'21-40':>6} {'>40':>6}")
    for name, values in figures.items():
        label = f"{name} ({values['backend']})" if name == "default" else name
        cells = " ".join(f"{values['by_length'][bucket]['accuracy']:6.3f}" for bucket in values["by_length"])
        print(f"{label:22} {values['accuracy']:6.3f} {cells}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


def eval_sentiment(config: Config, args: argparse.Namespace) -> int:
    rows = read_sentiment_rows(args.data, args.text_col, args.label_col, args.lang_col, args.language)
    encoders = load_encoders(config)
    loaded = encoders.encoders if encoders else []
    languages = config.shop.languages
    analyzer = SentimentAnalyzer(
        build_backend(config.sentiment.backend, languages=languages, encoders=loaded,
                      transformers_model=config.sentiment.transformers_model, threads=config.search.threads,
                      cache_dir=config.storage.index_dir / "sentiment"),
        CueDetector(languages))
    examples = analyzer.backend.examples if isinstance(analyzer.backend, CombinedBackend) else build_backend(
        "embeddings", languages=languages, encoders=loaded, cache_dir=config.storage.index_dir / "sentiment")
    bare: dict[str, PolarityBackend] = {"embeddings": examples}
    if "en" in languages:
        bare["vader"] = VaderBackend()
    if "zh" in languages:
        bare["snownlp"] = SnowNlpBackend()
    detector = LanguageDetector.from_config(config)
    figures = evaluate_sentiment(rows, analyzer, bare, detect=lambda text: detector.detect(text).language)
    print(f"{len(rows)} messages; languages {', '.join(languages)}")
    print(f"{'':22} {'accuracy':>9} {'auc':>7} {'n':>6}")
    for name, values in figures.items():
        label = f"{name} ({values['backend']})" if name == "default" else name
        auc = f"{values['auc']:7.3f}" if values["auc"] is not None else "      -"
        print(f"{label:22} {values['accuracy']:9.3f} {auc} {values['n']:6d}")
        for lang, sub in values.get("by_language", {}).items():
            sub_auc = f"{sub['auc']:7.3f}" if sub["auc"] is not None else "      -"
            print(f"  {lang:20} {sub['accuracy']:9.3f} {sub_auc} {sub['n']:6d}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


def eval_build_faq(args: argparse.Namespace) -> int:
    if args.faq_lang and not args.lang_col:
        print("kefu: error: --faq-lang needs --lang-col", file=sys.stderr)
        return 2
    counts = build_faq(args.data, args.out, text_col=args.text_col, label_col=args.label_col,
                       answer_col=args.answer_col, lang_col=args.lang_col, faq_lang=args.faq_lang,
                       group_col=args.group_col, per_label=args.per_label, rest_path=args.rest)
    print(f"wrote {counts['entries']} entries ({counts['phrasings']} phrasings) to {args.out / 'faq.yaml'}"
          + (f"; {counts['rest']} other rows to {args.rest}" if args.rest else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
