"""The data that crosses between channels and the core.

Adapters import this module (and the plain-data config) only: a channel turns its
platform's update into one `Message`, hands it to a `Gateway`, and turns the
`Reply` it gets back into platform calls. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiohttp import web

if TYPE_CHECKING:  # bot.console_access needs the store, which needs these messages
    from bot.console_access import ConsoleAccess


class Role(StrEnum):
    """Who wrote a message."""

    SHOPPER = "shopper"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class ReplyKind(StrEnum):
    """Why the bot said what it said; channels may render kinds differently."""

    ANSWER = "answer"  # a confident FAQ match
    NOT_SURE = "not_sure"  # several candidates: ask the shopper to pick
    NO_MATCH = "no_match"  # nothing relevant: say so, offer topics
    HANDOFF = "handoff"  # the bot hands the shopper to a person
    INFO = "info"  # the answer to a command (/start, /help, /lang, /reset) or to a message it cannot read
    AGENT = "agent"  # written by a human agent
    SYSTEM = "system"  # notices such as "an agent joined"
    ERROR = "error"  # the turn failed or ran out of time: an apology stored in the message's place


class HandoffState(StrEnum):
    """Who answers a conversation: the bot, nobody yet (queued for a person), a person, or nobody (closed)."""

    BOT = "bot"
    WAITING_AGENT = "waiting_agent"
    AGENT = "agent"
    CLOSED = "closed"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def conversation_key(channel: str, conversation: str) -> str:
    """The store's id for a conversation: unique across channels."""
    return f"{channel}:{conversation}"


@dataclass(frozen=True)
class Message:
    """One normalized inbound message, whatever channel it came from.

    `external_id` is the channel's own id for the message; together with `channel`
    it makes redelivery idempotent. Without one, every delivery is a new message.
    """

    channel: str
    conversation: str
    user_id: str
    text: str
    external_id: str | None = None
    display_name: str | None = None
    language_hint: str | None = None  # the channel's locale: a prior when the text is unclear
    language_choice: str | None = None  # the shopper chose this language: kept until they choose again
    role: Role = Role.SHOPPER
    timestamp: datetime = field(default_factory=utc_now)
    media: str | None = None  # what else was sent: "photo", "voice", "sticker", "document", "location"…
    # A logged-in shopper's id in the shop, with the shop's HMAC of it (checked by the core, bot/orders).
    customer_id: str | None = None
    customer_hash: str | None = None

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.channel, self.conversation)


@dataclass(frozen=True)
class Link:
    """A link a reply offers (a product page): channels show it as a button where they can."""

    title: str
    url: str


@dataclass(frozen=True)
class Reply:
    """What the core answers; `why` and `faq_ids` let a merchant audit the answer."""

    channel: str
    conversation: str
    user_id: str
    text: str
    language: str
    kind: ReplyKind
    quick_replies: tuple[str, ...] = ()
    faq_ids: tuple[str, ...] = ()
    confidence: float | None = None
    why: str = ""
    message_id: int | None = None  # the store's id of this outbound message
    in_reply_to: int | None = None  # the store's id of the inbound message
    created_at: datetime = field(default_factory=utc_now)
    links: tuple[Link, ...] = ()  # also written in `text`, so a channel without buttons loses nothing
    # A long reply goes as several messages: how many of them the chat app took on an earlier attempt
    # (recorded with Gateway.record_parts_sent), so a retry, also after a restart, sends only the rest.
    parts_sent: int = 0

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.channel, self.conversation)

    def to_json(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies every value, a measurable share of a turn under load.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "parts_sent"}
        data["kind"] = self.kind.value
        data["quick_replies"] = list(self.quick_replies)
        data["faq_ids"] = list(self.faq_ids)
        data["created_at"] = self.created_at.isoformat()
        data["links"] = [{"title": link.title, "url": link.url} for link in self.links]
        return data


@dataclass(frozen=True)
class HandleResult:
    """The outcome of handing one message to the core.

    `reply` is None while a person handles the conversation: the message was
    stored and forwarded to the agents, and the bot stays silent.
    """

    reply: Reply | None
    inbound_id: int
    duplicate: bool  # the message was seen before; `reply` is the stored one
    state: HandoffState = HandoffState.BOT  # who answers the conversation after this message


@dataclass(frozen=True)
class TranscriptEntry:
    id: int
    direction: str  # "in" or "out"
    role: Role
    text: str
    created_at: str
    language: str | None
    external_id: str | None
    kind: str | None
    faq_ids: tuple[str, ...]
    confidence: float | None
    latency_ms: float | None
    status: str | None
    sentiment: float | None = None  # shopper messages: -1 (furious) .. +1
    media: str | None = None  # shopper messages: what was sent besides text
    why: str | None = None  # bot replies: why it answered so
    faq_tried: tuple[tuple[str, float], ...] = ()  # bot replies: the FAQ entries retrieval ranked, with scores
    links: tuple[Link, ...] = ()  # bot replies: the product pages offered
    quick_replies: tuple[str, ...] = ()  # bot replies: the suggested questions offered as buttons
    error: str | None = None  # replies: why the channel did not deliver it (WhatsApp's 24-hour window…)


