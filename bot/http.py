"""kefu's single aiohttp server: one port for every channel that speaks HTTP.

Channels add their routes to `app` before `start()`. Every error leaves as JSON
with a reason (`{"error": code, "detail": text}`), never as an HTML page or a bare 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bot.client_address import forwarded_client
from bot.config import HttpConfig
from bot.messages import BODY_LIMITS, RAW_BODY

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    408: "request_timeout",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "headers_too_large",
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


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request's whole body within the deadline before any handler sees it.

    A client that trickles its body (slowloris) otherwise holds a handler and its
    connection for as long as it likes. The body is cached on the request, so
    handlers reading it again get it at once.
    """
    if request.body_exists:
        timeout = request.app[BODY_TIMEOUT]
        larger = request.app[BODY_LIMITS].get(request.path)
        try:
            async with asyncio.timeout(timeout):
                if larger is None:
                    await request.read()
                else:
                    body = await _read_at_most(request, larger)
                    if body is None:
                        return json_error(413, "payload_too_large", f"a request to {request.path} is at most "
                                                                    f"{larger} bytes")
                    request[RAW_BODY] = body
        except TimeoutError:
            log.warning("http.body_timeout path=%s remote=%s", request.path, request.remote)
            response = json_error(408, "request_timeout", f"the request body did not arrive within {timeout:g}s")
            response.force_close()
            return response
    return await handler(request)


BODY_TIMEOUT = web.AppKey("kefu_body_timeout", float)


def trusted_proxies(proxy_hops: int) -> Any:
    """A middleware that makes `request.remote` the person's address behind `proxy_hops` reverse proxies,
    once for every channel: the web chat's limits, the sign-in limit and the logs all count the same one."""
    @web.middleware
    async def client_behind_proxies(request: web.Request, handler: Handler) -> web.StreamResponse:
        address = forwarded_client(request.remote, request.headers.get("X-Forwarded-For"), proxy_hops)
        return await handler(request.clone(remote=address))
    return client_behind_proxies


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp answers requests its parser rejects (duplicate Content-Length, bad headers,
    an over-long line) itself, before any middleware runs, as text/plain: this answers
    them as JSON with a reason like every other kefu error."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it; raises if a response had started
        detail = message or (getattr(exc, "message", None) if exc is not None else None) or HTTPStatus(status).phrase
        code = "internal_error" if status == 500 else _CODES.get(status, "bad_request")
        if status == 500:
            detail = "kefu hit an unexpected error; it has been logged"
        response = json_error(status, code, str(detail)[:500])
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class _AppRunner(web.AppRunner):
    """An AppRunner whose connections use JsonErrorRequestHandler (aiohttp has no public hook for it)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _JsonErrorServer(server.request_handler, request_factory=server.request_factory,
                                handler_cancellation=server.handler_cancellation, loop=server._loop,
                                **server._kwargs)


class HttpServer:
    def __init__(self, config: HttpConfig, health: Callable[[], Mapping[str, Any]]):
        self.config = config
        middlewares = [json_errors, trusted_proxies(config.proxy_hops), body_deadline] if config.proxy_hops else \
            [json_errors, body_deadline]
        self.app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes)
        self.app[BODY_TIMEOUT] = config.body_timeout_seconds
        self.app[BODY_LIMITS] = {}
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
        # keepalive_timeout also bounds a new connection's wait for its first complete request line and
        # headers (aiohttp arms it at connect), so idle, CRLF-only and slow-header connections are closed.
        self._runner = _AppRunner(
            self.app, access_log=None, shutdown_timeout=self.config.shutdown_timeout_seconds,
            keepalive_timeout=self.config.idle_timeout_seconds,
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
