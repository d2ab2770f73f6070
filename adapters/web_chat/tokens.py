"""Signed visitor tokens: an anonymous visitor's proof that a conversation is theirs.

A token is `v1.<visitor>.<issued>.<signature>`: the visitor id (random, 128 bits, also the
conversation's id), when it was issued (unix seconds), and an HMAC-SHA256 of both with the
shop's secret. Nothing is stored per visitor, so any worker sharing the secret can check it,
and a visitor cannot name another visitor's conversation without forging a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

VERSION = "v1"
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


@dataclass(frozen=True)
class VisitorToken:
    visitor: str
    issued: int

    def expires(self, days: int) -> int:
        return self.issued + days * 86400


@dataclass(frozen=True)
class VisitorTokens:
    secret: bytes
    days: int

    def issue(self, visitor: str | None, now: float) -> tuple[str, VisitorToken]:
        """A token for `visitor` (a new visitor when None), valid for `days` from now."""
        token = VisitorToken(visitor=visitor or secrets.token_urlsafe(16), issued=int(now))
        payload = f"{VERSION}.{token.visitor}.{token.issued}"
        return f"{payload}.{self._sign(payload)}", token

    def check(self, text: str, now: float) -> VisitorToken | None:
        """The token's visitor when the signature is right and it has not expired, else None."""
        parts = text.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not VISITOR_ID.match(parts[1]) or not parts[2].isdigit():
            return None
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3].encode(), self._sign(payload).encode()):
            return None
        token = VisitorToken(visitor=parts[1], issued=int(parts[2]))
        if token.issued > now + 300 or now > token.expires(self.days):
            return None
        return token

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()


def load_or_create_secret(path: Path) -> bytes:
    """The signing secret kept in `path`, created (random, readable by kefu's user only) on first use.

    Several workers starting at once agree: the secret is written whole to a file of its own and
    linked into place, so a worker that loses the race reads the winner's, never a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another worker's secret is in place: use it
        finally:
            draft.unlink()
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds a secret shorter than 32 characters; delete it to make a new one")
    return secret.encode()
