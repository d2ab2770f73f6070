"""Is a generated draft backed by what the bot knows? Two layers, both must pass.

Literal: every number, price, duration, percentage, URL, email and phone number in a draft
must appear in the retrieved FAQ text or in the shopper's own message; a draft that
names any other is refused (and the caller falls back to the extractive answer).
A 1.5B model rarely invents numbers, but one invented refund window is one too many.
Semantic: every sentence that claims something must be close to a sentence of the
context and agree with it on negation (`SemanticGrounder`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.responder.pii import EMAIL, PHONE
from bot.scripts import dense_characters
from knowledge.keyword import language_analyzer

URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>()\"'，。]+")
# Latin lookbehinds: in "运费4.95欧元" the number follows a CJK character, which \w would count as a letter.
PERCENT = re.compile(r"(?<![A-Za-z0-9_.])(\d+(?:[.,]\d+)?)\s?(?:%|％|percent\b|prozent\b|pour ?cent\b|por ?ciento\b)", re.I)
NUMBER = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:[.,]\d+)*")
LIST_MARKER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s")
# Order numbers, discount codes, SKUs: letters and digits in one token ("LL-123456", "WELCOME10").
# Latin-only boundaries, so a code inside Chinese text is still found.
CODE = re.compile(r"(?<![A-Za-z0-9-])(?=(?:[A-Za-z0-9-]*[A-Za-z]){2})(?=(?:[A-Za-z0-9-]*\d){2})"
                  r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9-])")


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


# Dates are one fact however they are written: "2026-12-05" (the order templates' form, which the phone
# pattern would otherwise read), "December 5, 2026", "5. Dezember 2026", "5 de diciembre", "2026年12月5日".
MONTHS = {name: number for number, names in enumerate((
    "january jan januar janvier enero gennaio januari janeiro",
    "february feb februar février fevrier febrero febbraio februari fevereiro",
    "march mar märz maerz mars marzo maart março marco",
    "april apr avril abril aprile",
    "may mai mayo maggio mei maio",
    "june jun juni juin junio giugno junho",
    "july jul juli juillet julio luglio julho",
    "august aug août aout agosto augustus",
    "september sep sept septembre septiembre settembre setembro",
    "october oct oktober octobre octubre ottobre oktober outubro",
    "november nov novembre noviembre novembro",
    "december dec dezember décembre decembre diciembre dicembre dezembro",
), start=1) for name in names.split()}
_MONTH = r"(?P<month>" + "|".join(sorted(map(re.escape, MONTHS), key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>\d{4})"
DATES = [re.compile(p, re.IGNORECASE) for p in (
    r"(?<![\d-])(?P<year>\d{4})-(?P<m>\d{2})-(?P<day>\d{2})(?![\d-])",
    r"(?P<year>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<day>\d{1,2})\s*[日号]",
    rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+{_YEAR})?(?![\d])",
    rf"(?<![\d.])(?P<day>\d{{1,2}})(?:st|nd|rd|th|er|\.|º)?\s+(?:de\s+)?{_MONTH}(?:,?\s+(?:de\s+)?{_YEAR})?\b",
)]


def dates(text: str) -> tuple[set[str], str]:
    """The dates in `text` as "YYYY-MM-DD" (or "MM-DD" without a year), and the text without them."""
    found: set[str] = set()

    def take(match: re.Match[str]) -> str:
        fields = match.groupdict()
        # IGNORECASE also matches "APRİL" or "ſep", whose lower case is no month name: left as text.
        month = int(fields["m"]) if fields.get("m") else MONTHS.get(fields["month"].lower().rstrip("."))
        if month is None:
            return match.group(0)
        day = f"{month:02d}-{int(fields['day']):02d}"
        found.add(f"{fields['year']}-{day}" if fields.get("year") else day)
        return " "

    for pattern in DATES:
        text = pattern.sub(take, text)
    return found, text


# A number with its unit of time: "every 2-3 months" does not back "every 2-3 weeks", although both numbers
# are in the FAQ. English, Chinese and Japanese units map to one name, so a translation keeps its durations
# (a text in another language has none, and is not compared).
DURATION = re.compile(
    r"(?<![A-Za-z0-9_.])(\d+(?:[.,]\d+)?(?:\s*[-–~〜至到]\s*\d+(?:[.,]\d+)?)?)\s*-?\s*"
    r"(?:(?:business|working)\s+)?(minute|hour|day|week|month|year)s?\b"
    r"|(?<![A-Za-z0-9_.])(\d+(?:\s*[-–~〜至到]\s*\d+)?)\s*(?:个)?"
    r"(分钟|分|小时|時間|工作日|営業日|天|日|周|週間|週|星期|か月|ヶ月|カ月|月|年)", re.I)
TIME_UNITS = {"分钟": "minute", "分": "minute", "小时": "hour", "時間": "hour", "工作日": "day", "営業日": "day",
              "天": "day", "日": "day", "周": "week", "週間": "week", "週": "week", "星期": "week", "か月": "month",
              "ヶ月": "month", "カ月": "month", "月": "month", "年": "year"}


def durations(text: str) -> set[str]:
    """Each number of time with its unit, a range's ends one by one ("3 day", "5 day" for "3-5 business
    days": "up to 5 days" restates it)."""
    found = set()
    for match in DURATION.finditer(text):
        amount, unit = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        name = TIME_UNITS.get(unit, unit.lower())
        found |= {f"{normalize_number(n)} {name}" for n in re.findall(r"\d+(?:[.,]\d+)?", amount)}
    return found


