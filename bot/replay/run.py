"""Shadow replay: a merchant's past shopper messages through the whole pipeline, before going live.

Every message goes through `KefuApp.handle` exactly as a live one would (commands, language,
retrieval, sentiment, handoff, the configured responder), but into a throw-away database and
with nothing attached that could reach a shopper, an agent or a helpdesk: no channels, no HTTP
server, no handoff notifications. What the bot *would* have done is read back from that
database (the same traces the dashboard reads) and summarised in a `ReplayReport`.

A handoff is as final as it is live: the conversation's later messages are forwarded to the
(absent) agents, and the report counts them as "forwarded", not as answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo


from bot.app import KefuApp
from bot.concurrency import run_blocking
from bot.config import Config, TelegramConfig
from bot.errors import KefuError
from bot.insights import QuestionClusters, nearest_rank
from bot.messages import HandleResult, Message, ReplyKind, utc_now
from bot.replay.reading import ReplayInput, ReplayRow
from bot.store.engine import Database

log = logging.getLogger(__name__)

CHANNEL = "replay"
DEFAULT_CONCURRENCY = 8
LEAST_CONFIDENT = 20
MAX_GROUPS = 100
LOCAL_MODELS = ("transformers", "llama-cpp")  # one generation at a time: more waiting turns would be refused

Progress = Callable[[int, int], None]


class Outcome(StrEnum):
    """What became of one replayed message."""

    AUTOMATED = "automated"  # a confident FAQ answer, no handoff
    NOT_SURE = "not_sure"  # "did you mean…": the shopper would have had to pick
    NO_MATCH = "no_match"  # "I don't know that"
    HANDOFF = "handoff"  # this message handed the conversation to a person
    FORWARDED = "forwarded"  # written after a handoff: passed to the agents, the bot stayed silent
    INFO = "info"  # a command's answer (/start, /help, /lang …) or a message it cannot read
    ERROR = "error"  # the turn failed or timed out (the shopper would have got an apology)


_BY_KIND = {ReplyKind.ANSWER: Outcome.AUTOMATED, ReplyKind.NOT_SURE: Outcome.NOT_SURE,
            ReplyKind.NO_MATCH: Outcome.NO_MATCH, ReplyKind.HANDOFF: Outcome.HANDOFF, ReplyKind.INFO: Outcome.INFO,
            ReplyKind.ERROR: Outcome.ERROR}


@dataclass(frozen=True)
class ReplayedTurn:
    """One message of the file and what the bot would have done with it."""

    row: int
    text: str
    outcome: Outcome
    language: str
    faq_ids: tuple[str, ...] = ()
    confidence: float | None = None
    why: str = ""
    handoff_reason: str | None = None
    latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "outcome": self.outcome.value, "faq_ids": list(self.faq_ids)}


@dataclass(frozen=True)
class ReplayReport:
    """Everything the merchant reads after a replay; `turns` are in file order."""

    source: str
    shop: str
    responder: str
    conversations: int
    empty_rows: int
    limited: bool
    seconds: float
    turns: tuple[ReplayedTurn, ...]
    groups: QuestionClusters

    @property
    def messages(self) -> int:
        return len(self.turns)

    @property
    def outcomes(self) -> dict[str, int]:
        """Every outcome, in a fixed order, zeros included."""
        counts = Counter(turn.outcome for turn in self.turns)
        return {outcome.value: counts[outcome] for outcome in Outcome}

    @property
    def handoff_reasons(self) -> dict[str, int]:
        counts = Counter(turn.handoff_reason or "unknown" for turn in self.turns if turn.outcome == Outcome.HANDOFF)
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    @property
    def languages(self) -> dict[str, dict[str, int]]:
        """Per detected language: messages and each outcome, most messages first."""
        by_language: dict[str, Counter[str]] = defaultdict(Counter)
        for turn in self.turns:
            by_language[turn.language][turn.outcome.value] += 1
        ordered = sorted(by_language.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        return {language: {"messages": sum(counts.values()), **{o.value: counts[o.value] for o in Outcome}}
                for language, counts in ordered}

    @property
    def least_confident(self) -> tuple[ReplayedTurn, ...]:
        """The automated answers most worth a look: lowest confidence first (unknown confidence before all)."""
        answers = [turn for turn in self.turns if turn.outcome == Outcome.AUTOMATED]
        answers.sort(key=lambda turn: (turn.confidence is not None, turn.confidence or 0.0, turn.row))
        return tuple(answers[:LEAST_CONFIDENT])

    @property
    def latency_ms(self) -> tuple[float | None, float | None]:
        """p50 and p95 (nearest rank) of the bot's replies, from starting on a message to storing the reply."""
        measured = sorted(turn.latency_ms for turn in self.turns if turn.latency_ms is not None)
        return nearest_rank(measured, 50), nearest_rank(measured, 95)

    def share(self, count: int) -> float:
        return count / self.messages if self.messages else 0.0

    def to_json(self) -> dict[str, Any]:
        p50, p95 = self.latency_ms
        return {
            "source": self.source, "shop": self.shop, "responder": self.responder, "messages": self.messages,
            "conversations": self.conversations, "empty_rows": self.empty_rows, "limited": self.limited,
            "seconds": round(self.seconds, 2), "outcomes": self.outcomes,
            "shares": {name: round(self.share(count), 4) for name, count in self.outcomes.items()},
            "handoff_reasons": self.handoff_reasons, "languages": self.languages,
            "latency_p50_ms": p50, "latency_p95_ms": p95,
            "least_confident": [turn.to_json() for turn in self.least_confident],
            "unanswered_groups": self.groups.to_json(), "turns": [turn.to_json() for turn in self.turns],
        }


