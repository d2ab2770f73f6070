"""A "Yes —" or "No —" before a composed reply, decided by kefu from the FAQ sentence, never by the model.

"Do you ship to China?" is answered by a person as "Yes — we ship to … mainland China …", not with
the sentence alone. Asked to write that lead, Qwen2.5 1.5B said "YES" to "can I pay with Klarna?" (not
accepted) and "can I return earrings?" (they can't be), so the lead is not the model's. kefu writes it
only for a question of whether the shop offers something, when the first sentence sent settles it:

- the shopper asks whether the shop ships, delivers, accepts, offers or has something ("do you ship
  to China?", "can I pay with PayPal?", "能寄到中国吗"), in the language of the reply (English or
  Chinese), with no negation and no number in it;
- the question names something specific (not only what the entry's first question or several of its
  phrasings say), every word of it is one the entry uses ("klarna" is not: no lead);
- one clause of that sentence names all of it after "we ship / accept / offer / have …" (a "Yes", and
  only when the whole sentence denies nothing) or after "we don't offer / don't have …", "暂不支持",
  "没有" (a "No");
- that clause sets no condition, requirement or limit ("only", "if", "need", "over EUR 50", "仅限");
- and the reply does not already open with a yes or a no.

Read on the 386 en/zh questions of bench/data (shoppers.csv and the checker's drafts), a first version
that read the answer off any sentence's polarity put a wrong lead on about half of its 19 ("包裹是不是丢了"
→ "是的，请先查看…", "do I pay import tax in the UK" → "No — … we remove EU VAT", "can I delete my account
now?" → "Yes — any open orders … need to be completed first"); this one leads 6 of them, all right.
Anything less certain gets no lead, and the sentences go out as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.responder.grounding import (ANSWER_LEAD, BARE_ANSWER, CLAUSE_BREAK, NEGATIONS, SPACELESS, request_terms,
                                     sentences, terms_of)

CJK = re.compile(r"[\u3400-\u9fff]")
# Particles, pronouns and the verbs a yes/no question is asked with: no content a lead could get wrong.
PARTICLES = set("吗么嘛呢吧啊呀的了我你您们请问这那个能可以会要有用是否在到给")
# Words a sloppy question carries that say nothing about the shop ("is anyone on the chat on saturdays?").
FILLER = "anyone anybody someone somebody u ur still even really actually just ever also"

# Only questions of whether the shop offers something ("do you ship to China?", "can I pay with PayPal?",
# "do you have a phone line?", "能寄到中国吗"): the FAQ sentence that lists it, or says it doesn't, answers
# them. A question about a state or a consequence ("is my parcel lost?", "寄到中国要交税吗", "do I pay import
# tax?") is not settled by a sentence's polarity: read on 386 bench questions, such leads were wrong.
YES_NO_QUESTION = {
    "en": re.compile(r"(?i)^(?:(?:hi|hello|hey|ok|so|and|also|quick question)\W+)*"
                     r"(?:(?:do|does|can|could|will)\s+(?:you|u|i|we)\s+(?:\w+ly\s+)?"
                     r"(?:ship|deliver|send|accept|take|offer|have|sell|support|pay)"
                     r"|(?:is|are)\s+there)\b"),
    "zh": re.compile(r"^[^要会是了]*(?:能不能|可不可以|可以|能|支持|有没有|有|提供|接受)[^要会是了]*(?:吗|么)[？?！!。.\s]*$"),
}
# A negative question ("can't I return it?", "不能退吗") has no one right yes or no.
NEGATIVE_QUESTION = {
    "en": re.compile(r"(?i)^\W*\w+n't\b|\b(?:not|never)\b"),
    "zh": re.compile(r"^[^能可有是会支行要]*不(?!了)"),
}
# A clause stating something only under a condition, or up to a limit: a lead would drop that.
CONDITIONAL = {
    "en": re.compile(r"(?i)\b(?:only|if|unless|except|as long as|provided|when|once|most|some|usually|normally|"
                     r"may|might|depending|depends|need|needs|must|required|first)\b"),
    "zh": re.compile(r"如果|只|仅|除|前提|须|需要|大部分|多数|一般|通常|可能|视"),
}
# A limit on what the clause grants ("free on orders over EUR 50", "满 50 欧元免运费"); "more than 60
# countries" is a count, not a limit.
CONDITION_LIMIT = re.compile(
    r"(?i)\b(?:within|before|after|up to|at most|at least|over|under|less than|no later than)\s+\D{0,4}\d"
    r"|\d[\d.,:]*\s*\S{0,4}\s*(?:内|以内|之内|前)|(?:满|超过|至少|最多|不超过)\s*\d")
# Where a clause ends: "We don't have a phone line, but this assistant is available 24/7".
CLAUSES = {"en": CLAUSE_BREAK, "zh": re.compile(r"\s*[，,；;]\s*")}
# The clause that settles such a question offers the thing or denies it, naming it after the verb.
OFFERS = {
    "en": re.compile(r"(?i)\b(?:we|you can)\s+(?:ship|deliver|send|accept|offer|have|sell|support)\b"),
    "zh": re.compile(r"支持|可配送至|配送至|寄往|提供|接受"),
}
DENIES = {
    "en": re.compile(r"(?i)\b(?:we|you)\s+(?:don't|do not|can't|cannot|won't)\s+"
                     r"(?:ship|deliver|send|accept|offer|have|sell|support)\b"),
    "zh": re.compile(r"暂不支持|不支持|不提供|不接受|没有|暂无|无法配送|不配送"),
}
# Words that deny without a "not": "closed on Sundays", "除外".
NEGATIVE_PREDICATE = {
    "en": re.compile(r"(?i)\b(?:closed|unavailable|excluded|impossible|prohibited|refused|declined|expired|invalid|"
                     r"void|only)\b"),
    "zh": re.compile(r"休息|关闭|除外|暂停|拒|无法|仅|只"),
}
# Chinese answers a yes/no question with its own verb: 可以吗 → 可以 / 不可以, 有吗 → 有的 / 没有.
CHINESE_VERBS = (("可以", "可以", "不可以"), ("能", "能", "不能"), ("支持", "支持", "不支持"), ("有", "有的", "没有"),
                 ("提供", "提供", "不提供"), ("接受", "接受", "不接受"))


@dataclass(frozen=True)
class Lead:
    text: str  # "Yes — " / "No — " / "可以，"
    answer: str  # "yes" or "no"
    clause: str  # the FAQ clause that settles it
    named: tuple[str, ...]  # the question's own words that clause names


def answer_lead(question: str, reply: str, answer: str, language: str, topic: Sequence[str]) -> Lead | None:
    """The lead the first sent sentence justifies for this question, or None (see the module doc).

    `reply`: the sentences to be sent; `answer`: the entry's whole answer; `topic`: its questions; all of them
    in `language`, the shopper's."""
    asks = YES_NO_QUESTION.get(language)
    asked = question.strip()
    if asks is None or not asks.search(asked) or NEGATIVE_QUESTION[language].search(asked) \
            or re.search(r"\d", asked):  # "is the warranty 5 years?": numbers are no terms, so unchecked here
        return None
    first = next(iter(sentences(reply)), "")
    if not first or BARE_ANSWER.match(first) or ANSWER_LEAD.match(first):
        return None
    def terms(text: str) -> set[str]:
        return terms_of(text, language)

    own = _own_words(asked, answer, language, terms, topic)
    if not own:
        return None
    for clause in [c for c in CLAUSES[language].split(first) if c.strip()] or [first]:
        if not own <= terms(clause):
            continue
        if CONDITIONAL[language].search(clause) or CONDITION_LIMIT.search(clause):
            return None
        denied, offered = DENIES[language].search(clause), OFFERS[language].search(clause)
        if denied and own <= terms(clause[denied.end():]):
            answer_word = "no"
        elif offered and not denied and own <= terms(clause[offered.end():]) \
                and not NEGATIONS.search(first) and not NEGATIVE_PREDICATE[language].search(first):
            # "Pierced earrings, underwear and personalised items can't be returned": a clause may be one
            # item of a list the sentence denies, so a "yes" needs a sentence that denies nothing.
            answer_word = "yes"
        else:
            return None
        return Lead(_lead_text(asked, answer_word, language), answer_word, clause.strip(), tuple(sorted(own)))
    return None


