"""Whose data a privacy request is about: one conversation, or every conversation of one user on a channel."""

from __future__ import annotations

import re
from dataclasses import dataclass


from bot.errors import InvalidRequestError
from bot.messages import conversation_key
from bot.store.engine import Database

CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
CONVERSATION = "conversation"
USER = "user"
MAX_ID_CHARS = 500


@dataclass(frozen=True)
class Subject:
    """`kind` is "conversation" (value: the conversation id) or "user" (value: the channel's user id)."""

    kind: str
    channel: str
    value: str

    @classmethod
    def parse(cls, *, conversation: str | None = None, user: str | None = None) -> Subject:
        """From `channel/id` (or `channel:id`) for a conversation, `channel:user_id` for a user; exactly one."""
        if (conversation is None) == (user is None):
            raise InvalidRequestError("name exactly one of 'conversation' (channel/id) or 'user' (channel:user_id)",
                                      field="conversation")
        kind, text = (CONVERSATION, conversation) if conversation is not None else (USER, user)
        assert text is not None
        text = text.strip()
        cut = min((i for i in (text.find("/"), text.find(":")) if i > 0), default=-1)
        channel, value = (text[:cut], text[cut + 1:].strip()) if cut > 0 else ("", "")
        if not CHANNEL_NAME.match(channel) or not value or len(value) > MAX_ID_CHARS:
            example = "webhook/order-123" if kind == CONVERSATION else "telegram:123456789"
            raise InvalidRequestError(f"'{kind}' must look like '{example}': the channel, then the id", field=kind)
        return cls(kind, channel, value)

    @property
    def label(self) -> str:
        """For messages to the operator (never stored in the audit log)."""
        return f"{self.kind} {self.channel}/{self.value}" if self.kind == CONVERSATION else \
            f"{self.kind} {self.channel}:{self.value}"

    def keys(self, db: Database) -> list[str]:
        """The stored conversations this subject covers (blocking; on a store thread)."""
        if self.kind == CONVERSATION:
            key = conversation_key(self.channel, self.value)
            found = db.execute("SELECT key FROM conversations WHERE key = ?", [key]).fetchall()
        else:
            found = db.execute("SELECT key FROM conversations WHERE channel = ? AND user_id = ? ORDER BY created_at",
                               [self.channel, self.value]).fetchall()
        return [row[0] for row in found]
