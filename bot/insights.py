"""The merchant dashboard's figures, computed from the conversation store.

A period is `start`..`end` inclusive (at most 366 days), in calendar days of the shop's
timezone; every figure is given per day (days without messages included, as zeros) and
for the whole period. The headline is honest on purpose: only a confident FAQ answer counts
as the bot having answered. What each figure means:

turns          messages a shopper wrote in the period (inbound, role "shopper"). A turn belongs
               to the day it was sent, in the shop's timezone (to the millisecond: SQLite's
               resolution).
commands       turns answered with a fixed text (reply kind "info"): commands such as /start,
               /help, /lang, and a photo or sticker without text. Not a question an FAQ entry
               could answer, so they are shown on their own and left out of every rate.
questions      turns - commands: the denominator of every rate below.
automated      questions the bot answered confidently from the FAQ (reply kind "answer") and
               that did not start a handoff. automation rate = automated / questions.
not_sure       the bot offered "did you mean…" candidates (reply kind "not_sure").
no_match       the bot found nothing and said so (reply kind "no_match").
handoffs       the bot handed the conversation to a person (reply kind "handoff", or any message
               that started a handoff). The reasons count them by the reason stored with the
               reply (explicit_request, command, upset, unconfident, faq_flagged, keyword…),
               else by the handoff the message caused, else "unknown".
with_agent     the bot stayed silent because the conversation was with a person or waiting for
               one (the message was forwarded to the agents).
errors         the turn failed or ran out of time and was answered with an apology (reply
               kind "error").
no_reply       none of the above: still waiting for the bot, or failed without a reply.
               questions = automated + not_sure + no_match + handoffs + with_agent + errors
               + no_reply; each has its rate = count / questions.
languages      turns by the shopper's language: the language detected in that message
               (`language.detected` of its trace, which may be one the shop has not enabled),
               else the language the bot worked in for it, else the language stored on it
               (its reply's), else "unknown".
not_enabled    each detected language that is not one of the shop's languages, with its turns
               and their share of all turns ("Shoppers wrote in German (not enabled): 12 %").
channels       turns by channel.
mood_average   the average sentiment (-1 furious .. +1 happy) of the turns that were scored.
upset          scored turns at or below `upset_below` (default -0.3).
latency        p50 / p95 of how long the bot took to reply (ms), over its replies to the
               period's turns (answer, not_sure, no_match, handoff, info), from when it started
               on the message (time queued behind the same shopper's earlier messages is not
               counted) to the reply being stored. Nearest-rank percentiles: p95 is the time
               95% of replies took at most, always a time that was measured.

Unanswered questions: the period's turns answered "no_match" or "not_sure", and its handoffs
for any reason but the shopper asking for a person (in words or with /human). The most recent
`max_questions` (default 2000) are grouped by meaning: identical texts (ignoring case and
spacing) count together; otherwise a group's questions are on average at least `similarity`
alike (cosine of their sentence embeddings, average linkage), no two of them less than
`similarity - PAIR_SLACK` (complete linkage), and no two that the bot answered "not sure" with
no FAQ entry in common among the first `TRIED_COMPARED` it tried. A group is named by its
medoid, the question closest in meaning to all the others. Groups are sorted most asked first,
then most recently asked.

Why three rules: the encoder scores the shared frame of "how long does shipping take" and "how
long does a refund take" (0.64; 0.68 in German, in Chinese) higher than some true cross-language
paraphrases (0.46-0.55). Average linkage then chains whole topics together through such pairs;
the pair floor stops the chain, because some member of one topic is always far from some member
of the other; and where the bot's own search read two questions as being about different FAQ
entries, that decides even a lone pair. Measured in tests/test_insights.py.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from bot.concurrency import run_blocking
from bot.handoff import HandoffReason
from bot.messages import ReplyKind
from bot.responder.prompt import LANGUAGE_NAMES
from bot.store import FORWARDED, Store
from bot.store.engine import Database, Row
from bot.store.vectors import StoredVector
from knowledge.embeddings import normalize_text

log = logging.getLogger(__name__)

Encode = Callable[[Sequence[str]], np.ndarray]

MAX_DAYS = 366
BOT_REPLY_KINDS = (ReplyKind.ANSWER.value, ReplyKind.NOT_SURE.value, ReplyKind.NO_MATCH.value, ReplyKind.INFO.value,
                   ReplyKind.HANDOFF.value)
QUESTION_KINDS = (ReplyKind.NO_MATCH.value, ReplyKind.NOT_SURE.value, ReplyKind.HANDOFF.value)
# "A person please" (in words or as /human) is not a question an FAQ entry could have answered.
HUMAN_REQUESTS = (HandoffReason.EXPLICIT_REQUEST.value, HandoffReason.COMMAND.value)
MAX_EXAMPLES = 5
PAIR_SLACK = 0.05  # how far below `similarity` the least alike pair of a group may be
TRIED_COMPARED = 3  # FAQ entries tried (best first) compared between two "not sure" questions
ENCODE_BATCH = 64
CSV_HEADER = ("rank", "count", "conversations", "representative", "languages", "examples", "first_seen",
              "last_seen", "no_match", "not_sure", "handoff")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# One row per shopper turn with its first reply. `created_at` is compared twice: as text, with two
# days' slack (cheap, and an index could serve it), then exactly as a point in time, because
# adapters may store timestamps with another UTC offset (Telegram's dates follow the bot's
# timezone), which text order gets wrong. `created_ms` is that point in time in Unix milliseconds
# (SQLite's own resolution): the filter, the day and the recency order all use this one value.
_CREATED_MS = "CAST(ROUND((julianday(m.created_at) - 2440587.5) * 86400000) AS BIGINT)"
_TURNS_SQL = f"""
SELECT m.id, m.conversation_key, m.channel, m.text, m.status, m.sentiment,
       {_CREATED_MS} AS created_ms,
       COALESCE(CASE WHEN json_valid(r.meta) THEN json_extract(r.meta, '$.language.detected') END,
                CASE WHEN json_valid(m.meta) THEN json_extract(m.meta, '$.language.detected') END,
                CASE WHEN json_valid(r.meta) THEN json_extract(r.meta, '$.language.language') END,
                CASE WHEN json_valid(m.meta) THEN json_extract(m.meta, '$.language.language') END,
                NULLIF(m.language, ''), NULLIF(r.language, '')) AS language,
       r.kind AS reply_kind, r.latency_ms,
       CASE WHEN r.kind = '{ReplyKind.ANSWER.value}' AND EXISTS(
           SELECT 1 FROM handoff_transitions t
            WHERE t.conversation_key = m.conversation_key AND t.message_id = m.id
              AND t.to_state = 'waiting_agent') THEN 1 ELSE 0 END AS started_handoff,
       CASE WHEN r.kind = '{ReplyKind.NOT_SURE.value}' AND json_valid(r.meta) THEN json_array(
           {", ".join(f"json_extract(r.meta, '$.retrieval[{i}].faq_id')" for i in range(TRIED_COMPARED))}) END AS tried,
       CASE WHEN r.kind IN ('{ReplyKind.HANDOFF.value}', '{ReplyKind.ANSWER.value}') THEN COALESCE(
           CASE WHEN json_valid(r.meta) THEN json_extract(r.meta, '$.handoff.reason') END,
           (SELECT t.reason FROM handoff_transitions t
             WHERE t.conversation_key = m.conversation_key AND t.message_id = m.id
               AND t.to_state = 'waiting_agent' ORDER BY t.id LIMIT 1)) END AS handoff_reason