def _own_words(question: str, answer: str, language: str, terms: Callable[[str], set[str]],
               topic: Sequence[str]) -> set[str]:
    """The question's words the answer uses, which the clause must all name; empty when the question only
    restates the entry, or names something the entry never does ("klarna": a "yes" or a "no" would be a guess).

    The entry's subject is its first question ("pay" grows into its "payment"): the answer as a whole speaks
    to it, so the clause need not name it. A word several phrasings share ("free" in "is shipping free",
    "free shipping over how much") is not specific, but the clause must still name it; a word only one
    phrasing names ("可以用支付宝吗") is as specific as the shopper's "China"."""
    known = terms(answer)
    counts: dict[str, int] = {}
    for phrasing in topic[1:]:
        for term in terms(phrasing):
            counts[term] = counts.get(term, 0) + 1
    subject = terms(topic[0]) | request_terms(language)  # what the entry answers: "pay" is in "payment methods"
    about = subject | {term for term, count in counts.items() if count >= 2}
    vocabulary = known | set(counts) | about
    asked = terms(question)
    if language in SPACELESS:
        # Terms are character pairs: every character of the question must belong to a pair the entry uses
        # (or be a particle), else it names something the entry does not.
        covered = [not CJK.match(ch) or ch in PARTICLES for ch in question]
        for i in range(len(question) - 1):
            if question[i:i + 2] in vocabulary:
                covered[i] = covered[i + 1] = True
        words = {term for term in asked if not CJK.match(term)}  # "paypal", "klarna"
        if not all(covered) or not words <= vocabulary:
            return set()
    else:
        asked -= terms(FILLER)
        if not asked <= vocabulary:
            return set()
    named = {term for term in asked & known if not _within(term, subject, language)}
    # Something specific must be asked ("china"), and the clause must then name every word of the question
    # the answer uses beyond the entry's subject: "is shipping to the UK free?" is not answered by "Express
    # shipping (EU and UK) costs EUR 12".
    return named if named - about else set()


def _within(term: str, subject: set[str], language: str) -> bool:
    """Whether a word is the entry's subject, or a word it grows from ("pay" for "payment")."""
    return term in subject or (language not in SPACELESS and len(term) >= 3
                               and any(word.startswith(term) for word in subject))


def _lead_text(question: str, answer: str, language: str) -> str:
    if language == "zh":
        for verb, yes, no in CHINESE_VERBS:
            if verb in question:
                return f"{yes if answer == 'yes' else no}，"
        return "可以，" if answer == "yes" else "不可以，"
    return "Yes — " if answer == "yes" else "No — "


def with_lead(lead: Lead, reply: str, answer: str) -> str:
    """The reply after its lead: "Yes — we ship to …". The first word keeps its capital when it is a name:
    written with inner capitals ("PayPal") or capitalised inside a sentence of the answer ("… at Lantern Lane")."""
    first = re.match(r"[A-Z][a-z]+\b", reply)
    if lead.text.endswith(" ") and first and not re.search(rf"[a-z,]\s+{first.group(0)}\b", answer):
        reply = reply[0].lower() + reply[1:]
    return f"{lead.text}{reply}"
