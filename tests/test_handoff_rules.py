"""The handoff decision and state machine, as pure functions."""

from __future__ import annotations

from datetime import datetime, time, timezone

import pytest

from bot.errors import HandoffConflictError
from bot.handoff import (
    Action,
    BusinessHours,
    HandoffPolicy,
    HandoffReason,
    HandoffSignals,
    decide,
    matched_keyword,
    next_state,
)
from bot.messages import HandoffState

CALM = HandoffSignals(text="where is my parcel", mood=0.0, human_request=None, unconfident_streak=0, flagged_faq=None)


def signals(**changes) -> HandoffSignals:
    from dataclasses import replace

    return replace(CALM, **changes)


def test_a_calm_answerable_message_stays_with_the_bot():
    assert decide(CALM, HandoffPolicy()) is None


@pytest.mark.parametrize(("changes", "reason"), [
    ({"text": "/human"}, HandoffReason.COMMAND),
    ({"text": "/agent please"}, HandoffReason.COMMAND),
    ({"human_request": "real person"}, HandoffReason.EXPLICIT_REQUEST),
    ({"mood": -0.7, "anger": ("shouting",)}, HandoffReason.UPSET),
    ({"mood": -0.7, "negative_messages": 2}, HandoffReason.UPSET),
    ({"unconfident_streak": 3}, HandoffReason.UNCONFIDENT),
    ({"flagged_faq": "damaged-item"}, HandoffReason.FAQ_FLAGGED),
])
def test_each_trigger_hands_over_with_its_reason(changes, reason):
    decision = decide(signals(**changes), HandoffPolicy())
    assert decision is not None and decision.reason == reason
    assert decision.detail


def test_merchant_keywords_match_whole_words_only():
    policy = HandoffPolicy(keywords=("sue", "律师"))
    assert decide(signals(text="I will sue you"), policy).reason == HandoffReason.KEYWORD
    assert decide(signals(text="there is an issue with my order"), policy) is None
    assert decide(signals(text="我要找律师"), policy).reason == HandoffReason.KEYWORD
    assert matched_keyword("Chargeback NOW", ("chargeback",)) == "chargeback"


@pytest.mark.parametrize("changes", [
    {"mood": -0.45}, {"unconfident_streak": 2}, {"text": "what does /human do"},
    {"mood": -0.7},  # one calmly described problem ("the zip broke, still under warranty?"): answer it
    {"mood": -0.45, "anger": ("profanity",)},
])
def test_below_the_thresholds_the_bot_keeps_answering(changes):
    assert decide(signals(**changes), HandoffPolicy()) is None


def test_each_trigger_can_be_switched_off():
    policy = HandoffPolicy(explicit_requests=False, mood_threshold=None, unconfident_turns=0, faq_flags=False,
                           commands=())
    everything = signals(text="/human", human_request="human", mood=-1.0, unconfident_streak=9,
                         flagged_faq="legal")
    assert decide(everything, policy) is None
    assert decide(everything, HandoffPolicy(enabled=False)) is None


def test_the_state_machine_allows_the_documented_cycle():
    state = next_state(Action.HANDOFF, HandoffState.BOT, holder=None, actor="bot")
    assert state == HandoffState.WAITING_AGENT
    state = next_state(Action.CLAIM, state, holder=None, actor="alice")
    assert state == HandoffState.AGENT
    state = next_state(Action.RELEASE, state, holder="alice", actor="alice")
    assert state == HandoffState.BOT
    state = next_state(Action.CLOSE, state, holder=None, actor="alice")
    assert state == HandoffState.CLOSED
    assert next_state(Action.REOPEN, state, holder=None, actor="shopper") == HandoffState.BOT


@pytest.mark.parametrize(("action", "state", "holder", "actor"), [
    (Action.HANDOFF, HandoffState.WAITING_AGENT, None, "bot"),  # no double handoff
    (Action.HANDOFF, HandoffState.AGENT, "alice", "bot"),
    (Action.CLAIM, HandoffState.AGENT, "alice", "bob"),  # no takeover of a colleague's chat
    (Action.RELEASE, HandoffState.AGENT, "alice", "bob"),
    (Action.RELEASE, HandoffState.BOT, None, "alice"),
    (Action.CLAIM, HandoffState.CLOSED, None, "alice"),
])
def test_moves_the_state_does_not_allow_are_conflicts(action, state, holder, actor):
    with pytest.raises(HandoffConflictError) as caught:
        next_state(action, state, holder=holder, actor=actor)
    assert caught.value.state == state.value


HOURS = BusinessHours("Asia/Shanghai", frozenset(range(5)), time(9), time(18))


def test_business_hours_are_read_in_the_shops_time_zone():
    # Friday 2026-11-27 02:00 UTC is 10:00 in Shanghai: open.
    assert HOURS.is_open(datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc))
    # Friday 11:00 UTC is 19:00 in Shanghai: closed until Monday 09:00.
    evening = datetime(2026, 11, 27, 11, 0, tzinfo=timezone.utc)
    assert not HOURS.is_open(evening)
    opening = HOURS.next_opening(evening)
    assert (opening.weekday(), opening.hour, opening.minute) == (0, 9, 0)
    assert opening.date().isoformat() == "2026-11-30"
