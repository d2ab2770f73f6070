"""When a person should take over, and who may move a conversation where.

Everything here is pure: `decide()` turns what a turn learned into a decision
with a reason, `next_state()` is the state machine, `BusinessHours` knows when
the team is in. The store applies transitions atomically; the pipeline and the
agent desk call these to know what to apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.cues import PhraseMatcher
from bot.errors import HandoffConflictError
from bot.messages import HandoffState
from knowledge.faq import FaqEntry


UPSET_AFTER_NEGATIVE_MESSAGES = 2  # without anger cues, one negative message alone is a problem to answer


class HandoffReason(StrEnum):
    EXPLICIT_REQUEST = "explicit_request"  # "human please", "转人工"
    COMMAND = "command"  # a channel command such as /human
    UPSET = "upset"  # the conversation's rolling mood fell below the threshold
    UNCONFIDENT = "unconfident"  # the bot could not answer confidently several turns in a row
    FAQ_FLAGGED = "faq_flagged"  # the matched FAQ entry says `handoff: true`
    KEYWORD = "keyword"  # one of the merchant's handoff keywords
    ORDER = "order"  # an order needs a person: a stuck parcel, delivered but not received, a change request


class Action(StrEnum):
    HANDOFF = "handoff"  # the bot queues the conversation for a person
    CLAIM = "claim"  # an agent takes it (from the queue, or straight from the bot)
    RELEASE = "release"  # back to the bot
    CLOSE = "close"
    REOPEN = "reopen"  # the shopper writes again after it was closed
    LEAVE = "leave"  # the shopper goes back to the bot (/bot, /reset) instead of waiting for a person


_MOVES: dict[Action, tuple[frozenset[HandoffState], HandoffState]] = {
    Action.HANDOFF: (frozenset({HandoffState.BOT}), HandoffState.WAITING_AGENT),
    Action.CLAIM: (frozenset({HandoffState.BOT, HandoffState.WAITING_AGENT}), HandoffState.AGENT),
    Action.RELEASE: (frozenset({HandoffState.WAITING_AGENT, HandoffState.AGENT}), HandoffState.BOT),
    Action.CLOSE: (frozenset({HandoffState.BOT, HandoffState.WAITING_AGENT, HandoffState.AGENT}), HandoffState.CLOSED),
    Action.REOPEN: (frozenset({HandoffState.CLOSED}), HandoffState.BOT),
    Action.LEAVE: (frozenset({HandoffState.WAITING_AGENT, HandoffState.AGENT}), HandoffState.BOT),
}


def next_state(action: Action, current: HandoffState, *, holder: str | None, actor: str) -> HandoffState:
    """The state after `action`, or HandoffConflictError saying why it is not allowed now.

    An agent may act only on a conversation nobody else holds: claiming, releasing
    or closing one that another agent holds is a conflict, not a takeover. The shopper
    may always leave (their conversation, their choice); the agent is told.
    """
    allowed, target = _MOVES[action]
    shoppers_move = action in (Action.REOPEN, Action.LEAVE)
    if current == HandoffState.AGENT and holder and holder != actor and not shoppers_move:
        raise HandoffConflictError(f"the conversation is held by agent '{holder}'", current.value, holder)
    if current not in allowed:
        raise HandoffConflictError(f"cannot {action.value} a conversation that is {current.value}", current.value,
                                   holder)
    return target


@dataclass(frozen=True)
class BusinessHours:
    """When agents are in, in the shop's time zone; outside them a handoff says when to expect an answer."""

    timezone: str
    days: frozenset[int]  # 0 = Monday
    opens: time
    closes: time

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self._zone())
        return local.weekday() in self.days and self.opens <= local.time().replace(tzinfo=None) < self.closes

    def next_opening(self, now: datetime) -> datetime:
        """The next time the team is in (`now` itself when open), in the shop's time zone."""
        local = now.astimezone(self._zone())
        if self.is_open(now):
            return local
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            start = datetime.combine(day, self.opens, tzinfo=self._zone())
            if day.weekday() in self.days and start > local:
                return start
        raise ValueError("business hours have no open day")