def replay_config(config: Config, workdir: Path) -> Config:
    """The merchant's config with its storage in `workdir` and nothing that could reach a person or system.

    The search index stays where it is: it is a content-addressed cache that processes share safely,
    and reusing it spares re-encoding the FAQ.
    """
    return dataclasses.replace(
        config,
        storage=dataclasses.replace(config.storage, database=workdir / "replay.db"),
        handoff=dataclasses.replace(config.handoff, notify=None),
        webhook=dataclasses.replace(config.webhook, enabled=False, outgoing=None),
        telegram=TelegramConfig(),
        metrics=dataclasses.replace(config.metrics, enabled=False),
    )


def concurrency_for(config: Config, wanted: int = DEFAULT_CONCURRENCY) -> int:
    """Conversations replayed at once; a local model generates one reply at a time and refuses a long queue."""
    if wanted < 1:
        raise KefuError(f"concurrency must be at least 1, not {wanted}")
    if config.responder.backend in LOCAL_MODELS:
        return min(wanted, config.responder.max_waiting + 1)
    return wanted


async def replay(config: Config, messages: ReplayInput, *, concurrency: int = DEFAULT_CONCURRENCY,
                 progress: Progress | None = None) -> ReplayReport:
    """Replay the messages on a fresh app over a temporary database, which is deleted afterwards."""
    workdir = Path(await run_blocking(tempfile.mkdtemp, prefix="kefu-replay-"))
    try:
        shadow = replay_config(config, workdir)
        async with KefuApp(shadow, channels=[], serve_http=False) as app:
            return await replay_on(app, messages, concurrency=concurrency_for(config, concurrency),
                                   progress=progress)
    finally:
        await run_blocking(shutil.rmtree, workdir, True)


async def replay_on(app: KefuApp, messages: ReplayInput, *, concurrency: int = DEFAULT_CONCURRENCY,
                    progress: Progress | None = None) -> ReplayReport:
    """Replay on a started app (its database must be a throw-away one: the messages stay in it)."""
    assert app.insights is not None, "the app is started"
    zone = ZoneInfo(app.config.console.timezone)
    # The first search pays for warming the encoders; without this the first batch's latency shows it.
    await app.search_faq("hello", language=None, limit=1)
    started, clock = utc_now(), time.perf_counter()
    conversations = group_conversations(messages.rows)
    results = await _run_conversations(app, conversations, concurrency, progress, total=len(messages.rows))
    stored = [inbound_id for _, inbound_id, _ in results if inbound_id is not None]
    facts = await app.store.read(_read_facts, stored)
    turns = tuple(sorted((_turn(row, result, facts.get(inbound_id, {}) if inbound_id is not None else {})
                          for row, inbound_id, result in results), key=lambda turn: turn.row))
    groups = await app.insights.unanswered(started.astimezone(zone).date(), utc_now().astimezone(zone).date(),
                                           limit=MAX_GROUPS)
    return ReplayReport(
        source=messages.path.name, shop=app.config.shop.name, responder=app.config.responder.backend,
        conversations=len(conversations), empty_rows=messages.empty_rows, limited=messages.limited,
        seconds=time.perf_counter() - clock, turns=turns, groups=groups,
    )


