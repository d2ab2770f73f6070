"""Which language the shopper writes in, also when the shop did not enable it.

Short chat messages carry little evidence, so the text's guess is combined with
priors: the writing system (Hangul, Kana, Thai… decide at once; Cyrillic or
Arabic narrow the choice), the language the conversation used so far, and the
channel's hint. A weak guess never flips a conversation's language.

A language outside the shop's enabled ones is recognised when the evidence is
clear: its own script, or a text the full model of every language kefu has texts
for ranks first, at least FOREIGN_MIN_PROBABILITY and FOREIGN_LEAD times the best
enabled language. Short or unclear text stays among the enabled languages, where
most shoppers write. What the reply is written in is a
separate, later choice (`reply_language`): the shop's FAQ only exists in its
enabled languages.

Two text models: `lingua` (the default: on short messages it beats langdetect)
and `langdetect` (seeded, deterministic).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from bot.config import Config

log = logging.getLogger(__name__)

BACKENDS = ("lingua", "langdetect")
MIN_ENABLED_MASS = 0.3  # below this the text looks like none of the enabled languages
MIN_LETTERS = 3  # fewer letters than this carry no evidence ("ok" still has 2)
# A language the shop did not enable needs this many letters and, in the full model of every known
# language, the first place with at least FOREIGN_MIN_PROBABILITY and FOREIGN_LEAD times the best enabled
# language's. Measured with only en+zh enabled (dev data; .venv/bin/python bench/language_shops.py):
# bench/data/shoppers.csv 0.962 -> 0.983, tatoeba_langid 0.943 -> 0.979 of 2,500 sentences, no English
# message taken for another language either way. The earlier gate (a small low-accuracy model's vote,
# confirmed at 0.9 against the enabled languages) rejected "vous avez une adresse mail pour vous
# contacter ?" (French 0.84 against English); a lead of 1 instead of 2 took "It is impossible." for
# French; a floor of 0.2 instead of 0.35 (tatoeba 0.983) took keyboard mash ("xqzv plorb") for German.
FOREIGN_MIN_PROBABILITY = 0.35
FOREIGN_LEAD = 2.0
FOREIGN_MIN_LETTERS = 6
# A foreign conversation's language gives way to an enabled one only when the text is clearly in it.
CLEARLY_ENABLED_PROBABILITY = 0.9
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)

# Writing systems and the languages written in them (among those a shop may enable).
_SCRIPTS: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    ("kana", re.compile(r"[\u3040-\u30ff]"), ("ja",)),
    ("hangul", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"), ("ko",)),
    ("han", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]"), ("zh", "ja")),
    ("thai", re.compile(r"[\u0e00-\u0e7f]"), ("th",)),
    ("hebrew", re.compile(r"[\u0590-\u05ff]"), ("he", "yi")),
    ("greek", re.compile(r"[\u0370-\u03ff]"), ("el",)),
    ("arabic", re.compile(r"[\u0600-\u06ff\u0750-\u077f]"), ("ar", "fa", "ur")),
    ("devanagari", re.compile(r"[\u0900-\u097f]"), ("hi", "mr", "ne")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]"), ("ru", "uk", "bg", "sr", "kk", "mk", "be")),
    ("georgian", re.compile(r"[\u10a0-\u10ff]"), ("ka",)),
    ("armenian", re.compile(r"[\u0530-\u058f]"), ("hy",)),
)


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    confidence: float
    reason: str


class TextModel(Protocol):
    name: str

    def probabilities(self, text: str, candidates: tuple[str, ...]) -> dict[str, float]:
        """Probability per candidate language (may leave some out)."""

    def preload(self) -> None:
        """Blocking: load what the first text would otherwise load (bot/warmup.py calls it)."""


def known_languages() -> tuple[str, ...]:
    """The languages kefu has built-in texts for (bot/locales): those it can recognise and greet."""
    return tuple(sorted(item.name.removesuffix(".toml") for item in resources.files("bot.locales").iterdir()
                        if item.name.endswith(".toml")))


def reply_language(detected: str, enabled: tuple[str, ...], default: str) -> str:
    """The language a reply from the FAQ is written in: the shopper's when the shop enabled it, else the default."""
    return detected if detected in enabled else default