@dataclass(frozen=True)
class Facts:
    numbers: frozenset[str]
    urls: frozenset[str]
    emails: frozenset[str]
    phones: frozenset[str]  # digits only: "+49 170 1234567" and "0049-170-1234567" differ, "(555) 123-4567" does not
    codes: frozenset[str]  # lower case, whole: "LL-00123842" is not backed by "LL-123456" and "00123842"
    dates: frozenset[str] = frozenset()  # "2026-12-05", or "12-05" when written without the year


def literal_facts(text: str) -> Facts:
    urls = {match.group(0).rstrip(".,;:!?").lower() for match in URL.finditer(text)}
    emails = {match.group(0).lower() for match in EMAIL.finditer(text)}
    found_dates, rest = dates(URL.sub(" ", EMAIL.sub(" ", text)))
    phones = {_digits(match.group(0)) for match in PHONE.finditer(rest)}
    rest = PHONE.sub(" ", rest)
    codes = {match.group(0).lower() for match in CODE.finditer(rest)}
    rest = LIST_MARKER.sub(" ", rest)
    # "30%" is its own fact: "30 days" in the FAQ does not back "30% off".
    numbers = {normalize_number(match.group(1)) + "%" for match in PERCENT.finditer(rest)}
    rest = PERCENT.sub(" ", rest)
    numbers |= {normalize_number(match.group(0)) for match in NUMBER.finditer(rest)}
    return Facts(frozenset(numbers), frozenset(urls), frozenset(emails), frozenset(phones), frozenset(codes),
                 frozenset(found_dates))


def without_literals(text: str) -> str:
    """`text` without its order numbers, dates, links, contacts and long numbers: what is left says what
    happened, and is what a meaning comparison of two order statements should weigh (the shared order
    number otherwise makes every statement about it look alike)."""
    _, rest = dates(URL.sub(" ", EMAIL.sub(" ", text)))
    rest = CODE.sub(" ", PHONE.sub(" ", rest))
    rest = re.sub(r"(?<![A-Za-z0-9_.])\d{5,}", " ", rest)
    return re.sub(r"\s+", " ", rest).strip()