FROM messages m
LEFT JOIN messages r
       ON r.id = (SELECT MIN(o.id) FROM messages o WHERE o.reply_to = m.id AND o.direction = 'out')
WHERE m.direction = 'in' AND m.role = 'shopper'
  AND m.created_at >= :text_from AND m.created_at < :text_until
  AND {_CREATED_MS} >= :since_ms AND {_CREATED_MS} < :until_ms
"""

_QUESTIONS_SQL = f"""
SELECT q.*, v.vector, v.vector_encoder FROM ({_TURNS_SQL}) q JOIN messages v ON v.id = q.id
WHERE q.reply_kind IN ({", ".join(f"'{kind}'" for kind in QUESTION_KINDS)})
  AND (q.reply_kind != '{ReplyKind.HANDOFF.value}'
       OR COALESCE(q.handoff_reason, '') NOT IN ({", ".join(f"'{reason}'" for reason in HUMAN_REQUESTS)}))
"""


# -- results -------------------------------------------------------------------


@dataclass(frozen=True)
class DayFigures:
    """The figures of one day (or of the whole period, with day="total")."""

    day: str
    turns: int
    commands: int
    automated: int
    handoffs: int
    not_sure: int
    no_match: int
    with_agent: int
    errors: int
    no_reply: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    mood_average: float | None
    upset: int

    @property
    def questions(self) -> int:
        """The rates' denominator: commands are not questions."""
        return self.turns - self.commands

    @property
    def automation_rate(self) -> float | None:
        return _rate(self.automated, self.questions)

    @property
    def handoff_rate(self) -> float | None:
        return _rate(self.handoffs, self.questions)

    @property
    def not_sure_rate(self) -> float | None:
        return _rate(self.not_sure, self.questions)

    @property
    def no_match_rate(self) -> float | None:
        return _rate(self.no_match, self.questions)

    @property
    def error_rate(self) -> float | None:
        return _rate(self.errors, self.questions)

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day, "turns": self.turns, "commands": self.commands, "questions": self.questions,
            "automated": self.automated, "handoffs": self.handoffs, "not_sure": self.not_sure,
            "no_match": self.no_match, "with_agent": self.with_agent, "errors": self.errors,
            "no_reply": self.no_reply, "automation_rate": _rounded(self.automation_rate),
            "handoff_rate": _rounded(self.handoff_rate), "not_sure_rate": _rounded(self.not_sure_rate),
            "no_match_rate": _rounded(self.no_match_rate), "error_rate": _rounded(self.error_rate),
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms, "mood_average": _rounded(self.mood_average),
            "upset": self.upset,
        }


