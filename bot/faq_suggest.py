"""`kefu faq suggest`: the configured LLM proposes more ways to ask each FAQ question, for review.

A merchant writes one question per entry; shoppers ask it twenty ways, in several
languages. The model writes candidate phrasings for every entry and enabled language
(from the entry's question, translated when the entry has no text in that language);
kefu drops the ones it can tell are bad — not in the target language, a copy or
near-copy of an existing phrasing, a restatement of the answer, or a question another
entry already answers confidently — and writes the rest to a YAML file of `extends`
items with `reviewed: false`. Nothing in it is used until the merchant has read it,
edited what needs editing, set `reviewed: true` and put the file in the FAQ folder.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import yaml

from bot.concurrency import run_blocking
from bot.config import Config
from bot.errors import KefuError
from bot.language.detector import LanguageDetector
from bot.llm import GenerationBackend, GenerationError, Sampling, build_generator
from bot.responder.prompt import LANGUAGE_NAMES, ChatMessage
from bot.scripts import dense_characters
from knowledge.faq import FaqBase, FaqEntry
from knowledge.search import Hit
from knowledge.service import load_encoders, load_faq, open_search

log = logging.getLogger(__name__)

MAX_PHRASING_CHARS = 160
NEAR_COPY = 0.85  # difflib ratio above which a proposal only repeats a phrasing with a word changed
SUGGEST_TEMPERATURE = 0.7  # variety is the point here, and the merchant reviews every line
ANSWER_COPY = 0.75  # share of a proposal copied from the answer above which it restates the answer
MIN_COPIED = 24  # characters (CJK count twice) copied before a proposal can be a restatement
_LIST_MARK = re.compile(r"^\s*(?:[-*•·]+|\d+[.)、:]|[（(]?\d+[)）])\s*")
_QUOTES = "\"'“”‘’「」«»"


@dataclass(frozen=True)
class Dropped:
    text: str
    why: str


@dataclass(frozen=True)
class Suggestion:
    """Proposed phrasings of one entry in one language, and the ones kefu dropped (with why)."""

    entry_id: str
    language: str
    source_language: str  # the variant the model read (another one when the entry has no text in `language`)
    source_question: str
    phrasings: tuple[str, ...]
    dropped: tuple[Dropped, ...]


def suggestion_messages(entry: FaqEntry, language: str, count: int) -> list[ChatMessage]:
    """The prompt: the entry's question and what to write. The answer stays out: a small model given
    it rewrites the answer instead of asking the question (measured with Qwen2.5 1.5B in Chinese)."""
    source = entry.variant(language)
    name = LANGUAGE_NAMES.get(language, language)
    system = ("You help an online shop's customer service. You write the messages real shoppers send in a "
              "chat: short (under 12 words), informal, sometimes with a typo or without punctuation. For "
              "\"How long does shipping take?\" such messages are: when will my order arrive / delivery "
              "time? / hw long does shipping take / how many days until it gets here. You reply with the "
              "messages only, one per line, with no numbering and no other text.")
    user = (f"FAQ question: {source.questions[0]}\n\n"
            f"Write {count} different short chat messages in {name} from shoppers asking this question, "
            f"one per line. Each one worded differently; do not add details the question does not have.")
    return [ChatMessage("system", system), ChatMessage("user", user)]


def parse_phrasings(text: str) -> list[str]:
    """The model's lines → clean phrasings (list marks, quotes and blank lines removed)."""
    phrasings = []
    for line in text.splitlines():
        for piece in line.split(" / "):  # "a / b / c": the system prompt's own example format
            cleaned = _LIST_MARK.sub("", piece).strip().strip(_QUOTES).strip()
            if cleaned:
                phrasings.append(cleaned)
    return phrasings