def unsupported_facts(draft: str, sources: Iterable[str]) -> list[str]:
    """The draft's literal facts that no source mentions, as written in reasons ("number 45", "url …")."""
    known_text = "\n".join(sources)
    known = literal_facts(known_text)
    found = literal_facts(draft)
    problems = [f"number {n}" for n in sorted(found.numbers - known.numbers)]
    problems += [f"url {u}" for u in sorted(found.urls) if not any(u.rstrip("/") in k for k in known.urls)]
    problems += [f"email {e}" for e in sorted(found.emails - known.emails)]
    problems += [f"phone {p}" for p in sorted(found.phones - known.phones)]
    problems += [f"code {c.upper()}" for c in sorted(found.codes - known.codes)]
    known_dates = known.dates | {d[5:] for d in known.dates if len(d) == 10}  # "December 5" restates 2026-12-05
    problems += [f"date {d}" for d in sorted(found.dates - known_dates)]
    if problems:
        return problems
    # Every number is the FAQ's: is each still a time it gives in that unit? (A text whose units the
    # pattern does not know, German "3-5 Werktage", has no times to compare.)
    known_times = durations(known_text)
    return [f"duration {d}" for d in sorted(durations(draft) - known_times)] if known_times else []


# -- the echo check -------------------------------------------------------------------

# Words a reply may take from the shopper's request without claiming anything about the shop.
REQUEST_WORDS = {
    "en": "help need want problem issue trouble assist assistance know see check like please could would tell "
          "show find get look make sure able possible way item product purchase package parcel thing stuff buy bought",
    "de": "hilfe helfen brauche brauchen möchte problem frage wissen sehen prüfen bitte",
    "zh": "帮助 帮忙 请问 怎么 如何 问题 需要 想要 知道 查看 可以",
}


@functools.lru_cache(maxsize=32)
def _analyzer(language: str):  # noqa: ANN202 (a whoosh analyzer)
    return language_analyzer(language)


def terms_of(text: str, language: str) -> set[str]:
    """The text's index terms in that language (stemmed, stop words and numbers left out)."""
    return set(_terms(_analyzer(language), text))


def _terms(analyzer, text: str) -> dict[str, str]:  # noqa: ANN001 (a whoosh analyzer)
    """Index term -> the word as written, for words without digits (order numbers are the literal check's)."""
    return {token.text: token.original for token in analyzer(text, keeporiginal=True)
            if not any(ch.isdigit() for ch in token.text)}


@functools.lru_cache(maxsize=8)
def request_terms(language: str) -> frozenset[str]:
    """The index terms of REQUEST_WORDS, analysed once instead of for every draft checked."""
    return frozenset(_terms(_analyzer(language), REQUEST_WORDS.get(language, "")))


def _known_terms(texts: Iterable[str], language: str) -> set[str]:
    """The terms of the given texts plus the words any request may use ("help", "order")."""
    return set(_terms(_analyzer(language), "\n".join([*texts, REQUEST_WORDS.get(language, "")])))


def unknown_words(question: str, sources: Iterable[str], language: str) -> dict[str, str]:
    """The shopper's words (as index terms -> as written) that the FAQ text never uses.

    The prompt tells the model not to use them, and `echoed_terms` refuses a draft that does.
    """
    known = _known_terms(sources, language)
    return {term: word for term, word in _terms(_analyzer(language), question).items() if term not in known}


def echoed_terms(draft: str, unknown: Mapping[str, str], language: str) -> list[str]:
    """Words of the shopper's message that the draft repeats but the FAQ text never uses.

    A small model turns the shopper's premise into a claim: "To create a platinum account,
    click Sign in" when the shop has no account tiers, "You can get your money back by
    following the steps under My orders" when the entry only says how to track a refund.
    Such a sentence is close to the FAQ as a whole, so the semantic check lets it pass;
    the borrowed word gives it away. Only meaningful when the FAQ text is in the reply's
    language (a translation shares no words with its source). `unknown` comes from `unknown_words`.
    """
    return sorted(unknown[term] for term in _terms(_analyzer(language), draft) if term in unknown)


# Where a small model likes to send shoppers instead of answering ("see the FAQ entry", "visit our
# website", "contact our customer service team"): wrong unless the merchant's text says so.
REFERRAL_WORDS = {
    "en": "faq entry entries website site section visit refer link customer service team support department "
          "hotline portal app",
    "de": "faq eintrag webseite website seite abschnitt kundenservice kundendienst support",
    "zh": "常见问题 网站 官网 客服 页面 栏目 链接",
}
NOVEL_WORDS_LIMIT = 3  # this many words neither the FAQ nor the shopper used: the draft is making things up
SPACELESS = ("zh", "ja", "ko", "th")  # character pairs, not words: a count of new pairs means nothing


