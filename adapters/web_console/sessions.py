"""A signed-in console user as the pages see them: who, in which roles, with which CSRF token.

The sessions themselves and the sign-in limit live in the core's store (bot/console_access.py),
shared by every kefu worker.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from bot.config import ConsoleUser


@dataclass(frozen=True)
class Session:
    user: ConsoleUser
    csrf_token: str

    def has_role(self, role: str) -> bool:
        return role in self.user.roles

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf_token.encode())