def group_conversations(rows: Sequence[ReplayRow]) -> list[tuple[str, list[ReplayRow]]]:
    """Rows by conversation, each in file order, conversations in order of first appearance.

    A row without a conversation is one of its own; ids are prefixed so a file's "row-3" cannot merge with one.
    """
    grouped: dict[str, list[ReplayRow]] = {}
    for row in rows:
        key = f"c:{row.conversation}" if row.conversation is not None else f"row:{row.row}"
        grouped.setdefault(key, []).append(row)
    return list(grouped.items())


_Result = tuple[ReplayRow, int | None, HandleResult | KefuError]


async def _run_conversations(app: KefuApp, conversations: list[tuple[str, list[ReplayRow]]], concurrency: int,
                             progress: Progress | None, *, total: int) -> list[_Result]:
    """Each conversation in order; up to `concurrency` conversations at once (a shared queue of them)."""
    pending: Iterator[tuple[str, list[ReplayRow]]] = iter(conversations)
    results: list[_Result] = []

    async def worker() -> None:
        for conversation, rows in pending:  # no await between taking and starting: each is taken once
            for row in rows:
                results.append(await _handle(app, conversation, row))
                if progress is not None:
                    progress(len(results), total)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(conversations))):
            group.create_task(worker())
    return results


async def _handle(app: KefuApp, conversation: str, row: ReplayRow) -> _Result:
    message = Message(channel=CHANNEL, conversation=conversation, user_id=conversation, text=row.text,
                      external_id=str(row.row))
    try:
        result = await app.handle(message)
    except KefuError as exc:  # e.g. overloaded: nothing was stored for this message
        log.warning("replay.turn_refused row=%d error=%s", row.row, type(exc).__name__)
        return row, None, exc
    return row, result.inbound_id, result


def _read_facts(db: Database, inbound_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per inbound message: its turn's trace (with the reply, or on the message when forwarded), the latency
    and the handoff reason (from the trace, else from the handoff the message caused: commands such as /human)."""
    facts: dict[int, dict[str, Any]] = {}
    for start in range(0, len(inbound_ids), 500):
        chunk = inbound_ids[start:start + 500]
        rows = db.execute(f"""
            SELECT m.id, COALESCE(r.meta, m.meta) AS meta, r.latency_ms,
                   (SELECT t.reason FROM handoff_transitions t
                     WHERE t.conversation_key = m.conversation_key AND t.message_id = m.id
                       AND t.to_state = 'waiting_agent' ORDER BY t.id LIMIT 1) AS transition_reason
            FROM messages m
            LEFT JOIN messages r
                   ON r.id = (SELECT MIN(o.id) FROM messages o WHERE o.reply_to = m.id AND o.direction = 'out')
            WHERE m.id IN ({", ".join("?" for _ in chunk)})""", chunk).fetchall()
        for row in rows:
            facts[row["id"]] = {"trace": _json(row["meta"]), "latency_ms": row["latency_ms"],
                                "transition_reason": row["transition_reason"]}
    return facts


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _turn(row: ReplayRow, result: HandleResult | KefuError, facts: dict[str, Any]) -> ReplayedTurn:
    trace = facts.get("trace", {})
    if isinstance(result, KefuError):
        return ReplayedTurn(row=row.row, text=row.text, outcome=Outcome.ERROR, language="unknown",
                            why=f"not replayed: {result}")
    reply = result.reply
    language = turn_language(trace, reply.language if reply else None)
    if reply is None:
        return ReplayedTurn(row=row.row, text=row.text, outcome=Outcome.FORWARDED, language=language,
                            why="forwarded to the agents: a person handles this conversation since an earlier "
                                "message")
    outcome = _BY_KIND.get(reply.kind, Outcome.INFO)
    handoff = trace.get("handoff") if isinstance(trace.get("handoff"), dict) else {}
    reason = (handoff.get("reason") or facts.get("transition_reason")) if outcome == Outcome.HANDOFF else None
    return ReplayedTurn(row=row.row, text=row.text, outcome=outcome, language=language, faq_ids=reply.faq_ids,
                        confidence=reply.confidence, why=reply.why, handoff_reason=reason,
                        latency_ms=facts.get("latency_ms"))


def turn_language(trace: dict[str, Any], fallback: str | None) -> str:
    """The language detected for the message (`detected` when the detector records it apart from the
    language answered in), else the turn's language, else the reply's, else "unknown"."""
    language = trace.get("language")
    if isinstance(language, dict):
        for key in ("detected", "language"):
            if isinstance(language.get(key), str) and language[key]:
                return language[key]
    return fallback or "unknown"