def invented_words(draft: str, question: str, sources: Iterable[str], language: str) -> str | None:
    """Why the draft's own vocabulary gives it away, or None.

    Measured on Qwen2.5 1.5B: faithful replies use at most one word that neither the entries nor
    the shopper used ("use", "page"); replies that send the shopper elsewhere or add steps use
    several ("visiting our website or contacting our customer service team").
    """
    analyzer = _analyzer(language)
    known = _known_terms([*sources, question], language)
    claims = " ".join(s for s in sentences(draft) if not is_pleasantry(s))  # "Thanks for asking!" claims nothing
    novel = {term: word for term, word in _terms(analyzer, claims).items() if term not in known}
    referral_terms = set(_terms(analyzer, REFERRAL_WORDS.get(language, "")))
    referrals = sorted(word for term, word in novel.items() if term in referral_terms)
    if referrals:
        return f"the reply sends the shopper somewhere the FAQ does not mention: {', '.join(referrals[:3])}"
    if language not in SPACELESS and len(novel) >= NOVEL_WORDS_LIMIT:
        return f"the reply uses {len(novel)} words the FAQ never does: {', '.join(sorted(novel.values())[:4])}"
    return None


# A leading clause that states the shopper's goal or condition: "To create a premium account, …",
# "If you have problems with X, …". The rest of the sentence is the instruction from the FAQ.
LEAD_CLAUSE = re.compile(
    r"(?is)^(?P<lead>(?:(?:to|if|for|when|once|in order to|um|wenn|falls|für|pour|si|para)\b|如果|要|为了|对于)"
    r"[^,，.。]{1,120}[,，])\s*(?P<rest>\S.*)$"
)


def drop_borrowed_premises(draft: str, unknown: Mapping[str, str], language: str) -> tuple[str, list[str]]:
    """The draft without leading clauses that carry words only the shopper used, and those clauses.

    "To create a premium account for your daughter, click Sign in" becomes "Click Sign in":
    the instruction stays, the premise the FAQ never granted goes. A sentence whose borrowed
    words sit anywhere else is left alone (and `echoed_terms` refuses the draft). `unknown` comes
    from `unknown_words`.
    """
    if not unknown:
        return draft, []
    analyzer = _analyzer(language)
    kept, dropped = [], []
    for sentence in sentences(draft):
        match = LEAD_CLAUSE.match(sentence)
        if match and any(t in unknown for t in _terms(analyzer, match["lead"])) \
                and not any(t in unknown for t in _terms(analyzer, match["rest"])):
            rest = match["rest"]
            kept.append(rest[:1].upper() + rest[1:])
            dropped.append(match["lead"].rstrip(",，"))
        else:
            kept.append(sentence)
    joiner = "" if language in ("zh", "ja", "th") else " "
    return (joiner.join(kept), dropped) if dropped else (draft, [])


# -- the semantic layer -------------------------------------------------------------

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")  # "4.95" and "e.g." stay whole
NEGATIONS = re.compile(
    r"(?i)(?<!\w)(?:not|no|never|none|cannot|can't|don't|doesn't|didn't|won't|isn't|aren't|wasn't|without|"
    r"nicht|kein\w*|nie|ne|pas|jamais|sin|nunca|non|não|niet|geen|нет|не)(?!\w)|n't|不|没|無|无|未|别|非"
)
PLEASANTRY = re.compile(
    r"(?i)^(?:hi|hello|hey|thanks?|thank you|you're welcome|sorry|i'm sorry|we're sorry|i understand|"
    r"happy to help|glad to help|let me know|is there anything else|have a (?:nice|great) day|best regards|"
    r"您好|你好|谢谢|感谢|抱歉|不好意思|很抱歉|理解|还有什么|祝您)"
)


# A full stop after these does not end a sentence ("Mr. Smith", "e.g. PayPal", "No. 5").
ABBREVIATION = re.compile(
    r"(?i)(?:^|\s|\()(?:mr|mrs|ms|dr|prof|st|no|nr|vs|etc|approx|incl|e\.g|i\.e|z\.b|bzw|ca|usw|p\.ex|"
    r"[a-z])\.$"
)