class Suggester:
    """Asks the model for each entry and language, and keeps what passes kefu's checks."""

    def __init__(self, generator: GenerationBackend, sampling: Sampling, *,
                 detect_language: Callable[[str], Awaitable[str]],
                 search: Callable[[str, str], Awaitable[list[Hit]]],
                 answer_threshold: float, deadline_seconds: float):
        self._generator = generator
        self._sampling = sampling
        self._detect_language = detect_language
        self._search = search
        self._answer_threshold = answer_threshold
        self._deadline_seconds = deadline_seconds

    async def suggest(self, faq: FaqBase, languages: Sequence[str], count: int,
                      only: Sequence[str] = ()) -> list[Suggestion]:
        entries = [entry for entry in faq.entries if not only or entry.id in only]
        suggestions = []
        for number, entry in enumerate(entries, start=1):
            for language in languages:
                suggestions.append(await self._one(entry, language, count))
            log.info("faq_suggest.progress %d/%d entries", number, len(entries))
        return suggestions

    async def _one(self, entry: FaqEntry, language: str, count: int) -> Suggestion:
        source = entry.variant(language)
        messages = suggestion_messages(entry, language, count)
        try:
            generation = await self._generator.generate(messages, self._sampling,
                                                        time.monotonic() + self._deadline_seconds)
            proposed = parse_phrasings(generation.text)
        except GenerationError as exc:
            log.warning("faq_suggest.no_answer entry=%s language=%s reason=%s", entry.id, language, exc.reason)
            proposed = []
        known = {text.casefold() for _, text in entry.all_questions()}
        kept: list[str] = []
        dropped: list[Dropped] = []
        for text in proposed:
            why = await self._problem(entry, language, text, known)
            if why:
                dropped.append(Dropped(text, why))
            else:
                known.add(text.casefold())
                kept.append(text)
        return Suggestion(entry.id, language, source.language, source.questions[0], tuple(kept[:count]),
                          tuple(dropped))

    async def _problem(self, entry: FaqEntry, language: str, text: str, known: set[str]) -> str | None:
        """Why a proposed phrasing is not worth a merchant's review, or None."""
        if text.casefold() in known:
            return "already a phrasing of this entry, or proposed twice"
        close = next((other for other in known if SequenceMatcher(None, text.casefold(), other).ratio() >= NEAR_COPY),
                     None)
        if close is not None:
            return f"nearly the same as \u201c{close}\u201d"
        if any(_restates(text, variant.answer) for variant in entry.variants.values()):
            return "restates the answer instead of asking"
        if len(text) > MAX_PHRASING_CHARS:
            return f"longer than {MAX_PHRASING_CHARS} characters"
        detected = await self._detect_language(text)
        if detected != language:
            return f"written in {detected}, not {language}"
        hits = await self._search(text, language)
        if hits and hits[0].entry.id != entry.id and hits[0].score >= self._answer_threshold:
            return f"FAQ '{hits[0].entry.id}' already answers it (confidence {hits[0].score:.2f})"
        return None


def suggestions_yaml(suggestions: Sequence[Suggestion], *, model: str, faq_dir: Path,
                     today: datetime.date | None = None) -> str:
    """The reviewable file: `extends` items with `reviewed: false`, the dropped ones as comments."""
    day = (today or datetime.date.today()).isoformat()
    lines = [
        f"# Phrasings proposed by `kefu faq suggest` ({model}, {day}) for the FAQ in {faq_dir}.",
        "# Nothing here is used yet. Read each item: delete or fix the phrasings that are wrong or that",
        "# the answer does not answer, then set `reviewed: true`. Put the file in the FAQ folder (any",
        "# name ending in .yaml); `kefu faq check` counts what still awaits review.",
        "",
    ]
    for suggestion in suggestions:
        if not suggestion.phrasings and not suggestion.dropped:
            continue
        origin = ("" if suggestion.source_language == suggestion.language
                  else f", translated from {suggestion.source_language}")
        lines.append(f"# {suggestion.entry_id} ({suggestion.language}{origin}): "
                     f"{_one_line(suggestion.source_question)}")
        for dropped in suggestion.dropped:
            lines.append(f"#   dropped: {_one_line(dropped.text)} ({dropped.why})")
        if not suggestion.phrasings:
            lines.append("")
            continue
        item = [{"extends": suggestion.entry_id, "lang": suggestion.language, "reviewed": False,
                 "alternatives": list(suggestion.phrasings)}]
        lines.append(yaml.safe_dump(item, allow_unicode=True, sort_keys=False, width=1000).rstrip())
        lines.append("")
    return "\n".join(lines) + "\n"


