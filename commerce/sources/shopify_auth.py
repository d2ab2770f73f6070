"""The Admin API access token for a Shopify shop: given, or fetched with the client credentials grant.

Since January 2026 Shopify no longer lets merchants create custom apps in the admin (those
show their `shpat_…` token once, and it never expires); new apps are made in the Dev Dashboard
and installed on the merchant's own store, and the app's client id and secret are exchanged for
a token that lasts 24 hours:

    POST https://{shop}.myshopify.com/admin/oauth/access_token
    grant_type=client_credentials&client_id=…&client_secret=…   (form-encoded)
    → {"access_token": "…", "scope": "read_orders,read_products", "expires_in": 86399}

kefu asks for a token when it first needs one and again ten minutes before it runs out, or
at once when the Admin API refuses it (401). Refusals name Shopify's reason (`invalid_client`, or
`shop_not_permitted` for a store outside the app's organization), which the merchant must fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp

log = logging.getLogger(__name__)

RENEW_BEFORE_SECONDS = 600.0  # a token is renewed this long before it expires
DEFAULT_LIFETIME_SECONDS = 86_399.0


class AccessRefused(Exception):
    """Shopify gave no token: the reason is for the merchant (wrong secret, another organization's store)."""


class ShopifyAccess:
    """The token to send as X-Shopify-Access-Token, for one source (orders or the catalog), kept and renewed."""

    def __init__(self, *, shop_url: str, token: str = "", client_id: str = "", client_secret: str = "",
                 timeout_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic):
        if not token and not (client_id and client_secret):
            raise ValueError("a Shopify token, or a client id and secret, is needed")
        self._endpoint = f"{shop_url.rstrip('/')}/admin/oauth/access_token"
        self._token = token
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._expires_at = float("inf") if token else 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    @property
    def renewable(self) -> bool:
        """A refused token can be replaced (client credentials); a given one cannot."""
        return bool(self._client_id)

    async def token(self) -> str:
        if self._token and self._clock() < self._expires_at - RENEW_BEFORE_SECONDS:
            return self._token
        async with self._lock:  # one exchange at a time, however many lookups wait for it
            if not self._token or self._clock() >= self._expires_at - RENEW_BEFORE_SECONDS:
                await self._exchange()
            return self._token

    def refused(self, token: str) -> None:
        """The Admin API refused `token` (401): the next call fetches a new one, when it can."""
        if self.renewable and token == self._token:
            self._expires_at = 0.0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _exchange(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret}
        try:
            async with self._session.post(self._endpoint, data=form, timeout=self._timeout,
                                          headers={"Accept": "application/json"}) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AccessRefused(f"the token endpoint did not answer: {type(exc).__name__} {exc}") from exc
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            reason = (f"{body.get('error')}: {body.get('error_description') or ''}".strip(": ")
                      if isinstance(body, dict) and body.get("error") else f"HTTP {status}")
            log.warning("shopify.token_exchange_refused endpoint=%s reason=%s (check the app's client id and "
                        "secret in the Dev Dashboard, and that it is installed on this store)", self._endpoint, reason)
            raise AccessRefused(f"no access token: {reason}")
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME_SECONDS
        self._token = body["access_token"]
        self._expires_at = self._clock() + lifetime
        log.info("shopify.token_fetched scope=%s lifetime_s=%.0f", body.get("scope"), lifetime)