@dataclass(frozen=True)
class InsightsReport:
    start: str
    end: str
    timezone: str
    totals: DayFigures
    days: tuple[DayFigures, ...]
    handoff_reasons: dict[str, int]
    languages: dict[str, int]
    not_enabled: tuple[NotEnabledLanguage, ...]
    channels: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start, "end": self.end, "timezone": self.timezone, "totals": self.totals.to_json(),
            "days": [day.to_json() for day in self.days], "handoff_reasons": dict(self.handoff_reasons),
            "languages": dict(self.languages), "not_enabled": [language.to_json() for language in self.not_enabled],
            "channels": dict(self.channels), "definitions": dict(DEFINITIONS),
        }


@dataclass(frozen=True)
class NotEnabledLanguage:
    """Shoppers wrote in a language the shop does not answer in: a sign to enable it (or to say so)."""

    language: str
    name: str
    turns: int
    share: float  # of all turns in the period

    def to_json(self) -> dict[str, Any]:
        return {"language": self.language, "name": self.name, "turns": self.turns, "share": _rounded(self.share)}


@dataclass(frozen=True)
class QuestionCluster:
    """Shopper questions the bot could not answer that mean the same thing."""

    representative: str  # the question closest in meaning to all the others (the medoid)
    count: int  # messages
    conversations: int  # distinct conversations they came from
    languages: dict[str, int]
    examples: tuple[str, ...]  # up to 5 distinct phrasings, most recent first
    first_seen: str  # ISO 8601 in the shop's timezone
    last_seen: str
    kinds: dict[str, int]  # no_match / not_sure / handoff

    def to_json(self) -> dict[str, Any]:
        return {
            "representative": self.representative, "count": self.count, "conversations": self.conversations,
            "languages": dict(self.languages), "examples": list(self.examples), "first_seen": self.first_seen,
            "last_seen": self.last_seen, "kinds": dict(self.kinds),
        }


class QuestionClusters(list[QuestionCluster]):
    """The clusters, most asked first, and what was left out of them (still a plain list to iterate).

    `questions`: messages clustered; `questions_in_period`: all that qualified; `capped`: only
    the most recent `max_questions` were clustered; `clusters_total`: clusters before `limit`.
    """

    def __init__(self, clusters: Iterable[QuestionCluster], *, questions: int, questions_in_period: int,
                 max_questions: int, clusters_total: int):
        super().__init__(clusters)
        self.questions = questions
        self.questions_in_period = questions_in_period
        self.max_questions = max_questions
        self.capped = questions < questions_in_period
        self.clusters_total = clusters_total

    def to_json(self) -> dict[str, Any]:
        note = (f"only the most recent {self.questions} of {self.questions_in_period} questions were grouped"
                if self.capped else None)
        return {"clusters": [cluster.to_json() for cluster in self], "questions": self.questions,
                "questions_in_period": self.questions_in_period, "capped": self.capped, "note": note,
                "clusters_total": self.clusters_total}


# -- the service ---------------------------------------------------------------


