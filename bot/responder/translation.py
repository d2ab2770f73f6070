"""FAQ answers translated for shoppers who write a language the shop did not enable.

With `[shop] reply_in = "translate"` and a model configured, a confident FAQ answer in the
shop's default language is translated into the shopper's language, and the translation is
used only if it provably says what the answer says: it is in the shopper's language, keeps
every number, link, email and code of the answer and adds none, every one of its sentences
is close to a sentence of the answer and every sentence of the answer to one of it (a
multilingual encoder measures both, with the same negation). Otherwise the shopper gets the
original with the line saying so, and the trace says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.concurrency import run_blocking
from bot.responder.grounding import SemanticGrounder, unsupported_facts
from bot.llm import GenerationBackend, GenerationError, Sampling
from bot.responder.review import PLACEHOLDER, degenerate
from bot.responder.pii import mask_pii, restore
from bot.responder.prompt import LANGUAGE_NAMES, ChatMessage

log = logging.getLogger(__name__)

TOKENS_PER_CHARACTER = 0.6  # room for the translation: generous for CJK, which takes more tokens per character
MIN_NEW_TOKENS = 64


class TranslationRefused(GenerationError):
    """A translation the checks refused."""


@dataclass(frozen=True)
class Translation:
    text: str
    language: str
    latency_ms: float


def translation_messages(shop: str, text: str, source: str, target: str) -> list[ChatMessage]:
    source_name, target_name = LANGUAGE_NAMES.get(source, source), LANGUAGE_NAMES.get(target, target)
    system = (f"You translate {shop}'s customer service answers from {source_name} into {target_name}. "
              f"Translate the whole answer and nothing else: add nothing, leave nothing out. Keep every number, "
              f"time, price, email address, link, order number, product name and placeholder such as "
              f"[EMAIL_1] exactly as written. Reply with the {target_name} translation only.")
    return [ChatMessage("system", system), ChatMessage("user", text)]


class AnswerTranslator:
    """Translates an FAQ answer with the configured model and checks the result against it."""

    def __init__(self, *, generator: GenerationBackend, grounder: SemanticGrounder,
                 detect_language: Callable[[str], tuple[str, float]], shop: str, deadline_seconds: float):
        self._generator = generator
        self._grounder = grounder
        self._detect = detect_language
        self._shop = shop
        self._deadline_seconds = deadline_seconds

    async def translate(self, text: str, source: str, target: str) -> Translation:
        """The checked translation; GenerationError (TranslationRefused for a refused one) says why not."""
        started = time.perf_counter()
        masked = mask_pii(text)  # as in the responder's prompt: contact details travel as placeholders
        sampling = Sampling(max_new_tokens=max(MIN_NEW_TOKENS, int(TOKENS_PER_CHARACTER * len(text))),
                            temperature=0.0, top_p=1.0)
        generation = await self._generator.generate(translation_messages(self._shop, masked.text, source, target),
                                                    sampling, time.monotonic() + self._deadline_seconds)
        translated = generation.text.strip()
        await self._check(translated, masked.text, target)
        return Translation(restore(translated, masked.values), target, round((time.perf_counter() - started) * 1000, 1))

    async def _check(self, translated: str, original: str, target: str) -> None:
        if not translated:
            raise TranslationRefused("the model returned nothing")
        problem = degenerate(translated)
        if problem:
            raise TranslationRefused(problem)
        found, _ = await run_blocking(self._detect, translated)
        if found != target:
            raise TranslationRefused(f"the translation is in '{found}', not '{target}'")
        if sorted(PLACEHOLDER.findall(translated)) != sorted(PLACEHOLDER.findall(original)):
            raise TranslationRefused("the translation changes the answer's contact details")
        added = unsupported_facts(translated, [original])
        if added:
            raise TranslationRefused(f"the translation adds {', '.join(added[:3])}")
        lost = unsupported_facts(original, [translated])
        if lost:
            raise TranslationRefused(f"the translation leaves out {', '.join(lost[:3])}")
        unsaid = [claim for claim in await run_blocking(self._grounder.check, translated, [original]) if not claim.ok]
        if unsaid:
            raise TranslationRefused(f"the translation says something the answer does not say: "
                                     f"'{unsaid[0].sentence[:80]}' ({unsaid[0].reason})")
        dropped = [claim for claim in await run_blocking(self._grounder.check, original, [translated]) if not claim.ok]
        if dropped:
            raise TranslationRefused(f"the translation drops a sentence of the answer: '{dropped[0].sentence[:80]}' "
                                     f"({dropped[0].reason})")
