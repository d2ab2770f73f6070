"""The human side of a handoff: what agents are told, what shoppers are told, and the agents' actions.

`HandoffNotices` writes the texts and notification payloads; `Desk` is the core's
`AgentDesk` (claim, reply, release, close) and owns the background task that tells
queued shoppers when to expect a person if nobody claims them in time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from bot.config import HandoffConfig
from bot.errors import ConversationNotFoundError
from bot.handoff import Action, BusinessHours, HandoffDecision, HandoffPolicy
from bot.handoff.store import HandoffStore, QueuedEvent
from bot.messages import HandoffState, HandoffSummary, HandoffView, Reply, ReplyKind, conversation_key, utc_now
from bot.metrics import Metrics
from bot.responder import Draft
from bot.store import ConversationState, Store
from bot.texts import Texts
from knowledge.search import Hit

log = logging.getLogger(__name__)

SUMMARY_MESSAGES = 6
WATCH_INTERVAL_MAX_SECONDS = 30.0
# Appends one audit entry (actor, action, conversation key, counts): bot.privacy.PrivacyService.record_action.
AuditHook = Callable[[str, str, str, dict[str, int] | None], Awaitable[None]]


def policy_from_config(config: HandoffConfig) -> HandoffPolicy:
    hours = None
    if config.business_hours is not None:
        spec = config.business_hours
        hours = BusinessHours(spec.timezone, frozenset(spec.days), time.fromisoformat(spec.opens),
                              time.fromisoformat(spec.closes))
    return HandoffPolicy(
        enabled=config.enabled,
        explicit_requests=config.explicit_requests,
        commands=config.commands,
        mood_threshold=None if config.mood_threshold <= -1.0 else config.mood_threshold,
        unconfident_turns=config.unconfident_turns,
        faq_flags=config.faq_flags,
        keywords=config.keywords,
        agent_wait_seconds=config.agent_wait_seconds,
        business_hours=hours,
    )


class HandoffNotices:
    """Texts for shoppers and events for agents; `wake` nudges the notifier workers after a commit."""

    def __init__(self, *, store: Store, texts: Texts, policy: HandoffPolicy, targets: Sequence[str],
                 wake: Callable[[], None], clock: Callable[[], datetime] = utc_now):
        self._store = store
        self._texts = texts
        self.policy = policy
        self.targets = tuple(targets)
        self.wake = wake
        self._clock = clock

    def outside_hours(self) -> bool:
        hours = self.policy.business_hours
        return hours is not None and not hours.is_open(self._clock())

    def opens(self, language: str) -> str:
        """When the team is back, as the shopper reads it: "Monday 09:00 (Europe/Berlin)"."""
        hours = self.policy.business_hours
        assert hours is not None
        at = hours.next_opening(self._clock())
        names, _ = self._texts.get("weekdays", language)
        day = [name.strip() for name in names.split(",")][at.weekday()]
        return f"{day} {at:%H:%M} ({hours.timezone})"

    def text(self, key: str, language: str, **values: str) -> tuple[str, str]:
        return self._texts.get(key, language, **values)

    def handoff_draft(self, language: str, decision: HandoffDecision, *, lead: str = "",
                      faq_ids: tuple[str, ...] = ()) -> Draft:
        """The shopper's notice; `lead` (a flagged FAQ entry's answer) comes first so they learn what it says."""
        if self.outside_hours():
            text, lang = self._texts.get("handoff_after_hours", language, opens=self.opens(language))
        else:
            text, lang = self._texts.get("handoff", language)
        return Draft(text=f"{lead.strip()}\n\n{text}" if lead.strip() else text, language=lang,
                     kind=ReplyKind.HANDOFF, faq_ids=faq_ids,
                     why=f"handed to a person: {decision.reason.value} ({decision.detail})")

    async def requested_event(self, conversation: ConversationState, decision: HandoffDecision, *,
                              mood: float | None, hits: list[Hit], order: Mapping[str, Any] | None = None
                              ) -> QueuedEvent:
        """The agents' notice of a new handoff: why, the last messages, what the bot tried, the verified order."""
        transcript = await self._store.transcript(conversation.key)
        recent = transcript.messages[-SUMMARY_MESSAGES:] if transcript else ()
        payload = {
            **_conversation_fields(conversation),
            "reason": decision.reason.value,
            "detail": decision.detail,
            "mood": None if mood is None else round(mood, 3),
            "outside_business_hours": self.outside_hours(),
            "last_messages": [{"role": str(m.role), "text": m.text, "created_at": m.created_at} for m in recent],
            "faq_tried": [{"faq_id": hit.entry.id, "score": round(hit.score, 3)} for hit in hits[:3]],
        }
        if order is not None:
            payload["order"] = dict(order)
        return QueuedEvent(self.targets, "handoff.requested", payload)

    def shopper_message_event(self, conversation: ConversationState, message_id: int, text: str, *,
                              mood: float | None) -> QueuedEvent:
        payload = {**_conversation_fields(conversation), "message_id": message_id, "text": text,
                   "mood": None if mood is None else round(mood, 3)}
        return QueuedEvent(self.targets, "handoff.shopper_message", payload)


    def left_event(self, conversation: ConversationState, agent: str | None, command: str) -> QueuedEvent:
        """The shopper went back to the bot (`command`): whoever was about to answer, or answering, is told."""
        payload = {**_conversation_fields(conversation), "reason": "shopper_left", "left_agent": agent,
                   "detail": f"the shopper sent {command}"}
        return QueuedEvent(self.targets, "handoff.left", payload)


