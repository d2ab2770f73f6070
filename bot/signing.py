"""HMAC request signing and signed POSTs, shared by every HTTP exchange with the merchant's systems.

Version 2 (the default) signs what a request *does*, not only what it carries:

    HMAC-SHA256(secret, "v2\\n<unix seconds>\\n<METHOD>\\n<request target>\\n" + raw body)

sent as `X-Kefu-Timestamp: <unix seconds>` and `X-Kefu-Signature: v2=<hex>`. The
request target is the path and query exactly as in the request line
(`/v1/conversations/A?x=1`, percent-encoding unchanged), so a signature captured
for one request cannot read or write another conversation within the replay
window. Version 1 (`sha256=<hex>` over "<timestamp>." + body) covered neither
method nor path; kefu accepts and sends it only with `signature_version = 1`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Mapping

import aiohttp
from yarl import URL

from bot.errors import DeliveryError

TIMESTAMP_HEADER = "X-Kefu-Timestamp"
SIGNATURE_HEADER = "X-Kefu-Signature"
SIGNATURE_VERSIONS = (1, 2)
_TIMESTAMP = re.compile(r"^\d{1,12}(\.\d{1,9})?$")  # unix seconds; "nan", "inf", "-1e9" are not times


def canonical(version: int, timestamp: str, method: str, target: str, body: bytes) -> bytes:
    """The exact bytes a signature covers (documented in the README, section "Signed requests")."""
    if version == 1:
        return timestamp.encode() + b"." + body
    return f"v2\n{timestamp}\n{method.upper()}\n{target}\n".encode() + body


def sign(secret: str, timestamp: str, body: bytes, *, method: str = "POST", target: str = "/",
         version: int = 2) -> str:
    digest = hmac.new(secret.encode(), canonical(version, timestamp, method, target, body), hashlib.sha256)
    return f"{'sha256' if version == 1 else 'v2'}={digest.hexdigest()}"


def parse_timestamp(value: str) -> float | None:
    """A finite unix time from the header, or None when it is not one."""
    if not _TIMESTAMP.match(value):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None


async def post_signed(session: aiohttp.ClientSession, url: str, secret: str, body: bytes,
                      headers: Mapping[str, str], *, version: int = 2) -> None:
    """POST a signed JSON body; raise DeliveryError (permanent for a 4xx retrying cannot fix)."""
    timestamp = str(int(time.time()))
    target = URL(url)  # signed and sent as the same object, so the request line is what was signed
    signature = sign(secret, timestamp, body, method="POST", target=target.raw_path_qs, version=version)
    signed = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature,
              **headers}
    try:
        async with session.post(target, data=body, headers=signed) as response:
            if response.status < 300:
                return
            detail = (await response.text())[:300]
            permanent = 400 <= response.status < 500 and response.status not in (408, 409, 425, 429)
            raise DeliveryError(f"{url} answered {response.status}: {detail}", permanent=permanent)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{url} unreachable: {type(exc).__name__} {exc}") from exc
