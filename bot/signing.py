"""HMAC request signing and signed POSTs, shared by every HTTP exchange with the merchant's systems.

The digest is HMAC-SHA256(secret, "<unix timestamp>." + raw body), sent as
`X-Kefu-Timestamp` and `X-Kefu-Signature: sha256=<hex>`; the timestamp in the
signed text makes a captured request useless for replay once it is old.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

import aiohttp

from bot.errors import DeliveryError

TIMESTAMP_HEADER = "X-Kefu-Timestamp"
SIGNATURE_HEADER = "X-Kefu-Signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


async def post_signed(session: aiohttp.ClientSession, url: str, secret: str, body: bytes,
                      headers: Mapping[str, str]) -> None:
    """POST a signed JSON body; raise DeliveryError (permanent for a 4xx retrying cannot fix)."""
    timestamp = str(int(time.time()))
    signed = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
              SIGNATURE_HEADER: sign(secret, timestamp, body), **headers}
    try:
        async with session.post(url, data=body, headers=signed) as response:
            if response.status < 300:
                return
            detail = (await response.text())[:300]
            permanent = 400 <= response.status < 500 and response.status not in (408, 409, 425, 429)
            raise DeliveryError(f"{url} answered {response.status}: {detail}", permanent=permanent)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{url} unreachable: {type(exc).__name__} {exc}") from exc
