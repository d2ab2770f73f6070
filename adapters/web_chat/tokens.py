"""Signed visitor tokens: an anonymous visitor's proof that a conversation is theirs.

A token is `v2.<visitor>.<issued>.<account>.<signature>`: the visitor id (random, 128 bits, also the
conversation's id), when it was issued (unix seconds), whose account the conversation belongs to
("-" for a guest, else a keyed hash of the shop's customer id), and an HMAC-SHA256 of all three
with the shop's secret. Nothing is stored per visitor, so any worker sharing the secret can check
it, and a visitor cannot name another visitor's conversation without forging a signature.

The account is there for the shared computer: a conversation a signed-in shopper had (their orders,
their address) must not open for whoever uses the browser after they sign out. A token of the
earlier format (v1, no account) is a guest's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

VERSION = "v2"
GUEST = "-"  # a visitor the shop's page did not name: nobody signed in
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{22}")
ISSUED = re.compile(r"[0-9]{1,12}")
ACCOUNT = re.compile(r"-|[0-9a-f]{32}")
SIGNATURE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VisitorToken:
    visitor: str
    issued: int
    account: str = GUEST

    def may_continue_as(self, account: str) -> bool:
        """Whether this conversation may go on for `account`: the same account's, or a guest's who has
        signed in since; never a signed-in shopper's for a guest or for another shopper."""
        return self.account in (account, GUEST)

    def expires(self, days: int) -> int:
        return self.issued + days * 86400


@dataclass(frozen=True)
class VisitorTokens:
    secret: bytes
    days: int

    def account(self, customer_id: str | None) -> str:
        """The account a conversation is bound to: a keyed hash of the shop's customer id (the token names
        nobody), or GUEST. It proves nothing about the customer; the shop's customer_hash does that."""
        if customer_id is None:
            return GUEST
        return hmac.new(self.secret, f"account:{customer_id}".encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()[:32]

    def issue(self, visitor: str | None, now: float, account: str = GUEST) -> tuple[str, VisitorToken]:
        """A token for `visitor` (a new visitor when None) of `account`, valid for `days` from now."""
        token = VisitorToken(visitor=visitor or secrets.token_urlsafe(16), issued=int(now), account=account)
        payload = f"{VERSION}.{token.visitor}.{token.issued}.{token.account}"
        return f"{payload}.{self._sign(payload)}", token

    def check(self, text: str, now: float) -> VisitorToken | None:
        """The token's visitor when the signature is right and it has not expired, else None."""
        parts = text.split(".")
        if len(parts) == 4 and parts[0] == "v1":  # before accounts: a guest's
            parts = [*parts[:3], GUEST, parts[3]]
        elif len(parts) != 5 or parts[0] != VERSION:
            return None
        fields = zip((VISITOR_ID, ISSUED, ACCOUNT, SIGNATURE), parts[1:])
        if not all(pattern.fullmatch(part) for pattern, part in fields):
            return None
        payload = ".".join(parts[:3]) if parts[0] == "v1" else ".".join(parts[:4])
        if not hmac.compare_digest(parts[4].encode(), self._sign(payload).encode()):
            return None
        token = VisitorToken(visitor=parts[1], issued=int(parts[2]), account=parts[3])
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