@dataclass(frozen=True)
class Receipt:
    """What a chat app reports of a reply it took: sent, delivered, read, played or failed (with why)."""

    status: str
    at: datetime
    error: str | None = None


@dataclass(frozen=True)
class Transcript:
    conversation_key: str
    channel: str
    conversation: str
    user_id: str
    display_name: str | None
    language: str | None
    created_at: str
    messages: tuple[TranscriptEntry, ...]
    state: HandoffState = HandoffState.BOT
    agent: str | None = None
    mood: float | None = None
    orders: tuple[dict[str, Any], ...] = ()  # orders verified in the conversation (no contact data), newest first

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        for message in data["messages"]:
            message["role"] = str(message["role"])
            message["faq_ids"] = list(message["faq_ids"])
            message["faq_tried"] = [{"faq_id": faq_id, "score": score} for faq_id, score in message["faq_tried"]]
            message["links"] = list(message["links"])
            message["quick_replies"] = list(message["quick_replies"])
        return data


@dataclass(frozen=True)
class HandoffSummary:
    """One conversation as an agent's queue shows it."""

    channel: str
    conversation: str
    user_id: str
    display_name: str | None
    language: str | None
    state: HandoffState
    agent: str | None
    since: str | None  # when it entered its current state
    mood: float | None
    reason: str | None  # why it was last moved (explicit_request, upset, claimed, ...)
    detail: str | None
    last_shopper_message: str | None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        return data