class LinguaModel:
    """lingua-language-detector for the given languages it knows (one detector per set of candidates, built on first use)."""

    name = "lingua"

    def __init__(self, enabled: tuple[str, ...]):
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        languages = []
        for code in enabled:
            iso = getattr(IsoCode639_1, code.upper(), None)
            if iso is None:
                log.warning("language.lingua_unsupported language=%s (only the script and hints decide it)", code)
                continue
            languages.append(Language.from_iso_code_639_1(iso))
        self._detectors = {}
        self._builder = LanguageDetectorBuilder
        self._languages = {lang.iso_code_639_1.name.lower(): lang for lang in languages}
        self._lock = threading.Lock()

    def _detector(self, candidates: tuple[str, ...]):
        known = tuple(sorted(c for c in candidates if c in self._languages))
        if len(known) < 2:
            return known, None
        with self._lock:
            if known not in self._detectors:
                builder = self._builder.from_languages(*(self._languages[c] for c in known))
                self._detectors[known] = builder.build()
            return known, self._detectors[known]

    def preload(self) -> None:
        """Blocking: load every language's models, one language per native call.

        lingua loads the models a detector needs on its first text, in one call that holds the
        GIL: for 17 languages 2.4 s in which a just-started server's event loop could not answer
        (measured). The models are shared by all detectors of the process, so loading them
        through a two-language detector at a time gives the GIL back after each (<= 0.4 s here).
        """
        codes = list(self._languages)
        for code in codes if len(codes) >= 2 else []:
            anchor = codes[0] if code != codes[0] else codes[1]
            self._builder.from_languages(self._languages[code], self._languages[anchor]) \
                .with_preloaded_language_models().build()

    def probabilities(self, text: str, candidates: tuple[str, ...]) -> dict[str, float]:
        known, detector = self._detector(candidates)
        if detector is None:
            return {known[0]: 1.0} if known else {}
        return {value.language.iso_code_639_1.name.lower(): value.value
                for value in detector.compute_language_confidence_values(text)}


class LangdetectModel:
    """langdetect with a fixed seed (deterministic) and its own profiles (no global state)."""

    name = "langdetect"

    def __init__(self, enabled: tuple[str, ...]):
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

        self._factory = DetectorFactory()
        self._factory.load_profile(PROFILES_DIRECTORY)
        self._factory.set_seed(0)
        self._lock = threading.Lock()  # detectors share the factory's random state

    def preload(self) -> None:
        pass  # the profiles were loaded with the factory

    def probabilities(self, text: str, candidates: tuple[str, ...]) -> dict[str, float]:
        from langdetect.lang_detect_exception import LangDetectException

        with self._lock:
            detector = self._factory.create()
            detector.append(text)
            try:
                found = detector.get_probabilities()
            except LangDetectException:
                return {}
        probabilities: dict[str, float] = {}
        for item in found:
            code = item.lang.split("-")[0]  # zh-cn / zh-tw → zh
            if code in candidates:
                probabilities[code] = probabilities.get(code, 0.0) + item.prob
        return probabilities


def build_text_model(backend: str, enabled: tuple[str, ...]) -> TextModel:
    if backend == "lingua":
        return LinguaModel(enabled)
    if backend == "langdetect":
        return LangdetectModel(enabled)
    raise ValueError(f"unknown language backend '{backend}'")


def dominant_script(text: str) -> tuple[str, tuple[str, ...]] | None:
    """The non-Latin script most letters are written in, with its languages (kana wins over Han)."""
    counts: Counter[str] = Counter()
    languages = {}
    for name, pattern, codes in _SCRIPTS:
        found = len(pattern.findall(text))
        if found:
            counts[name] = found
            languages[name] = codes
    if not counts:
        return None
    if "kana" in counts:  # Japanese mixes kanji (Han) with kana
        return "kana", languages["kana"]
    name = counts.most_common(1)[0][0]
    return name, languages[name]