# One line each, for the page: the same words as the module docstring, shown under the figures.
DEFINITIONS = {
    "automation_rate": "Automated: shopper questions answered confidently from the FAQ with no handoff, "
                       "of all shopper messages except commands such as /start.",
    "not_sure_rate": "Not sure: the bot offered \u201cdid you mean\u2026\u201d candidates.",
    "no_match_rate": "No match: the bot found nothing in the FAQ and said so.",
    "handoff_rate": "Handed over: the bot handed the conversation to a person.",
    "error_rate": "Errors: the turn failed or timed out and the shopper got an apology.",
    "commands": "Commands (/start, /help, \u2026) and messages without text are not counted as questions.",
}


class InsightsService:
    """Dashboard figures over the store: one read per call, the arithmetic off the event loop.

    `encode` turns texts into L2-normalised sentence embeddings (the search's multilingual
    encoder); without it unanswered questions are grouped by identical text only.
    `similarity` is the cosine similarity above which questions count as the same; 0.5 suits
    the multilingual Universal Sentence Encoder (measured in tests/test_insights.py: 0.6 splits
    "where is my refund" from its Chinese and German paraphrases). `languages` are the shop's
    enabled languages; without them no language is reported as not enabled.
    """

    def __init__(self, store: Store, *, timezone: ZoneInfo, encode: Encode | None = None, similarity: float = 0.5,
                 max_questions: int = 2000, upset_below: float = -0.3, languages: Iterable[str] = (),
                 encoder_id: str | None = None):
        if not 0.0 < similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1], not {similarity}")
        if max_questions < 1:
            raise ValueError(f"max_questions must be at least 1, not {max_questions}")
        self._store = store
        self._tz = timezone
        self._encode = encode
        self._encoder_id = encoder_id
        self._similarity = similarity
        self._max_questions = max_questions
        self._upset_below = upset_below
        self._languages = frozenset(languages)
        self._warned_no_encoder = False

    async def report(self, start: date, end: date) -> InsightsReport:
        period = Period.of(start, end, self._tz)
        turns = await self._store.read(_read_turns, period)
        return await run_blocking(build_report, period, turns, self._upset_below, self._languages)

    async def unanswered(self, start: date, end: date, *, limit: int = 100) -> QuestionClusters:
        """The questions the bot could not answer in the period, grouped by meaning, most asked first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        period = Period.of(start, end, self._tz)
        questions, in_period = await self._store.read(_read_questions, period, self._max_questions)
        if self._encode is None and not self._warned_no_encoder:
            self._warned_no_encoder = True
            log.warning("insights.no_encoder unanswered questions are grouped by identical text only: "
                        "no sentence encoder was given, so paraphrases stay apart")
        clusters = await run_blocking(cluster_questions, questions, self._encode, self._similarity,
                                      encoder_id=self._encoder_id)
        return QuestionClusters(clusters[:limit], questions=len(questions), questions_in_period=in_period,
                                max_questions=self._max_questions, clusters_total=len(clusters))


# -- the period ----------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    tz: ZoneInfo
    since: datetime  # UTC, inclusive
    until: datetime  # UTC, exclusive

    @classmethod
    def of(cls, start: date, end: date, tz: ZoneInfo) -> Period:
        """Calendar days `start`..`end` in `tz`; refuses a backwards or over-long period."""
        if end < start:
            raise ValueError(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        days = (end - start).days + 1
        if days > MAX_DAYS:
            raise ValueError(f"the period is {days} days long; at most {MAX_DAYS} days can be reported at once")
        since = datetime.combine(start, time.min, tzinfo=tz).astimezone(UTC)
        until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
        return cls(start, end, tz, since, until)

    def days(self) -> list[str]:
        return [(self.start + timedelta(days=n)).isoformat() for n in range((self.end - self.start).days + 1)]

    def sql_params(self) -> dict[str, str | int]:
        slack = timedelta(days=2)  # wider than any UTC offset, whatever separator the text uses
        return {"text_from": (self.since - slack).isoformat(), "text_until": (self.until + slack).isoformat(),
                "since_ms": _unix_ms(self.since), "until_ms": _unix_ms(self.until)}


# -- reading -------------------------------------------------------------------


@dataclass(frozen=True)
class TurnRow:
    """One shopper turn and what became of it."""

    id: int
    conversation_key: str
    channel: str
    text: str
    at: datetime  # in the shop's timezone
    status: str | None
    sentiment: float | None
    language: str
    reply_kind: str | None
    latency_ms: float | None
    handoff_reason: str | None
    started_handoff: bool = False
    tried: tuple[str, ...] = ()  # for a "not sure": the FAQ entries retrieval tried, best first
    vector: StoredVector | None = field(default=None, compare=False, repr=False)  # stored with the reply

    @property
    def day(self) -> str:
        return self.at.date().isoformat()


def _read_turns(db: Database, period: Period) -> list[TurnRow]:
    rows = db.execute(_TURNS_SQL + " ORDER BY m.id", period.sql_params()).fetchall()
    return [_turn_from_row(row, period.tz) for row in rows]


def _read_questions(db: Database, period: Period, cap: int) -> tuple[list[TurnRow], int]:
    """The most recent `cap` unanswered questions of the period, newest first, and how many there were."""
    params = period.sql_params()
    rows = db.execute(_QUESTIONS_SQL + " ORDER BY created_ms DESC, id DESC LIMIT :cap",
                      {**params, "cap": cap}).fetchall()
    total = len(rows)
    if total == cap:
        total = db.execute(f"SELECT COUNT(*) FROM ({_QUESTIONS_SQL}) questions", params).fetchone()[0]
    return [_turn_from_row(row, period.tz) for row in rows], total


def _turn_from_row(row: Row, tz: ZoneInfo) -> TurnRow:
    at = (_EPOCH + timedelta(milliseconds=row["created_ms"])).astimezone(tz)
    return TurnRow(
        id=row["id"], conversation_key=row["conversation_key"], channel=row["channel"], text=row["text"], at=at,
        status=row["status"], sentiment=row["sentiment"], language=str(row["language"] or "unknown"),
        reply_kind=row["reply_kind"], latency_ms=row["latency_ms"], handoff_reason=row["handoff_reason"],
        started_handoff=bool(row["started_handoff"]), tried=_tried(row["tried"]),
        vector=(StoredVector.from_blob(row["vector_encoder"], row["vector"])
                if "vector" in row.keys() and row["vector"] is not None and row["vector_encoder"] else None),
    )


def _tried(value: str | None) -> tuple[str, ...]:
    """FAQ ids from the SQL's JSON array; a trace without retrieval (or an odd one) gives none."""
    if not value:
        return ()
    try:
        ids = json.loads(value)
    except ValueError:
        return ()
    return tuple(str(faq_id) for faq_id in ids if isinstance(faq_id, str | int) and not isinstance(faq_id, bool))


