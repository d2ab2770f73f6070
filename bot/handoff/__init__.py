"""Handing a conversation to a person and back.

- `decide.py`: pure: when a person should take over (`decide`), who may move a
  conversation where (`next_state`), when the team is in (`BusinessHours`);
- `store.py`: the transitions applied atomically with the message that caused them, the
  forwarded messages and the agents' notification outbox;
- `agents.py`: the agent desk (claim, reply, release, close), the shopper's notices, the
  waiting-shopper watch;
- `notifier.py`: notifications to the agents' tools, retried durably.

The decision's names are importable from `bot.handoff` itself.
"""

from bot.handoff.decide import (
    UPSET_AFTER_NEGATIVE_MESSAGES,
    Action,
    BusinessHours,
    HandoffDecision,
    HandoffPolicy,
    HandoffReason,
    HandoffSignals,
    decide,
    faq_answers_the_wording,
    matched_keyword,
    next_state,
)

__all__ = [
    "UPSET_AFTER_NEGATIVE_MESSAGES", "Action", "BusinessHours", "HandoffDecision", "HandoffPolicy", "HandoffReason",
    "HandoffSignals", "decide", "faq_answers_the_wording", "matched_keyword", "next_state",
]