class LanguageDetector:
    @classmethod
    def from_config(cls, config: Config) -> LanguageDetector:
        """The shop's configured detector (blocking: loads the language models)."""
        return cls(enabled=config.shop.languages, default=config.shop.default_language,
                   min_confidence=config.language.min_confidence, backend=config.language.backend)

    def __init__(self, *, enabled: tuple[str, ...], default: str, min_confidence: float,
                 backend: str = "lingua", use_priors: bool = True, known: tuple[str, ...] | None = None):
        self.enabled = enabled
        self.default = default
        self.min_confidence = min_confidence
        self.use_priors = use_priors
        self.known = tuple(dict.fromkeys((*enabled, *(known_languages() if known is None else known))))
        self.model = build_text_model(backend, enabled)
        # Every known language, for the languages the shop did not enable (None when it enabled them all).
        self.wide = build_text_model(backend, self.known) if set(self.known) - set(enabled) else None

    def preload(self) -> None:
        """Blocking: load the language models now rather than on the first message."""
        for model in (self.model, self.wide):
            if model is not None:
                model.preload()

    def language_of(self, text: str) -> tuple[str, float]:
        """Blocking: (language, confidence) of a text on its own, with no conversation behind it: what
        the responder's checks ask of a model's draft or translation."""
        guess = self.detect(text)
        return guess.language, guess.confidence

    def detect(self, text: str, *, conversation_language: str | None = None, hint: str | None = None) -> LanguageGuess:
        """Blocking (fast); the language the shopper wrote this message in."""
        script = dominant_script(text) if self.use_priors else None
        foreign = self._foreign(text, script)
        if foreign is not None:
            return foreign
        if (conversation_language in self.known and conversation_language not in self.enabled
                and not self._clearly_enabled(text, script)):
            # A German conversation's "danke" stays German: the enabled-only model would call it English.
            return LanguageGuess(conversation_language, 0.5, "not clearly another language; kept the "
                                 "conversation's language")
        if len(self.enabled) == 1:
            return LanguageGuess(self.default, 1.0, "only one language is enabled")
        candidates = self.enabled
        reason = "detected from the text"
        if script is not None:
            name, languages = script
            candidates = tuple(code for code in languages if code in self.enabled)
            if len(candidates) == 1:
                return LanguageGuess(candidates[0], 0.99, f"written in the {name} script")
            if not candidates:  # a script no language kefu knows uses: nothing to tell
                return self._fallback(f"written in the {name} script, which no enabled language uses",
                                      conversation_language, hint)
            reason = f"detected from the text among the {name}-script languages"
        letters = len(_LETTERS.findall(text))
        known = self._has_prior(conversation_language, hint)
        if letters >= MIN_LETTERS or (letters and not known):
            probabilities = self.model.probabilities(text, candidates)
            enabled_mass = sum(probabilities.values())
            if enabled_mass >= MIN_ENABLED_MASS:
                # Share among the candidates: "shipping" scoring as Tagalog must not hide English.
                best = max(probabilities, key=probabilities.__getitem__)
                share = round(probabilities[best] / enabled_mass, 3)
                if share >= self.min_confidence:
                    return LanguageGuess(best, share, reason)
                if not known:
                    return LanguageGuess(best, share, f"{reason} (best guess; nothing known about the conversation)")
        return self._fallback("text too short or ambiguous", conversation_language, hint)

    def _foreign(self, text: str, script: tuple[str, tuple[str, ...]] | None) -> LanguageGuess | None:
        """A language outside the enabled ones, when the evidence for it is clear; else None."""
        if not self.use_priors:
            return None
        if script is not None:
            name, languages = script
            if any(code in self.enabled for code in languages):
                return None
            own = tuple(code for code in languages if code in self.known)
            if len(own) == 1 or (own and name == "han"):  # Han without kana is Chinese (kana decides Japanese)
                return LanguageGuess(own[0], 0.99, f"written in the {name} script (a language the shop did not "
                                     "enable)")
            candidates = own
        else:
            candidates = self.known
        first = self._wide_first(text, candidates)
        if first is None or first[0] in self.enabled:
            return None
        language, probabilities = first
        best_enabled = max((probabilities.get(code, 0.0) for code in self.enabled), default=0.0)
        if probabilities[language] < max(FOREIGN_MIN_PROBABILITY, FOREIGN_LEAD * best_enabled):
            return None
        return LanguageGuess(language, round(probabilities[language], 3),
                             "detected from the text (a language the shop did not enable)")

    def _clearly_enabled(self, text: str, script: tuple[str, tuple[str, ...]] | None) -> bool:
        """The text is clearly in an enabled language: its script says so, or the full model does."""
        if script is not None:
            return any(code in self.enabled for code in script[1])
        first = self._wide_first(text, self.known)
        return first is not None and first[0] in self.enabled and first[1][first[0]] >= CLEARLY_ENABLED_PROBABILITY

    def _wide_first(self, text: str, candidates: tuple[str, ...]) -> tuple[str, dict[str, float]] | None:
        """For a text long enough: the language the model of every known language ranks first among
        `candidates` and the enabled ones, and its probabilities."""
        if self.wide is None or not candidates or len(_LETTERS.findall(text)) < FOREIGN_MIN_LETTERS:
            return None
        probabilities = self.wide.probabilities(text, tuple(dict.fromkeys((*candidates, *self.enabled))))
        if not probabilities:
            return None
        return max(probabilities, key=probabilities.__getitem__), probabilities

    def _has_prior(self, conversation_language: str | None, hint: str | None) -> bool:
        """A weak guess only gives way to something known: the conversation's language or the channel's hint."""
        return conversation_language in self.known or _hinted(hint) in self.enabled

    def _fallback(self, why: str, conversation_language: str | None, hint: str | None) -> LanguageGuess:
        if conversation_language in self.known:
            return LanguageGuess(conversation_language, 0.5, f"{why}; kept the conversation's language")
        if _hinted(hint) in self.enabled:
            return LanguageGuess(_hinted(hint), 0.5, f"{why}; used the channel's language hint")
        return LanguageGuess(self.default, 0.3, f"{why}; used the shop's default language")


def _hinted(hint: str | None) -> str | None:
    """A channel's locale ("de-DE", "pt_BR") as a language code."""
    return hint.lower().replace("_", "-").split("-")[0] if hint else None
