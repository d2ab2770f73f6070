"""Is a generated draft backed by what the bot knows? Two layers, both must pass.

Literal: every number, price, duration, percentage, URL, email and phone number in a draft
must appear in the retrieved FAQ text or in the shopper's own message; a draft that
names any other is refused (and the caller falls back to the extractive answer).
A 1.5B model rarely invents numbers, but one invented refund window is one too many.
Semantic: every sentence that claims something must be close to a sentence of the
context and agree with it on negation (`SemanticGrounder`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.pii import EMAIL, PHONE

URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>()\"'，。]+")
PERCENT = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)\s?(?:%|％|percent\b|prozent\b|pour ?cent\b|por ?ciento\b)", re.I)
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
LIST_MARKER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s")


def normalize_number(raw: str) -> str:
    """"1,000" and "1000" are one fact; so are "4,95" and "4.95" (a decimal comma)."""
    if re.fullmatch(r"\d+,\d{1,2}", raw):
        return raw.replace(",", ".")
    cleaned = raw.replace(",", "")
    if re.fullmatch(r"\d+\.0+", cleaned):
        cleaned = cleaned.split(".")[0]
    return cleaned.rstrip(".")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


@dataclass(frozen=True)
class Facts:
    numbers: frozenset[str]
    urls: frozenset[str]
    emails: frozenset[str]
    phones: frozenset[str]  # digits only: "+49 170 1234567" and "0049-170-1234567" differ, "(555) 123-4567" does not


def literal_facts(text: str) -> Facts:
    urls = {match.group(0).rstrip(".,;:!?").lower() for match in URL.finditer(text)}
    emails = {match.group(0).lower() for match in EMAIL.finditer(text)}
    phones = {_digits(match.group(0)) for match in PHONE.finditer(text)}
    rest = PHONE.sub(" ", URL.sub(" ", EMAIL.sub(" ", text)))
    rest = LIST_MARKER.sub(" ", rest)
    # "30%" is its own fact: "30 days" in the FAQ does not back "30% off".
    numbers = {normalize_number(match.group(1)) + "%" for match in PERCENT.finditer(rest)}
    rest = PERCENT.sub(" ", rest)
    numbers |= {normalize_number(match.group(0)) for match in NUMBER.finditer(rest)}
    return Facts(frozenset(numbers), frozenset(urls), frozenset(emails), frozenset(phones))


def unsupported_facts(draft: str, sources: Iterable[str]) -> list[str]:
    """The draft's literal facts that no source mentions, as written in reasons ("number 45", "url …")."""
    known_text = "\n".join(sources)
    known = literal_facts(known_text)
    found = literal_facts(draft)
    problems = [f"number {n}" for n in sorted(found.numbers - known.numbers)]
    problems += [f"url {u}" for u in sorted(found.urls) if not any(u.rstrip("/") in k for k in known.urls)]
    problems += [f"email {e}" for e in sorted(found.emails - known.emails)]
    problems += [f"phone {p}" for p in sorted(found.phones - known.phones)]
    return problems


# -- the semantic layer -------------------------------------------------------------

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*|\n+")
NEGATIONS = re.compile(
    r"(?i)(?<!\w)(?:not|no|never|none|cannot|can't|don't|doesn't|didn't|won't|isn't|aren't|wasn't|without|"
    r"nicht|kein\w*|nie|ne|pas|jamais|sin|nunca|non|não|niet|geen|нет|не)(?!\w)|n't|不|没|無|无|未|别|非"
)
PLEASANTRY = re.compile(
    r"(?i)^(?:hi|hello|hey|thanks?|thank you|you're welcome|sorry|i'm sorry|we're sorry|i understand|"
    r"happy to help|glad to help|let me know|is there anything else|have a (?:nice|great) day|best regards|"
    r"您好|你好|谢谢|感谢|抱歉|不好意思|很抱歉|理解|还有什么|祝您)"
)


def sentences(text: str) -> list[str]:
    return [part.strip(" -•*\t") for part in SENTENCE_END.split(text) if part and part.strip(" -•*\t")]


def is_pleasantry(sentence: str) -> bool:
    """Greetings, thanks, apologies and questions back to the shopper claim nothing about the shop."""
    short = len(sentence) <= 80
    return short and (bool(PLEASANTRY.match(sentence)) or sentence.rstrip().endswith(("?", "？")))


def negated(sentence: str) -> bool:
    return len(NEGATIONS.findall(sentence)) % 2 == 1


@dataclass(frozen=True)
class Claim:
    sentence: str
    support: str  # the closest context sentence
    similarity: float
    ok: bool
    reason: str = ""


class SemanticGrounder:
    """Every claim of a draft must be close to a sentence of the context, with the same polarity.

    Similarity uses a multilingual sentence encoder, so a translated FAQ answer is checked
    against the original. A claim the context does not support, or one that says "not" where
    its closest context sentence does not ("We do not offer refunds" against "Refunds within
    30 days"), fails the draft.
    """

    def __init__(self, encode: Callable[[Sequence[str]], Any], min_similarity: float):
        self._encode = encode
        self._min = min_similarity

    def check(self, draft: str, context: Sequence[str]) -> list[Claim]:
        """Blocking (encodes); the claims that are not pleasantries, each with its verdict."""
        claims = [s for s in sentences(draft) if not is_pleasantry(s)]
        support = [s for text in context for s in sentences(text)]
        if not claims:
            return []
        if not support:
            return [Claim(c, "", 0.0, False, "nothing to support it") for c in claims]
        vectors = self._encode([*claims, *support])
        similarity = vectors[: len(claims)] @ vectors[len(claims):].T
        verdicts = []
        for index, claim in enumerate(claims):
            best = int(similarity[index].argmax())
            score = float(similarity[index][best])
            closest = support[best]
            if score < self._min:
                verdicts.append(Claim(claim, closest, score, False, f"unsupported (similarity {score:.2f})"))
            elif negated(claim) != negated(closest):
                verdicts.append(Claim(claim, closest, score, False, "contradicts the FAQ (negation differs)"))
            else:
                verdicts.append(Claim(claim, closest, score, True))
        return verdicts
