"""kefu's single aiohttp server: one port for every channel that speaks HTTP.

Channels add their routes to `app` before `start()`. Every error leaves as JSON
with a reason (`{"error": code, "detail": text}`), never as an HTML page or a bare 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bot.config import HttpConfig

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


def json_error(status: int, error: str, detail: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "detail": detail, **extra}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return json_error(exc.status, _CODES.get(exc.status, "http_error"), detail)
    except Exception:  # the last line of defence: log it, answer JSON, keep serving
        log.exception("http.unhandled_error path=%s", request.path)
        return json_error(500, "internal_error", "kefu hit an unexpected error; it has been logged")


class HttpServer:
    def __init__(self, config: HttpConfig, health: Callable[[], Mapping[str, Any]]):
        self.config = config
        self.app = web.Application(middlewares=[json_errors], client_max_size=config.max_body_bytes)
        self._health = health
        self.app.router.add_get("/healthz", self._healthz)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self._health()), dumps=lambda data: json.dumps(data, ensure_ascii=False))

    @property
    def base_url(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.config.shutdown_timeout_seconds
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("http.listening url=%s", self.base_url)

    async def stop(self) -> None:
        """Stop accepting connections and wait for in-flight requests (up to the timeout)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