def sentences(text: str) -> list[str]:
    pieces: list[str] = []
    for part in SENTENCE_END.split(text):
        part = part.strip(" -•*\t")
        if not part:
            continue
        if pieces and (ABBREVIATION.search(pieces[-1]) or re.fullmatch(r"\d{1,2}[.)]", pieces[-1])
                       or part[:1].islower()):
            pieces[-1] = f"{pieces[-1]} {part}"
        else:
            pieces.append(part)
    return pieces


CLAUSE_BREAK = re.compile(r"\s*[;；]\s*|,\s+(?:or|but)\s+|\s*[，,]\s*(?:但是|但)")


def with_clauses(sentence: str) -> list[str]:
    """A context sentence and its clauses: a draft that quotes half of "A failed payment isn't
    charged; if you see a pending amount…" is compared with that half, negations included."""
    clauses = [c for c in CLAUSE_BREAK.split(sentence) if len(c.split()) >= 3 or dense_characters(c) >= 6]
    return [sentence, *clauses] if len(clauses) > 1 else [sentence]


# The words a reply answers a yes/no question with (spaced scripts; Chinese).
YES_NO_WORDS = "yes|no|sure|of course|ja|nein|oui|non|sí|si"
YES_NO_CHINESE = "可以|不可以|能|不能|是的|是|不是|有|没有"
# "Yes." alone answers nothing the shopper can act on, and drops whatever the FAQ's "Yes" depends on
# ("可以。" for "can I exchange it?", where the entry allows it in the EU and UK only).
BARE_ANSWER = re.compile(rf"(?i)^(?:{YES_NO_WORDS}|{YES_NO_CHINESE})\s*[.!。！]?$")


def is_pleasantry(sentence: str) -> bool:
    """Greetings, thanks, apologies, questions back and a bare "yes" claim nothing about the shop."""
    short = len(sentence) <= 80
    return short and claim_of(sentence) is None


# Where a pleasantry's opening ends and a claim may begin: "Sorry, pierced earrings can't be returned."
PLEASANTRY_END = re.compile(r"[,，:：!！—–]\s*")


def claim_of(sentence: str) -> str | None:
    """What a sentence claims about the shop: None for a pleasantry, else the sentence without its
    opening courtesy or yes/no answer word ("Sorry, pierced earrings can't be returned" claims
    "pierced earrings can't be returned", which is checked; "Thanks for asking!" claims nothing)."""
    stripped = sentence.strip()
    if BARE_ANSWER.match(stripped) or stripped.endswith(("?", "？")):
        return None
    if PLEASANTRY.match(stripped):
        parts = PLEASANTRY_END.split(stripped, maxsplit=1)
        rest = parts[1].strip() if len(parts) == 2 else ""
        if len(rest.split()) < 3 and dense_characters(rest) < 6:
            return None
        stripped = rest
    return without_lead(stripped)


def negated(sentence: str) -> bool:
    return len(NEGATIONS.findall(sentence)) % 2 == 1


# The word a reply answers the shopper's yes/no question with, before what the FAQ says: "No, you don't need
# an account" restates "You don't need an account", and its "No" is no second negation. (The lead itself
# is not checked: what follows it is, with its own negation.)
ANSWER_LEAD = re.compile(rf"(?i)^(?:(?:{YES_NO_WORDS}|yep|nope|good news|unfortunately)\s*(?:[,:;!]|—|–|-)\s*"
                         rf"|(?:{YES_NO_CHINESE}|对)[，,：:！!]\s*)")


