"""Password hashes for the people who sign in to the web console.

scrypt from the standard library: memory-hard, no new dependency, and the
parameters travel inside the hash so they can be raised later without breaking
old hashes. The format is `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`, what
`kefu hash-password` prints for kefu.toml. Verifying costs ~50 ms of CPU on
purpose: callers on an event loop run it in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

SCHEME = "scrypt"
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
KEY_BYTES = 32
SALT_BYTES = 16
_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024,
                          dklen=KEY_BYTES)


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """A new salted hash of `password`, ready to paste into kefu.toml."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p)
    return f"{SCHEME}${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def hash_problem(encoded: str) -> str | None:
    """Why `encoded` is not a usable hash (for config errors), or None when it is."""
    found = _FORMAT.match(encoded)
    if not found:
        return "is not a password hash; make one with: kefu hash-password"
    n, r, p = (int(found.group(i)) for i in (1, 2, 3))
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        return f"has unusable scrypt parameters n={n} r={r} p={p}; make a new one with: kefu hash-password"
    return None


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of `password` against a hash made by `hash_password`."""
    found = _FORMAT.match(encoded)
    if not found or not password:
        return False
    n, r, p = (int(found.group(i)) for i in (1, 2, 3))
    salt = base64.b64decode(found.group(4))
    expected = base64.b64decode(found.group(5))
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)