def _unix_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# -- figures -------------------------------------------------------------------


def build_report(period: Period, turns: Sequence[TurnRow], upset_below: float,
                 enabled: frozenset[str] = frozenset()) -> InsightsReport:
    by_day: dict[str, list[TurnRow]] = defaultdict(list)
    for turn in turns:
        by_day[turn.day].append(turn)
    handoff_reasons = Counter(turn.handoff_reason or "unknown" for turn in turns if outcome(turn) == HANDED)
    languages = _by_count(Counter(turn.language for turn in turns))
    return InsightsReport(
        start=period.start.isoformat(), end=period.end.isoformat(), timezone=str(period.tz),
        totals=day_figures("total", turns, upset_below),
        days=tuple(day_figures(day, by_day.get(day, []), upset_below) for day in period.days()),
        handoff_reasons=_by_count(handoff_reasons), languages=languages,
        not_enabled=not_enabled_languages(languages, enabled, len(turns)),
        channels=_by_count(Counter(turn.channel for turn in turns)),
    )


def not_enabled_languages(languages: dict[str, int], enabled: frozenset[str],
                          turns: int) -> tuple[NotEnabledLanguage, ...]:
    """Languages shoppers wrote in that the shop does not answer in, most written first."""
    if not enabled or not turns:
        return ()
    return tuple(NotEnabledLanguage(code, LANGUAGE_NAMES.get(code, code), count, count / turns)
                 for code, count in languages.items() if code not in enabled and code != "unknown")


# What became of a turn: exactly one of these (see the module docstring).
HANDED = "handoffs"
OUTCOMES = {ReplyKind.ANSWER.value: "automated", ReplyKind.NOT_SURE.value: "not_sure",
            ReplyKind.NO_MATCH.value: "no_match", ReplyKind.HANDOFF.value: HANDED,
            ReplyKind.ERROR.value: "errors", ReplyKind.INFO.value: "commands"}