def without_lead(sentence: str) -> str:
    """The claim a sentence makes, its yes/no answer word left out ("No, we don't have a phone line")."""
    rest = ANSWER_LEAD.sub("", sentence, count=1)
    return rest if len(rest) >= 3 else sentence


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

    def __init__(self, encode: Callable[[Sequence[str]], Any], min_similarity: float, encoder_id: str | None = None):
        self._encode = encode
        self._min = min_similarity
        self.encoder_id = encoder_id  # whose vectors `encode` makes: a turn's own vector of that encoder is reused

    def closest(self, text: str, candidates: Sequence[str], text_vector: Any = None) -> int:
        """Blocking (encodes the candidates, and `text` unless its vector is given): the index of the
        candidate closest in meaning to `text`."""
        if text_vector is None:
            vectors = self._encode([text, *candidates])
            text_vector, vectors = vectors[0], vectors[1:]
        else:
            vectors = self._encode(list(candidates))
        return int((vectors @ text_vector).argmax())

    def contrary(self, draft: str, context: Sequence[str], contrary: Sequence[str]) -> list[Claim]:
        """Blocking (encodes): the draft's claims closer in meaning to a statement the record does not make
        (another order status: "will arrive on 2026-12-05" for "shipped on 2026-12-05") than to any it does."""
        stated = {part for text in context for s in sentences(text) for part in with_clauses(s)}
        return [claim for claim in self.check(draft, [*context, *contrary]) if claim.support not in stated
                and negated(claim_of(claim.sentence) or claim.sentence) == negated(claim.support)]

    def check(self, draft: str, context: Sequence[str]) -> list[Claim]:
        """Blocking (encodes); the claims that are not pleasantries, each with its verdict."""
        claims = [s for s in sentences(draft) if not is_pleasantry(s)]
        support = [part for text in context for s in sentences(text) for part in with_clauses(s)]
        if not claims:
            return []
        if not support:
            return [Claim(c, "", 0.0, False, "nothing to support it") for c in claims]
        stated = [claim_of(c) or c for c in claims]
        vectors = self._encode([*stated, *support])
        similarity = vectors[: len(claims)] @ vectors[len(claims):].T
        verdicts = []
        for index, claim in enumerate(claims):
            best = int(similarity[index].argmax())
            score = float(similarity[index][best])
            closest = support[best]
            if score < self._min:
                verdicts.append(Claim(claim, closest, score, False, f"unsupported (similarity {score:.2f})"))
            elif negated(stated[index]) != negated(closest):
                verdicts.append(Claim(claim, closest, score, False, "contradicts the FAQ (negation differs)"))
            else:
                verdicts.append(Claim(claim, closest, score, True))
        return verdicts


# A number the FAQ gives as a limit: "within 1 hour", "before 14:00", "over €50", "1 小时内", "满 150 欧元".
LIMIT = re.compile(
    r"(?i)\b(?:within|before|after|up to|at most|at least|over|under|more than|less than|innerhalb|bis zu|ab)\s+"
    r"\D{0,3}\d|\d[\d.,:]*\s*\S{0,4}\s*(?:内|以内|之内|前)|(?:满|超过|至少|最多)\s*\d")


def dropped_limit(claims: Sequence[Claim]) -> str | None:
    """A claim without any number whose closest FAQ sentence sets a limit with one, or None.

    "您可以在“我的订单”中自行取消订单" (you can cancel it yourself in My orders) from "下单后 1 小时内…
    自行取消": close to the FAQ and the same polarity, so the semantic check passes it, but
    the shopper reads it as "any time". Works in any language the limit words cover.
    """
    for claim in claims:
        limit = LIMIT.search(claim.support)
        if claim.ok and limit and not NUMBER.search(claim.sentence):
            return f"the reply leaves out the FAQ's limit '{limit.group(0).strip()}…': '{claim.sentence[:60]}'"
    return None


# -- the means check -------------------------------------------------------------------

MEANS = re.compile(r"(?i)\bby\s+([a-z]+ing)\b")
CLAUSE_START = re.compile(r"[,;:]|\b(?:and|or|but|then)\b|^")
GENERIC_MEANS = {"use", "go", "follow", "click", "tap", "select", "choos", "choose", "open", "enter", "fill", "visit"}