@dataclass(frozen=True)
class HandoffView:
    """Everything an agent needs to take a conversation over: who, why, and the whole transcript."""

    summary: HandoffSummary
    transcript: Transcript
    transitions: tuple[Mapping[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.summary.to_json(), "transitions": [dict(t) for t in self.transitions],
                "messages": self.transcript.to_json()["messages"], "orders": [dict(o) for o in self.transcript.orders]}


@runtime_checkable
class AgentDesk(Protocol):
    """What the core offers channels that let human agents work handoffs.

    Raises `bot.errors.ConversationNotFoundError` for an unknown conversation and
    `bot.errors.HandoffConflictError` when the state does not allow the action.
    """

    async def handoffs(self, states: tuple[HandoffState, ...]) -> list[HandoffSummary]: ...

    async def handoff_view(self, channel: str, conversation: str) -> HandoffView: ...

    async def claim(self, channel: str, conversation: str, agent: str) -> HandoffSummary: ...

    async def agent_reply(self, channel: str, conversation: str, agent: str, text: str) -> Reply: ...

    async def release(self, channel: str, conversation: str, agent: str) -> HandoffSummary: ...

    async def close(self, channel: str, conversation: str, agent: str) -> HandoffSummary: ...


@runtime_checkable
class PrivacyDesk(Protocol):
    """What the core offers for shoppers' data requests (access, erasure) and the audit log (bot/privacy).

    The subject is `conversation` ("channel/id") or `user` ("channel:user_id", all their conversations on
    that channel), exactly one. Raises `bot.errors.InvalidRequestError` for a malformed subject,
    `ConversationNotFoundError` when nothing is stored for it, and `HandoffConflictError` when erasing a
    conversation a person is handling or the bot is still answering, unless `force`.
    """

    async def privacy_export(self, *, conversation: str | None, user: str | None, actor: str
                             ) -> Mapping[str, Any]:
        """Everything stored about the subject, as JSON (audited)."""

    async def privacy_erase(self, *, conversation: str | None, user: str | None, actor: str,
                            force: bool = False) -> Mapping[str, Any]:
        """Delete everything stored about the subject (audited); the counts of what went."""

    async def audit_log(self, *, limit: int, conversation: str | None = None, user: str | None = None,
                        before: int | None = None) -> Mapping[str, Any]:
        """The newest audit entries first, only the subject's when one is named."""


@dataclass(frozen=True)
class FaqSuggestion:
    """An FAQ entry an agent can insert into a reply, in the shopper's language when the merchant wrote it."""

    faq_id: str
    question: str
    answer: str
    language: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@runtime_checkable
class ConsoleBackend(AgentDesk, Protocol):
    """What the core offers the web console beyond the agent desk: FAQ lookup, live changes, the dashboard."""

    async def search_faq(self, query: str, *, language: str | None, limit: int) -> list[FaqSuggestion]: ...

    def console_access(self) -> ConsoleAccess:
        """The console's sessions and sign-in limit, kept in the store (shared by every worker)."""

    def changes_version(self) -> int:
        """Grows with every committed change to conversations (messages, handoffs)."""

    async def wait_for_change(self, after: int, timeout: float) -> int:
        """The version once it is past `after`, or the current one after `timeout` seconds."""

    async def insights_report(self, start: date, end: date) -> Mapping[str, Any]:
        """The dashboard's figures for the days start..end (inclusive), as JSON."""

    async def unanswered_questions(self, start: date, end: date) -> Mapping[str, Any]:
        """Low-confidence and handed-off questions grouped by meaning, biggest group first, as JSON."""

    async def unanswered_csv(self, start: date, end: date) -> str:
        """The same groups as CSV for a spreadsheet."""


class Gateway(Protocol):
    """What the core offers a channel adapter."""

    async def handle(self, message: Message) -> HandleResult:
        """Store, process (once) and answer a message."""

    async def accept(self, message: Message) -> HandleResult:
        """Store a message and answer it in the background (the reply is pushed through `Channel.deliver`)."""

    async def transcript(self, channel: str, conversation: str) -> Transcript | None:
        """The whole conversation, or None when it does not exist."""

    async def last_shopper_message_at(self, channel: str, conversation: str) -> datetime | None:
        """When the shopper last wrote (None: never): chat apps limit what may be sent long after."""

    async def record_channel_message_id(self, message_id: int, channel_message_id: str) -> None:
        """The chat app's own id for a reply it took, which its receipts name."""

    async def record_parts_sent(self, message_id: int, parts: int) -> None:
        """The first `parts` messages of a long reply went out: its next attempt starts after them."""

    async def record_receipt(self, channel: str, channel_message_id: str, receipt: Receipt) -> bool:
        """A receipt for a sent reply (sent, delivered, read, failed); False when no reply has that id."""

    async def release_held(self, channel: str, conversation: str) -> int:
        """The shopper wrote again: replies held for them are sent now, in their order."""

    async def resend_sent_reply(self, channel: str, channel_message_id: str, reason: str, *, hold: bool) -> bool:
        """A reply the app took and then refused (a late failed receipt): sent again, or with `hold` when the
        shopper writes again (WhatsApp's 24 hours)."""

    async def wait_to_lead(self, role: str) -> None:
        """Return once this worker is the one doing `role` for all (at once with a single worker): a job only
        one may do at a time, such as polling Telegram. Another worker takes it over when this one dies."""

    def leads(self, role: str) -> bool:
        """Whether this worker still does `role` (False once its lease may have lapsed: stop, wait again)."""

    async def shared_secret(self, name: str) -> bytes | None:
        """With several workers on one database: a random secret they all share (made once, kept there).
        None for a single worker, whose channel keeps its own (the web chat's secret_file)."""

    def publish(self, topic: str, payload: str) -> None:
        """Tell this channel's instances on every kefu worker something (a web chat visitor's new reply)."""

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        """Hear what `publish` sent on any worker, this one's at once (on the event loop)."""

    def health(self) -> Mapping[str, Any]:
        """Facts for a health endpoint."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the core tries to push a reply through a channel."""

    max_attempts: int = 8
    backoff_seconds: float = 2.0  # doubled after every failed attempt, capped at an hour
    conversation: str | None = None  # only this conversation's replies (the terminal serves one shopper)
    poll_seconds: float | None = None  # also look for replies other processes queued (agents in `kefu serve`)


class Channel(Protocol):
    """A running channel adapter, started and stopped by the app.

    `delivery` is set for channels that push replies themselves (outgoing
    webhook, chat apps): the core then records each reply as a pending delivery
    and calls `deliver` until it succeeds or the policy gives up, also after a
    restart. `deliver` raises `bot.errors.DeliveryError` on failure.
    """

    name: str
    delivery: DeliveryPolicy | None

    async def start(self) -> None: ...

    async def wait(self) -> None:
        """Return when the channel ends by itself (the console at end of input); servers never do."""

    async def stop(self) -> None: ...

    async def deliver(self, reply: Reply) -> None: ...


def split_text(text: str, limit: int) -> list[str]:
    """A reply in parts of at most `limit` characters (chat apps' message limits): cut at paragraphs,
    then lines, then words."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0) or max(window.rfind(" "), 0) or limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


# What kefu's HTTP server offers channels that receive webhooks: paths whose senders batch more than
# `[http] max_body_bytes` allows (WhatsApp: up to 3 MB a POST) register their limit here, and find the
# raw body, read whole within the body deadline, in request[RAW_BODY].
BODY_LIMITS = web.AppKey("kefu_body_limits", dict)
RAW_BODY = web.RequestKey("kefu_raw_body", bytes)
