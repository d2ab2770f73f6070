"""Which language the shopper writes in, restricted to the languages the shop enabled.

Short chat messages carry little evidence, so the text's guess is combined with
priors: the writing system (Han, Kana, Hangul… decide at once), the language the
conversation used so far, and the channel's hint. A weak guess never flips a
conversation's language.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

log = logging.getLogger(__name__)

# Writing systems that (among common shop languages) identify the language by themselves.
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # kana is Japanese even when mixed with Han
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
)
MIN_ENABLED_MASS = 0.3  # below this the text looks like none of the enabled languages
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    confidence: float
    reason: str


class LanguageDetector:
    """langdetect with a fixed seed (deterministic), its own profiles (no global state)."""

    def __init__(self, *, enabled: tuple[str, ...], default: str, min_confidence: float):
        self.enabled = enabled
        self.default = default
        self.min_confidence = min_confidence
        self._factory = DetectorFactory()
        self._factory.load_profile(PROFILES_DIRECTORY)
        self._factory.set_seed(0)
        self._lock = threading.Lock()  # langdetect's detectors share the factory's random state

    def _text_probabilities(self, text: str) -> dict[str, float]:
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
            if code in self.enabled:
                probabilities[code] = probabilities.get(code, 0.0) + item.prob
        return probabilities

    def detect(self, text: str, *, conversation_language: str | None = None, hint: str | None = None) -> LanguageGuess:
        """Blocking (fast); decide the reply language for one message."""
        if len(self.enabled) == 1:
            return LanguageGuess(self.default, 1.0, "only one language is enabled")
        for code, pattern in _SCRIPTS:
            if pattern.search(text):
                if code in self.enabled:
                    return LanguageGuess(code, 0.99, f"written in the {code} script")
                if code == "ja":
                    break  # Japanese kanji are Han too: never call Japanese text Chinese

        probabilities = self._text_probabilities(text) if len(_LETTERS.findall(text)) >= 3 else {}
        enabled_mass = sum(probabilities.values())
        if enabled_mass >= MIN_ENABLED_MASS:
            # Share among the enabled languages: "shipping" scoring as Tagalog must not hide English.
            best = max(probabilities, key=probabilities.__getitem__)
            share = probabilities[best] / enabled_mass
            if share >= self.min_confidence:
                return LanguageGuess(best, round(share, 3), "detected from the text")
        fallback_reason = "text too short or ambiguous"
        if conversation_language in self.enabled:
            return LanguageGuess(conversation_language, 0.5, f"{fallback_reason}; kept the conversation's language")
        if hint:
            hinted = hint.lower().replace("_", "-").split("-")[0]
            if hinted in self.enabled:
                return LanguageGuess(hinted, 0.5, f"{fallback_reason}; used the channel's language hint")
        return LanguageGuess(self.default, 0.3, f"{fallback_reason}; used the shop's default language")