def unlinked_means(draft: str, sources: Iterable[str], language: str) -> str | None:
    """A sentence "you can X by Y-ing" where no sentence of the FAQ puts X and Y together, or None.

    A small model joins the shopper's goal to a step of the entry: "You can get your money back by
    checking the status of your refund" (the entry says how to follow a refund, not how to get one),
    "You can cancel your order by contacting us within 1 hour" (the entry cancels it yourself within
    the hour and contacts us after it). Each part is close to the FAQ, so the semantic check passes;
    the link between them is the invented claim. English only: the pattern is English grammar.
    """
    if language != "en":
        return None
    analyzer = _analyzer(language)
    request = request_terms("en")
    source_sentences = [set(_terms(analyzer, s)) for text in sources for s in sentences(text)]
    for sentence in sentences(draft):
        for found in MEANS.finditer(sentence):
            before = sentence[:found.start()]
            clause = before[[m.end() for m in CLAUSE_START.finditer(before)][-1]:]
            goal = set(_terms(analyzer, clause)) - request
            verb = _step_term(analyzer, sentence[found.start(1):], request)
            if not goal or verb is None:
                continue
            if not any(goal <= terms and verb in terms for terms in source_sentences):
                return (f"the reply links '{clause.strip()}' to '{found.group(0)}', which no FAQ sentence does")
    return None


def _step_term(analyzer, step: str, request: set[str]) -> str | None:  # noqa: ANN001 (a whoosh analyzer)
    """The word that names a step: "by using the link" and "go to My orders" name the link and the orders."""
    terms = [term for term in _terms(analyzer, step) if term not in request]
    return terms[1] if len(terms) > 1 and terms[0] in GENERIC_MEANS else (terms[0] if terms else None)


PURPOSE = re.compile(r"(?i)^to\s+([^,;:]{3,80}),\s*(.+)$")


def unlinked_purpose(draft: str, sources: Iterable[str], language: str) -> str | None:
    """A sentence "To X, do Y" where no entry gives Y for X, or None.

    "To see your money back guarantee, check your account under My orders": the step is the
    refund-status entry's, the goal the shopper's. "To subscribe to or unsubscribe from the
    newsletter, sign up with the form": the entry gives another step for unsubscribing. Each word
    of X must be in an answer sentence holding Y, or in the entry's question and none of its
    answer sentences ("How do I track my order?" gives "To track your order, enter your order
    number…"). Each source is an entry as "question\nanswer". English only.
    """
    if language != "en":
        return None
    analyzer = _analyzer(language)
    request = request_terms("en")
    linked: list[set[str]] = []  # per answer sentence: its terms, and the question's the answer never uses
    for text in sources:
        question, _, answer = text.partition("\n")
        answer_terms = [set(_terms(analyzer, s)) for s in sentences(answer or question)]
        asked = set(_terms(analyzer, question)) - set().union(*answer_terms) if answer else set()
        linked.extend(terms | asked for terms in answer_terms)
    for sentence in sentences(draft):
        found = PURPOSE.match(sentence)
        if not found:
            continue
        goal = set(_terms(analyzer, found.group(1))) - request
        step = _step_term(analyzer, found.group(2), request)
        if goal and step and not any(step in terms and goal <= terms for terms in linked):
            return f"the reply gives '{found.group(2)[:60]}' for '{found.group(1)}', which no FAQ entry does"
    return None


# -- the who-may check -----------------------------------------------------------------

GROUP_NOUNS = "shoppers|customers|buyers|members|users|guests|students|businesses|companies|subscribers|residents"
RESTRICTED = re.compile(rf"(?i)\b((?:[a-z-]+ ){{1,2}}(?:{GROUP_NOUNS}))\s+(?:can|may|are able to)\s+([a-z]+)")


def dropped_restriction(draft: str, sources: Iterable[str], language: str) -> str | None:
    """An action the FAQ allows only a group of shoppers ("guest shoppers can request one by email")
    that a draft sentence offers without naming the group ("…or request one by email"), or None.
    English only: the pattern is English grammar."""
    if language != "en":
        return None
    analyzer = _analyzer(language)
    draft_terms = [set(_terms(analyzer, sentence)) for sentence in sentences(draft)]
    for found in RESTRICTED.finditer("\n".join(sources)):
        group, verb = found.group(1).strip(), found.group(2)
        noun = group.split()[-1]
        qualifier = set(_terms(analyzer, group)) - set(_terms(analyzer, noun))  # "guest"; none for "all customers"
        verb_term = next(iter(_terms(analyzer, verb)), None)
        if verb_term is None or not qualifier:
            continue
        for terms in draft_terms:
            if verb_term in terms and not qualifier & terms:
                return f"the reply offers '{verb}' to everyone; the FAQ allows it to {group} only"
    return None


