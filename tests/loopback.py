"""The base of the fake services tests talk to (Telegram, Shopify, WooCommerce): a real aiohttp
server on a free port of 127.0.0.1, started and stopped with `async with`.

A fake adds its routes in `add_routes` and wakes its slowed or long-polling requests in
`release_waiters`, so stopping never waits them out.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

from aiohttp import web


class LoopbackServer:
    shutdown_timeout: float = 1.0
    ssl_context: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None
    _url: str | None = None

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def release_waiters(self) -> None:
        """Wake requests that are waiting (a delay, a long poll) before the server shuts down."""

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 only: tests must never reach out."""
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=self.shutdown_timeout, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context).start()
        scheme = "https" if self.ssl_context else "http"
        self._url = f"{scheme}://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release_waiters()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        if self._url is None:
            name = type(self).__name__
            raise RuntimeError(f"{name} is not started; use `async with {name}() as server`")
        return self._url


async def json_body(request: web.Request) -> Any:
    """A request's JSON body as sent (None when empty); text that is not JSON, as text, for the fake to refuse."""
    text = await request.text()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


async def answer_slowly(closing: asyncio.Event, seconds: float) -> None:
    """A slow service's delay, cut short when the fake stops (so stopping never waits it out)."""
    if seconds > 0:
        try:
            await asyncio.wait_for(closing.wait(), seconds)
        except TimeoutError:
            pass