def outcome(turn: TurnRow) -> str:
    """The one figure a turn counts in; a message that started a handoff counts as handed over."""
    if turn.started_handoff:
        return HANDED
    if turn.reply_kind is None:
        return "with_agent" if turn.status == FORWARDED else "no_reply"
    return OUTCOMES.get(turn.reply_kind, "no_reply")


def day_figures(day: str, turns: Sequence[TurnRow], upset_below: float) -> DayFigures:
    counts = Counter(outcome(turn) for turn in turns)
    latencies = sorted(turn.latency_ms for turn in turns
                       if turn.reply_kind in BOT_REPLY_KINDS and turn.latency_ms is not None)
    moods = [turn.sentiment for turn in turns if turn.sentiment is not None]
    return DayFigures(
        day=day, turns=len(turns), commands=counts["commands"], automated=counts["automated"],
        handoffs=counts[HANDED], not_sure=counts["not_sure"], no_match=counts["no_match"],
        with_agent=counts["with_agent"], errors=counts["errors"], no_reply=counts["no_reply"],
        latency_p50_ms=nearest_rank(latencies, 50), latency_p95_ms=nearest_rank(latencies, 95),
        mood_average=sum(moods) / len(moods) if moods else None,
        upset=sum(1 for mood in moods if mood <= upset_below),
    )