def _restates(text: str, answer: str) -> bool:
    """Most of `text` copied from the answer in runs of 4+ characters, and a clause's worth of it: "delete my
    account" shares its words with the deletion entry's answer and is still a fine question."""
    matcher = SequenceMatcher(None, text.casefold(), answer.casefold(), autojunk=False)
    copied = [text[b.a:b.a + b.size] for b in matcher.get_matching_blocks() if b.size >= 4]
    joined = "".join(copied)
    weight = len(joined) + dense_characters(joined)  # a Chinese character counts as two letters
    return weight >= MIN_COPIED and sum(map(len, copied)) >= ANSWER_COPY * len(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- the command ---------------------------------------------------------------

DEFAULT_COUNT = 5


def add_suggest_parser(faq_commands: Any, common: argparse.ArgumentParser, responders: Sequence[str]) -> None:
    command = faq_commands.add_parser(
        "suggest", parents=[common], help="propose more phrasings of each question with the LLM, for review",
        description="The configured LLM (or --responder/--model) proposes other ways shoppers ask each FAQ "
                    "question, in every enabled language; kefu drops those in another language, copies and "
                    "near-copies, restatements of the answer and questions another entry already answers, and "
                    "writes the rest to a YAML file marked "
                    "'reviewed: false'. Review it, set 'reviewed: true' and put it in the FAQ folder.")
    command.add_argument("--output", "-o", type=Path, metavar="FILE",
                         help="where to write the proposals (default: faq-suggestions.yaml next to the config)")
    command.add_argument("--count", type=int, default=DEFAULT_COUNT, metavar="N",
                         help=f"phrasings per entry and language (default {DEFAULT_COUNT})")
    command.add_argument("--languages", metavar="xx,yy", help="languages to write in (default: shop.languages)")
    command.add_argument("--only", metavar="ID,ID", help="only these FAQ entries")
    command.add_argument("--responder", choices=[r for r in responders if r != "extractive"],
                         help="the model's backend (default: [responder] backend in the config)")
    command.add_argument("--model", help="with --responder: the model (transformers: hub id or folder; "
                                         "openai: model name; llama-cpp: .gguf file)")


async def suggest_command(config: Config, args: argparse.Namespace) -> int:
    """Blocking parts run off the loop; prints a summary, writes the review file."""
    if config.responder.backend == "extractive":
        raise KefuError("kefu faq suggest needs a language model: give --responder and --model "
                        "(e.g. --responder llama-cpp --model qwen2.5-1.5b-instruct-q4.gguf), or set "
                        f"[responder] backend in {config.path}")
    if args.count < 1:
        raise KefuError("--count must be at least 1")
    languages = _codes(args.languages) or list(config.shop.languages)
    search = await run_blocking(open_search, config, await run_blocking(load_faq, config),
                                await run_blocking(load_encoders, config))
    generator = build_generator(config.responder)
    assert generator is not None, "a responder other than extractive has a generator"
    try:
        only = _codes(args.only)
        unknown = [entry_id for entry_id in only if entry_id not in search.faq.by_id]
        if unknown:
            raise KefuError(f"--only names no FAQ entry: {', '.join(unknown)}")
        detector = await run_blocking(LanguageDetector.from_config, config)

        async def detect(text: str) -> str:
            return (await run_blocking(detector.detect, text)).language

        async def ask(text: str, language: str) -> list[Hit]:
            return await search.search(text, language=language, limit=2)

        await generator.start()
        try:
            sampling = Sampling(max_new_tokens=max(config.responder.max_new_tokens, 40 * args.count),
                                temperature=max(config.responder.temperature, SUGGEST_TEMPERATURE),
                                top_p=config.responder.top_p)
            suggester = Suggester(generator, sampling, detect_language=detect, search=ask,
                                  answer_threshold=config.retrieval.answer_threshold,
                                  deadline_seconds=max(SUGGEST_DEADLINE_SECONDS, config.responder.deadline_seconds))
            suggestions = await suggester.suggest(search.faq, languages, args.count, only)
        finally:
            await generator.stop()
    finally:
        await run_blocking(search.close)
    output = args.output or config.path.parent / "faq-suggestions.yaml"
    text = suggestions_yaml(suggestions, model=_model_name(config), faq_dir=config.knowledge.faq_dir)
    await run_blocking(output.write_text, text, "utf-8")
    kept = sum(len(s.phrasings) for s in suggestions)
    dropped = sum(len(s.dropped) for s in suggestions)
    entries = len({s.entry_id for s in suggestions if s.phrasings})
    print(f"{kept} phrasings proposed for {entries} entries in {', '.join(languages)} ({dropped} dropped, "
          f"each with why in the file) -> {output}")
    print("Review them, set 'reviewed: true', and put the file in the FAQ folder; until then nothing is used.")
    return 0


SUGGEST_DEADLINE_SECONDS = 120.0  # per entry and language: a local model on 2 cores writes ~200 tokens


def _codes(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _model_name(config: Config) -> str:
    responder = config.responder
    model = {"openai": responder.openai.model, "transformers": responder.transformers.model,
             "llama-cpp": str(responder.llama_cpp.model_path)}.get(responder.backend, "")
    return f"{responder.backend} {Path(model).name if responder.backend == 'llama-cpp' else model}".strip()
