"""Orders from the merchant's own HTTP endpoint: GET a URL per order number, answered in kefu's record format.

For shops on systems without a connector: `url_template = "https://shop.example/kefu/orders/{number}"`
(the number URL-quoted), an optional bearer token, and the record format of `records.py` in the
response body. 404 means no such order; anything else that is not a 200 with a valid record
means the shop's system could not answer, and kefu says so rather than guess.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import aiohttp

from commerce.orders import Order, ShopUnavailable
from commerce.sources.records import RecordError, order_from_record

log = logging.getLogger(__name__)


class EndpointOrders:
    name = "endpoint"

    def __init__(self, *, url_template: str, token: str = "", timeout_seconds: float = 5.0,
                 session: aiohttp.ClientSession | None = None):
        self._template = url_template
        self._headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session = session
        self._owns_session = session is None

    async def find(self, number: str) -> Order | None:
        url = self._template.format(number=quote(number.strip().lstrip("#"), safe=""))
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(url, headers=self._headers, timeout=self._timeout) as response:
                if response.status == 404:
                    return None
                if response.status in (401, 403):
                    log.warning("orders.endpoint_refused status=%d: check [orders.endpoint] token", response.status)
                    raise ShopUnavailable(self.name, f"the endpoint refused kefu's token (HTTP {response.status})")
                if response.status != 200:
                    raise ShopUnavailable(self.name, f"HTTP {response.status}")
                record = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ShopUnavailable(self.name, f"{type(exc).__name__}: {exc}"[:200]) from None
        if not isinstance(record, dict):
            raise ShopUnavailable(self.name, "the endpoint's answer is not a JSON object")
        try:
            return order_from_record(record)
        except RecordError as exc:
            log.error("orders.endpoint_bad_record field=%s problem=%s", exc.field, exc.problem)
            raise ShopUnavailable(self.name, f"malformed record, field '{exc.field}'") from None

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