def nearest_rank(ordered: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of sorted values: the smallest value with `percent`% at or below it."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _by_count(counts: Counter[str]) -> dict[str, int]:
    """Most frequent first, ties by name, so dashboards and tests see a stable order."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# -- unanswered questions --------------------------------------------------------


def normalise(text: str) -> str:
    """The form two messages must share to count as the same question."""
    return " ".join(text.split()).casefold()


def cluster_questions(questions: Sequence[TurnRow], encode: Encode | None, similarity: float, *,
                      encoder_id: str | None = None) -> list[QuestionCluster]:
    """Group questions by meaning (or identical text without `encode`); most asked first, then most recent.

    Identical texts (after `normalise`) weigh by how often they were asked; each has one vector,
    the one its turn stored when `encoder_id` made it, else encoded now.
    """
    asked: dict[str, list[TurnRow]] = defaultdict(list)
    for question in sorted(questions, key=lambda q: (q.at, q.id), reverse=True):
        key = normalise(question.text)
        if key:
            asked[key].append(question)
    keys = list(asked)
    vectors = _vectors([asked[key] for key in keys], encode, encoder_id) if encode is not None and keys else None
    if vectors is not None:
        tried = [frozenset(faq_id for q in asked[key] for faq_id in q.tried) for key in keys]
        labels = _labels(vectors, similarity, tried)
    else:
        labels = list(range(len(keys)))
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        members[int(label)].append(index)
    built = [_cluster([keys[i] for i in group], asked,
                      vectors[group] if vectors is not None else None) for group in members.values()]
    built.sort(key=lambda pair: (-pair[0].count, -pair[1].timestamp()))
    return [cluster for cluster, _ in built]


def _vectors(groups: list[list[TurnRow]], encode: Encode, encoder_id: str | None) -> np.ndarray:
    """One vector per group of identical questions: a stored one, or its newest text's encoded now.

    Encoded as the turn encodes (`normalize_text`), in small batches: the encoder's queue is
    shared with live turns, which then wait for one batch at most.
    """
    rows: list[np.ndarray | None] = [
        next((q.vector.values for q in group if q.vector is not None and q.vector.encoder == encoder_id), None)
        for group in groups]
    missing = [i for i, row in enumerate(rows) if row is None]
    texts = [normalize_text(groups[i][0].text) for i in missing]
    for start in range(0, len(missing), ENCODE_BATCH):
        encoded = np.asarray(encode(texts[start:start + ENCODE_BATCH]), dtype=np.float32)
        for i, vector in zip(missing[start:start + ENCODE_BATCH], encoded, strict=True):  # a row per text
            rows[i] = vector
    vectors = np.stack(rows)  # type: ignore[arg-type]  # every row is filled above
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _labels(vectors: np.ndarray, similarity: float, tried: Sequence[frozenset[str]]) -> list[int]:
    """Group labels by the module docstring's three rules: pair floor and FAQ entries first, then the average."""
    if len(vectors) < 2:
        return [0] * len(vectors)
    distances = np.clip(1.0 - vectors.astype(np.float64) @ vectors.T.astype(np.float64), 0.0, None)
    apart = 2.0  # farther than any threshold: these two are never in one group
    for i, j in _different_entries(tried):
        distances[i, j] = distances[j, i] = apart
    floor = _agglomerate(distances, 1.0 - (similarity - PAIR_SLACK), "complete")
    labels = np.zeros(len(vectors), dtype=np.int64)
    offset = 0
    for group in np.unique(floor):
        members = np.flatnonzero(floor == group)
        inner = _agglomerate(distances[np.ix_(members, members)], 1.0 - similarity, "average")
        labels[members] = inner + offset
        offset += int(inner.max()) + 1
    return labels.tolist()


def _different_entries(tried: Sequence[frozenset[str]]) -> list[tuple[int, int]]:
    """Pairs of questions the search read as about different FAQ entries: no entry tried in common."""
    known = [(index, ids) for index, ids in enumerate(tried) if ids]
    return [(i, j) for n, (i, first) in enumerate(known) for j, second in known[n + 1:] if not first & second]


def _agglomerate(distances: np.ndarray, threshold: float, linkage: str) -> np.ndarray:
    if len(distances) < 2:
        return np.zeros(len(distances), dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering  # sklearn is slow to import; only this needs it

    model = AgglomerativeClustering(metric="precomputed", linkage=linkage, distance_threshold=threshold,
                                    n_clusters=None)
    return model.fit_predict(distances)


def _cluster(keys: list[str], asked: dict[str, list[TurnRow]],
             vectors: np.ndarray | None) -> tuple[QuestionCluster, datetime]:
    """One cluster from its distinct questions (each a list of messages, newest first)."""
    messages = sorted((q for key in keys for q in asked[key]), key=lambda q: (q.at, q.id), reverse=True)
    weights = np.array([len(asked[key]) for key in keys], dtype=np.float64)
    medoid = keys[_medoid(vectors, weights)] if vectors is not None else keys[0]
    kinds = Counter(q.reply_kind for q in messages)
    cluster = QuestionCluster(
        representative=_display(asked[medoid][0].text),
        count=len(messages),
        conversations=len({q.conversation_key for q in messages}),
        languages=_by_count(Counter(q.language for q in messages)),
        examples=_examples(messages),
        first_seen=messages[-1].at.isoformat(timespec="seconds"),
        last_seen=messages[0].at.isoformat(timespec="seconds"),
        kinds={kind: kinds[kind] for kind in QUESTION_KINDS},
    )
    return cluster, messages[0].at


def _medoid(vectors: np.ndarray, weights: np.ndarray) -> int:
    """The question with the highest mean similarity to the cluster's other messages.

    Each distinct text counts as often as it was asked (its repeats have similarity 1),
    so the most common phrasing wins a tie.
    """
    total = weights.sum()
    if len(vectors) == 1 or total <= 1:
        return 0
    similarities = vectors @ vectors.T
    mean = (similarities @ weights - 1.0) / (total - 1.0)
    return int(np.argmax(mean))


def _examples(messages: Sequence[TurnRow]) -> tuple[str, ...]:
    seen: set[str] = set()
    examples: list[str] = []
    for message in messages:
        key = normalise(message.text)
        if key in seen:
            continue
        seen.add(key)
        examples.append(_display(message.text))
        if len(examples) == MAX_EXAMPLES:
            break
    return tuple(examples)


def _display(text: str) -> str:
    return " ".join(text.split())


# -- CSV -------------------------------------------------------------------------


def clusters_csv(clusters: Sequence[QuestionCluster]) -> str:
    """The clusters as CSV for a spreadsheet; shopper text cannot start a formula."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for rank, cluster in enumerate(clusters, start=1):
        languages = " ".join(f"{language}:{count}" for language, count in cluster.languages.items())
        writer.writerow([
            rank, cluster.count, cluster.conversations, safe_cell(cluster.representative), safe_cell(languages),
            safe_cell(" | ".join(cluster.examples)), safe_cell(cluster.first_seen), safe_cell(cluster.last_seen),
            cluster.kinds.get(ReplyKind.NO_MATCH.value, 0), cluster.kinds.get(ReplyKind.NOT_SURE.value, 0),
            cluster.kinds.get(ReplyKind.HANDOFF.value, 0),
        ])
    return out.getvalue()


def safe_cell(text: str) -> str:
    """Shopper text is hostile: a cell a spreadsheet would read as a formula gets a leading apostrophe."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text