@dataclass(frozen=True)
class HandoffPolicy:
    """The merchant's handoff settings (config [handoff])."""

    enabled: bool = True
    explicit_requests: bool = True
    commands: tuple[str, ...] = ("/human", "/agent")
    mood_threshold: float | None = -0.5  # rolling mood at or below this hands over; None: never
    unconfident_turns: int = 3  # 0: never
    faq_flags: bool = True
    keywords: tuple[str, ...] = ()
    agent_wait_seconds: float = 300.0
    business_hours: BusinessHours | None = None  # None: agents answer at any time


@dataclass(frozen=True)
class HandoffSignals:
    """What one turn learned that bears on handing over."""

    text: str
    mood: float | None  # rolling mood of the conversation, this message included
    human_request: str | None  # the phrase that asked for a person, if any
    unconfident_streak: int  # turns in a row, this one included, the bot could not answer confidently
    flagged_faq: str | None  # id of the confidently matched entry that says handoff: true
    anger: tuple[str, ...] = ()  # this message's anger cues: profanity, a threat, shouting, "???"
    negative_messages: int = 1  # negative shopper messages in the mood window, this one included


@dataclass(frozen=True)
class HandoffDecision:
    reason: HandoffReason
    detail: str


def decide(signals: HandoffSignals, policy: HandoffPolicy) -> HandoffDecision | None:
    """Hand over, and why; None keeps the bot answering. The first matching trigger wins."""
    if not policy.enabled:
        return None
    text = signals.text.strip()
    command = text.split(maxsplit=1)[0].lower() if text else ""
    if command in policy.commands:
        return HandoffDecision(HandoffReason.COMMAND, f"the shopper sent {command}")
    if policy.explicit_requests and signals.human_request:
        return HandoffDecision(HandoffReason.EXPLICIT_REQUEST, f"the shopper asked for a person: '{signals.human_request}'")
    keyword = matched_keyword(text, policy.keywords)
    if keyword:
        return HandoffDecision(HandoffReason.KEYWORD, f"the message contains the handoff keyword '{keyword}'")
    if policy.faq_flags and signals.flagged_faq:
        return HandoffDecision(HandoffReason.FAQ_FLAGGED, f"FAQ '{signals.flagged_faq}' is marked handoff: true")
    if policy.mood_threshold is not None and signals.mood is not None and signals.mood <= policy.mood_threshold:
        # A problem described calmly ("the zip broke, still under warranty?") scores negative too, but
        # needs its answer, not a person: a low mood hands over with anger in the message, or when the
        # shopper stays negative over several messages.
        if signals.anger:
            return HandoffDecision(HandoffReason.UPSET, f"the conversation's mood {signals.mood:+.2f} is at or "
                                   f"below {policy.mood_threshold:+.2f}, with {', '.join(signals.anger)}")
        if signals.negative_messages >= UPSET_AFTER_NEGATIVE_MESSAGES:
            return HandoffDecision(HandoffReason.UPSET, f"the conversation's mood {signals.mood:+.2f} is at or "
                                   f"below {policy.mood_threshold:+.2f} after {signals.negative_messages} negative "
                                   "messages")
    if policy.unconfident_turns and signals.unconfident_streak >= policy.unconfident_turns:
        return HandoffDecision(HandoffReason.UNCONFIDENT,
                               f"{signals.unconfident_streak} turns in a row without a confident answer")
    return None


def faq_answers_the_wording(cue: str, entry: FaqEntry, asks_for_person: Callable[[str], str | None]) -> bool:
    """The confidently matched entry lists the shopper's cue among its own questions ("are you a bot?",
    "人工客服什么时候在？") and is not the shop's way of reaching a person.

    Such a message is a question about the service that the merchant wrote an answer for, not a request
    to hand over. An entry most of whose phrasings ask for a person ("talk to a human", "agent please")
    is how the shop says "we'll connect you": that shopper is better served by the handoff itself.
    """
    questions = [question.casefold() for _, question in entry.all_questions()]
    if not any(cue.casefold() in question for question in questions):
        return False
    asking = sum(1 for question in questions if asks_for_person(question))
    return 2 * asking < len(questions)


def matched_keyword(text: str, keywords: tuple[str, ...]) -> str | None:
    """Whole words in spaced scripts ("sue" is not in "issue"), substrings in Chinese/Japanese/Thai."""
    return PhraseMatcher(keywords).find(text) if keywords else None