# -- the condition check ---------------------------------------------------------------

LEAD_CONDITION = re.compile(r"(?i)^((?:only )?(?:to|if|when|once|unless|after|before)\s+[^,;:]{3,80}),\s*(.+)$")
STATED_SHARE = 0.6  # this share of a draft sentence's words (and at least 3) come from an FAQ sentence: it states it


def dropped_condition(draft: str, question: str, sources: Iterable[str], language: str) -> str | None:
    """A draft sentence that states what the FAQ says only under a condition or for a purpose,
    with no word of that condition in the sentence or the shopper's message, or None.

    "If you need one, email us with your order number within 30 days" reads as the way to get any
    invoice; the FAQ sentence it comes from begins "To add company details or a VAT ID, …". The
    semantic check passes it (the words are the FAQ's); the missing condition is the invented claim.
    A sentence that an unconditional FAQ sentence states as fully is fine. English only.
    """
    if language != "en":
        return None
    analyzer = _analyzer(language)
    request = request_terms("en")
    said: list[tuple[str, set[str], set[str]]] = []  # (condition as written, its own terms, the stated terms)
    for text in sources:
        for sentence in sentences(text):
            found = LEAD_CONDITION.match(sentence)
            if found:
                stated = set(_terms(analyzer, found.group(2))) - request
                said.append((found.group(1), set(_terms(analyzer, found.group(1))) - request - stated, stated))
            else:
                said.append(("", set(), set(_terms(analyzer, sentence)) - request))
    asked = set(_terms(analyzer, question))
    draft_terms = [set(_terms(analyzer, sentence)) - request for sentence in sentences(draft)]
    for terms in draft_terms:
        overlap = {index: len(terms & stated) for index, (_, _, stated) in enumerate(said)}
        best = max(overlap.values(), default=0)
        if best < max(3, STATED_SHARE * len(terms)):
            continue
        # The FAQ sentences it states most fully; one of them without a condition, and the sentence is fine.
        stating = [said[index][:2] for index, count in overlap.items() if count == best]
        context = terms | asked  # not the sentence before: it holds the FAQ's other words ("your VAT invoice")
        if stating and all(own and not own & context for _, own in stating):
            return f"the reply leaves out the FAQ's condition '{stating[0][0]}'"
    return None


# -- the status check -----------------------------------------------------------------

# "Your refund has been issued", "订单已取消": what happened to this shopper's order, which kefu cannot see.
STATUS = {
    # perfect tense or "already" ("refunds are issued within 5-7 days" is policy, not a status), and what
    # kefu says it did itself: "I've cancelled it", "we refunded you" ("let's reset it" is advice).
    "en": re.compile(r"(?i)(?:\b(?:has|have|had)\s+|['’]ve\s+|['’]s\s+(?=(?:already\s+)?been\b)|"
                     r"\b(?:is|are|was|were)\s+already\s+|\b(?:i|we)\s+(?:just\s+|already\s+)?)"
                     r"(?:already\s+)?(?:been\s+)?(?:shipped|sent|issued|"
                     r"cancell?ed|refunded|processed|delivered|received|approved|dispatched|updated|changed|"
                     r"deleted|reset|lost)\b"),
    "zh": re.compile(r"已(?:经)?(?:被)?[\u4e00-\u9fff]{1,2}"),
}


def _status_form(phrase: str) -> str:
    return re.sub(r"\s+", " ", phrase.lower().replace("已经", "已").replace("already ", ""))


def status_claims(draft: str, question: str, sources: Iterable[str], language: str) -> str | None:
    """A statement that something already happened to the shopper's order, refund or account that
    neither the FAQ nor the shopper wrote ("退款已经发出", "订单已取消"), or None. English and Chinese."""
    pattern = STATUS.get(language)
    if pattern is None:
        return None
    known = _status_form("\n".join([*sources, question]))
    for found in pattern.finditer(draft):
        if _status_form(found.group(0)) not in known:
            return f"the reply says '{found.group(0)}' about the shopper's order, which kefu cannot see"
    return None