def _conversation_fields(conversation: ConversationState) -> dict[str, Any]:
    return {
        "channel": conversation.channel,
        "conversation_id": conversation.conversation,
        "user_id": conversation.user_id,
        "display_name": conversation.display_name,
        "language": conversation.language,
        "state": conversation.handoff.value,
        "agent": conversation.agent,
        "agent_api": f"/v1/agent/conversations/{conversation.channel}/{conversation.conversation}",
    }


class Desk:
    """The core's `AgentDesk`: every action is one atomic state change plus the shopper's notice."""

    def __init__(self, *, store: Store, records: HandoffStore, notices: HandoffNotices,
                 pushes: Callable[[str], bool], delivered: Callable[[Reply], None], default_language: str,
                 metrics: Metrics | None = None, audit: AuditHook | None = None):
        self._store = store
        self._records = records
        self._audit = audit
        self._notices = notices
        self._pushes = pushes
        self._delivered = delivered
        self._default_language = default_language
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    # -- AgentDesk ---------------------------------------------------------------

    async def handoffs(self, states: tuple[HandoffState, ...]) -> list[HandoffSummary]:
        return [await self._summary(c) for c in await self._records.queue(states)]

    async def handoff_view(self, channel: str, conversation: str) -> HandoffView:
        state = await self._conversation(channel, conversation)
        transcript = await self._store.transcript(state.key)
        assert transcript is not None
        transitions = await self._records.transitions(state.key)
        return HandoffView(await self._summary(state), transcript, tuple(t.to_json() for t in transitions))

    async def claim(self, channel: str, conversation: str, agent: str) -> HandoffSummary:
        state = await self._conversation(channel, conversation)
        notice = self._notice(state, "agent_joined", agent=agent)
        after, stored = await self._records.apply(state.key, Action.CLAIM, actor=agent, reason="claimed",
                                                  notice=notice, deliver=self._pushes(channel))
        self._sent(stored)
        self._count("claim")
        await self._audited(agent, "claim", state.key)
        log.info("handoff.claimed conversation=%s agent=%s", state.key, agent)
        return await self._summary(after)

    async def agent_reply(self, channel: str, conversation: str, agent: str, text: str) -> Reply:
        state = await self._conversation(channel, conversation)
        reply = Reply(channel=channel, conversation=conversation, user_id=state.user_id, text=text,
                      language=state.language or self._default_language, kind=ReplyKind.AGENT,
                      why=f"written by agent '{agent}'")
        _, stored = await self._records.agent_message(state.key, agent, reply, deliver=self._pushes(channel))
        self._sent(stored)
        self._count("reply")
        await self._audited(agent, "reply", state.key, {"message_id": stored.message_id or 0})
        log.info("handoff.agent_replied conversation=%s agent=%s message=%s", state.key, agent, stored.message_id)
        return stored

    async def release(self, channel: str, conversation: str, agent: str) -> HandoffSummary:
        return await self._finish(channel, conversation, agent, Action.RELEASE, "handoff_returned")

    async def close(self, channel: str, conversation: str, agent: str) -> HandoffSummary:
        return await self._finish(channel, conversation, agent, Action.CLOSE, "conversation_closed")

    async def _finish(self, channel: str, conversation: str, agent: str, action: Action, text_key: str
                      ) -> HandoffSummary:
        state = await self._conversation(channel, conversation)
        notice = self._notice(state, text_key)
        after, stored = await self._records.apply(state.key, action, actor=agent, reason=f"{action.value}d",
                                                  notice=notice, deliver=self._pushes(channel))
        self._sent(stored)
        self._count(action.value)
        await self._audited(agent, action.value, state.key)
        log.info("handoff.%sd conversation=%s agent=%s", action.value, state.key, agent)
        return await self._summary(after)

    # -- waiting shoppers --------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="kefu-handoff-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _watch(self) -> None:
        wait = self._notices.policy.agent_wait_seconds
        interval = max(0.05, min(WATCH_INTERVAL_MAX_SECONDS, wait / 4 or 1.0))
        while True:
            try:
                await self.tell_waiting_shoppers()
            except Exception:  # keep watching; the next pass retries the same conversations
                log.exception("handoff.watch_failed")
            await asyncio.sleep(interval)

    async def tell_waiting_shoppers(self) -> int:
        """Tell each shopper queued longer than agent_wait_seconds when to expect a person (once per handoff)."""
        cutoff = utc_now() - timedelta(seconds=self._notices.policy.agent_wait_seconds)
        told = 0
        for state in await self._records.waiting_since_before(cutoff):
            language = state.language or self._default_language
            if self._notices.outside_hours():
                notice = self._notice(state, "handoff_delayed_after_hours", opens=self._notices.opens(language))
            else:
                notice = self._notice(state, "handoff_delayed")
            stored = await self._records.waiting_notice(state.key, notice, deliver=self._pushes(state.channel))
            if stored is not None:
                self._sent(stored)
                told += 1
                log.info("handoff.still_waiting conversation=%s since=%s", state.key, state.state_since)
        return told

    # -- helpers -----------------------------------------------------------------

    async def _conversation(self, channel: str, conversation: str) -> ConversationState:
        state = await self._store.conversation(conversation_key(channel, conversation))
        if state is None:
            raise ConversationNotFoundError(f"no conversation '{conversation}' on channel '{channel}'")
        return state

    def _notice(self, state: ConversationState, key: str, **values: str) -> Reply:
        text, language = self._notices.text(key, state.language or self._default_language, **values)
        return Reply(channel=state.channel, conversation=state.conversation, user_id=state.user_id, text=text,
                     language=language, kind=ReplyKind.SYSTEM, why=f"handoff notice: {key}")

    def _count(self, action: str) -> None:
        if self._metrics is not None:
            self._metrics.agent_action(action)

    async def _audited(self, agent: str, action: str, key: str, counts: dict[str, int] | None = None) -> None:
        """After the action committed: a failed audit write is logged, never undoes what the agent did."""
        if self._audit is None:
            return
        try:
            await self._audit(agent, action, key, counts)
        except Exception:
            log.exception("handoff.audit_failed action=%s conversation=%s", action, key)

    def _sent(self, stored: Reply | None) -> None:
        if stored is not None:
            self._delivered(stored)

    async def _summary(self, state: ConversationState) -> HandoffSummary:
        last = await self._records.last_transition(state.key)
        text = await self._store.last_shopper_text(state.key)
        return HandoffSummary(
            channel=state.channel, conversation=state.conversation, user_id=state.user_id,
            display_name=state.display_name, language=state.language, state=state.handoff, agent=state.agent,
            since=state.state_since, mood=state.mood, reason=last.reason if last else None,
            detail=last.detail if last else None, last_shopper_message=text,
        )
