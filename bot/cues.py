"""Escalation cues in a shopper's message: shouting, swearing, threats, asking for a person.

Word lists per language live in `bot/lexicon/cues.toml`. A phrase matches as a whole
word or phrase in scripts written with spaces ("sue" never matches "issue"), as a
substring in Chinese, Japanese and Thai, and a trailing `*` matches any word that
starts with it ("fuck*" matches "fucking").
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from bot.scripts import SPACELESS

SHORT_REQUEST_MAX_WORDS = 4  # "human!" is a request; "human hair wig in stock?" is not
_LETTER = re.compile(r"[^\W\d_]")
_REPEATED_PUNCTUATION = re.compile(r"[!?！？]{3,}|[!?！？]{2,}.*[!?！？]{2,}|[?？][!！]|[!！][?？]")


class PhraseMatcher:
    """Finds the first of a list of phrases in a text, by the rules in the module docstring."""

    def __init__(self, phrases: Iterable[str]):
        self._phrases = tuple(dict.fromkeys(p.strip().casefold() for p in phrases if p.strip()))
        worded = [p for p in self._phrases if not SPACELESS.search(p)]
        self._substrings = tuple(p for p in self._phrases if SPACELESS.search(p))
        parts = [re.escape(p[:-1]) + r"\w*" if p.endswith("*") else re.escape(p) for p in worded]
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)") if parts else None

    def find(self, text: str) -> str | None:
        folded = text.casefold()
        for phrase in self._substrings:
            if phrase in folded:
                return phrase
        if self._pattern is not None:
            found = self._pattern.search(folded)
            if found:
                return found.group(0)
        return None

    def __bool__(self) -> bool:
        return bool(self._phrases)


class VerbObjectMatcher:
    """A verb followed within three words by an object: "need help *talking* with an *operator*"."""

    def __init__(self, verbs: Iterable[str], objects: Iterable[str]):
        verb = "|".join(re.escape(v[:-1]) + r"\w*" if v.endswith("*") else re.escape(v) for v in verbs)
        thing = "|".join(re.escape(o) for o in sorted(objects, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<!\w)(?:{verb})(?:\W+\w+){{0,3}}?\W+(?:{thing})(?!\w)")

    def find(self, text: str) -> str | None:
        found = self._pattern.search(text.casefold())
        return found.group(0) if found else None


@dataclass(frozen=True)
class CueReport:
    """Cues found in one message, strongest first in `names`."""

    shouting: bool = False  # mostly upper case
    repeated_punctuation: bool = False  # "???", "!!", "?!"
    profanity: str | None = None
    dispute: str | None = None  # threatens a chargeback, a lawsuit, a report, a bad review
    human_request: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        found = [("dispute_threat", self.dispute), ("profanity", self.profanity),
                 ("shouting", self.shouting), ("repeated_punctuation", self.repeated_punctuation),
                 ("asks_for_human", self.human_request)]
        return tuple(name for name, present in found if present)


class CueDetector:
    """Looks for cues in the message's language and English (shoppers mix them), and for
    requests for a person in every enabled language."""

    def __init__(self, languages: Iterable[str]):
        self._languages = tuple(dict.fromkeys(languages))
        lexicon = tomllib.loads(resources.files("bot.lexicon").joinpath("cues.toml").read_text(encoding="utf-8"))
        self._lists = {
            language: {kind: PhraseMatcher(words) for kind, words in table.items()}
            for language, table in lexicon.items()
        }
        every = [lexicon.get(lang, {}) for lang in self._languages]
        self._human = PhraseMatcher(p for table in every for p in table.get("human_request", []))
        self._human_short = PhraseMatcher(p for table in every for p in table.get("human_request_short", []))
        self._human_verb_object = [VerbObjectMatcher(table["human_verbs"], table["human_people"])
                                   for table in every if table.get("human_verbs") and table.get("human_people")]

    def _find(self, kind: str, text: str, language: str | None) -> str | None:
        for lang in dict.fromkeys([language or "en", "en"]):
            matcher = self._lists.get(lang, {}).get(kind)
            if matcher:
                found = matcher.find(text)
                if found:
                    return found
        return None

    def human_request(self, text: str) -> str | None:
        found = self._human.find(text)
        if found:
            return found
        for matcher in self._human_verb_object:
            found = matcher.find(text)
            if found:
                return found
        if word_count(text) <= SHORT_REQUEST_MAX_WORDS:
            return self._human_short.find(text)
        return None

    def detect(self, text: str, language: str | None) -> CueReport:
        return CueReport(
            shouting=is_shouting(text),
            repeated_punctuation=bool(_REPEATED_PUNCTUATION.search(text)),
            profanity=self._find("profanity", text, language),
            dispute=self._find("dispute", text, language),
            human_request=self.human_request(text),
        )


def word_count(text: str) -> int:
    spaceless = len(SPACELESS.findall(text))
    return len(text.split()) + spaceless // 2


def is_shouting(text: str) -> bool:
    """Mostly capitals over enough letters to mean it ("WHERE IS MY ORDER", not "OK" or "DHL")."""
    every_letter = [ch for ch in text if _LETTER.match(ch)]
    letters = [ch for ch in every_letter if ch.lower() != ch.upper()]
    if len(letters) < 8 or len(letters) < 0.5 * len(every_letter):  # "DELL 的 USB 口" is a brand, not a shout
        return False
    upper = sum(1 for ch in letters if ch.isupper())
    shouted_words = sum(1 for word in re.findall(r"[^\W\d_]{3,}", text) if word.isupper())
    return upper / len(letters) >= 0.7 and shouted_words >= 2
