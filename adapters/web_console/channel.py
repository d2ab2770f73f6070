"""The web console's routes on kefu's HTTP server: pages, the agents' JSON API and a live event stream.

Translation only: the browser's clicks become `ConsoleBackend` calls (the core's
agent desk, FAQ search and dashboard figures); every decision stays in the core.

Security, in the order a request meets it: the session cookie (HttpOnly,
SameSite=Strict, Secure behind https), the user's role, then for every change a
same-origin check and the session's CSRF token in `X-CSRF-Token` (a form field
for the two HTML forms). Pages carry a Content-Security-Policy without inline
scripts, and the page scripts render shopper text with `textContent` only.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from aiohttp import web
from yarl import URL

from bot.config import ConsoleConfig
from bot.errors import ConversationNotFoundError, HandoffConflictError
from bot.json_input import InvalidJson, check_text, loads_json
from bot.messages import ConsoleBackend, HandoffState
from bot.passwords import verify_password

from adapters.web_console.sessions import Session
from adapters.web_console.snapshots import VersionedSnapshot

log = logging.getLogger(__name__)

PREFIX = "/console"
SESSION_COOKIE = "kefu_console"
SIGN_IN_COOKIE = "kefu_console_sign_in"  # the sign-in form's own CSRF token (double submit)
CSRF_HEADER = "X-CSRF-Token"
QUEUE_STATES = (HandoffState.WAITING_AGENT, HandoffState.AGENT)
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript", "insights.js": "text/javascript"}
MAX_REPLY_CHARS = 4000
MAX_QUERY_CHARS = 300
DEFAULT_PERIOD_DAYS = 14
MAX_PERIOD_DAYS = 366
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(9998, 12, 31)  # a shop's history fits; the calendar's edges overflow
MAX_FORM_FIELDS = 10
KEEPALIVE_SECONDS = 15.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ConsoleError(Exception):
    """A request the browser must change; becomes a 4xx JSON answer."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.error, self.detail, self.extra = status, error, detail, extra

    def response(self) -> web.Response:
        return _json({"error": self.error, "detail": self.detail, **self.extra}, status=self.status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False),
                             headers=SECURITY_HEADERS)


def _static_text(name: str) -> str:
    return resources.files("adapters.web_console").joinpath("static", name).read_text(encoding="utf-8")


def _render(template: str, **values: str) -> str:
    """Fill {{name}} slots with HTML-escaped values: nothing a user typed becomes markup."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", html.escape(value, quote=True))
    return template


def _page(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, **(headers or {})})


def _redirect(location: str) -> web.Response:
    """A 303 to follow after a form POST (returned, not raised, so it can carry cookies)."""
    return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location})


def _period(request: web.Request, zone: ZoneInfo) -> tuple[date, date]:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, by default the last 14 days up to today in the dashboard's zone."""
    today = datetime.now(zone).date()
    try:
        end = date.fromisoformat(request.query["to"]) if request.query.get("to") else today
        start = (date.fromisoformat(request.query["from"]) if request.query.get("from")
                 else end - timedelta(days=DEFAULT_PERIOD_DAYS - 1))
    except (ValueError, OverflowError):
        raise ConsoleError(400, "invalid_period", "'from' and 'to' must be dates like 2026-11-28") from None
    if not (FIRST_DAY <= start <= LAST_DAY and FIRST_DAY <= end <= LAST_DAY):
        raise ConsoleError(400, "invalid_period", f"dates must lie between {FIRST_DAY} and {LAST_DAY}")
    if end < start:
        raise ConsoleError(400, "invalid_period", "'to' is before 'from'")
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise ConsoleError(400, "invalid_period", f"a period is at most {MAX_PERIOD_DAYS} days")
    return start, end


@dataclass
class WebConsole:
    """The `web_console` channel: it serves people, not shoppers, so it delivers nothing itself."""

    settings: ConsoleConfig
    backend: ConsoleBackend
    shop_name: str
    name: str = "web_console"
    delivery: None = None

    def __post_init__(self) -> None:
        self._access = self.backend.console_access()  # sessions and the sign-in limit, shared by every worker
        self._users = {user.name: user for user in self.settings.users}
        self._zone = ZoneInfo(self.settings.timezone)
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        # A hash to compare against when the name is unknown, so a wrong name costs as long as a wrong password.
        self._decoy_hash = self.settings.users[0].password_hash
        self._templates = {name: _static_text(name) for name in ("sign_in.html", "console.html", "insights.html")}
        self._static = {name: _static_text(name).encode() for name in STATIC_FILES}
        # Every open event stream sends the same queue: read and serialize it once per change, not once per stream.
        self._queue_text = VersionedSnapshot(self._read_queue_text, self.backend.changes_version)

    # -- lifecycle (Channel) ----------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        conversation = f"{PREFIX}/api/conversations/{{channel}}/{{conversation:.+}}"
        router = app.router
        router.add_get(PREFIX, self.console_page)
        router.add_get(f"{PREFIX}/", self.console_page)
        router.add_get(f"{PREFIX}/insights", self.insights_page)
        router.add_post(f"{PREFIX}/sign-in", self.sign_in)
        router.add_post(f"{PREFIX}/sign-out", self.sign_out)
        router.add_get(f"{PREFIX}/static/{{name}}", self.static)
        router.add_get(f"{PREFIX}/api/handoffs", self.api(self.queue, role="agent"))
        router.add_get(f"{PREFIX}/api/events", self.events)
        router.add_get(f"{PREFIX}/api/faq", self.api(self.faq, role="agent"))
        router.add_post(f"{conversation}/claim", self.api(self.claim, role="agent", change=True))
        router.add_post(f"{conversation}/messages", self.api(self.reply, role="agent", change=True))
        router.add_post(f"{conversation}/release", self.api(self.release, role="agent", change=True))
        router.add_post(f"{conversation}/close", self.api(self.close, role="agent", change=True))
        router.add_get(conversation, self.api(self.view, role="agent"))
        router.add_get(f"{PREFIX}/api/insights", self.api(self.insights, role="merchant"))
        router.add_get(f"{PREFIX}/api/insights/unanswered", self.api(self.unanswered, role="merchant"))
        router.add_get(f"{PREFIX}/insights/unanswered.csv", self.unanswered_csv)
        app.on_shutdown.append(self._end_streams)

    async def start(self) -> None:
        log.info("web_console.ready users=%d path=%s", len(self._users), PREFIX)

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._closing.set()
        self._stopped.set()

    async def deliver(self, reply: Any) -> None:
        raise NotImplementedError("the web console delivers nothing to shoppers")

    async def _end_streams(self, app: web.Application) -> None:
        """Open event streams end when the server shuts down, instead of holding it for its timeout."""
        self._closing.set()

    # -- sessions -----------------------------------------------------------------

    async def _session(self, request: web.Request) -> Session | None:
        stored = await self._access.session(request.cookies.get(SESSION_COOKIE))
        user = self._users.get(stored.user) if stored is not None else None
        return Session(user=user, csrf_token=stored.csrf_token) if user is not None and stored is not None else None

    def _secure(self, request: web.Request) -> bool:
        return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"

    def _same_origin(self, request: web.Request) -> bool:
        """A browser names the page that sent a change; another site's page is refused."""
        origin = request.headers.get("Origin")
        if origin is None:  # not sent by old browsers or scripts; the CSRF token still guards the change
            return True
        host = request.headers.get("X-Forwarded-Host") or request.host  # behind a proxy that rewrites Host
        if origin == "null":
            return False
        try:
            return URL(origin).authority == host
        except ValueError:  # "http://[::1" and the like: no page of ours sends that
            return False

    async def _signed_in_page(self, request: web.Request, role: str, page: str) -> web.Response:
        session = await self._session(request)
        if session is None:
            return self._sign_in_page(request, next_page=page)
        if not session.has_role(role):
            other = "/console/insights" if session.has_role("merchant") else "/console"
            return _page(f"<!doctype html><meta charset=utf-8><title>Not allowed</title><p>Your account "
                         f"'{html.escape(session.user.name)}' does not have the {role} role. "
                         f"<a href='{other}'>Go back</a>.</p>", status=403)
        template = self._templates["console.html" if page == "console" else "insights.html"]
        return _page(_render(template, shop=self.shop_name, user=session.user.display_name or session.user.name,
                             user_name=session.user.name, csrf=session.csrf_token,
                             roles=" ".join(session.user.roles), timezone=self.settings.timezone))

    def _sign_in_page(self, request: web.Request, *, next_page: str, error: str = "", name: str = "",
                      status: int = 200) -> web.Response:
        token = secrets.token_urlsafe(24)
        response = _page(_render(self._templates["sign_in.html"], shop=self.shop_name, csrf=token,
                                 next=next_page, error=error, name=name), status=status)
        response.set_cookie(SIGN_IN_COOKIE, token, path=PREFIX, httponly=True, samesite="Strict",
                            secure=self._secure(request))
        if error:
            response.headers["X-Kefu-Sign-In"] = "failed"
        return response

    async def console_page(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        if session is not None and not session.has_role("agent") and session.has_role("merchant"):
            raise web.HTTPSeeOther(f"{PREFIX}/insights")
        return await self._signed_in_page(request, "agent", "console")

    async def insights_page(self, request: web.Request) -> web.Response:
        return await self._signed_in_page(request, "merchant", "insights")

    async def sign_in(self, request: web.Request) -> web.Response:
        try:
            form = await _form(request)
        except ConsoleError as refused:
            return refused.response()
        name = form.get("name", "").strip()[:64]
        password = form.get("password", "")
        next_page = "insights" if form.get("next") == "insights" else "console"
        sent = form.get("csrf", "")
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        if not self._same_origin(request) or not sent or not secrets.compare_digest(sent, expected):
            return self._sign_in_page(request, next_page=next_page, name=name, status=403,
                                      error="The sign-in form expired. Please try again.")
        address = request.remote or "unknown"  # the person's, behind [http] proxy_hops proxies (bot/http.py)
        attempt = await self._access.begin_sign_in(address, name)  # counted before the slow check: the limit holds
        if isinstance(attempt, float):  # under concurrency, and across workers
            log.warning("web_console.sign_in_limited address=%s name=%s retry_after=%.0f", address, name, attempt)
            return self._sign_in_page(request, next_page=next_page, name=name, status=429,
                                      error=f"Too many failed sign-ins. Try again in {int(attempt) + 1} seconds.")
        user = self._users.get(name)
        ok = await asyncio.to_thread(verify_password, password, user.password_hash if user else self._decoy_hash)
        if user is None or not ok:
            log.warning("web_console.sign_in_failed address=%s name=%s", address, name)
            return self._sign_in_page(request, next_page=next_page, name=name, status=401,
                                      error="Wrong name or password.")
        await self._access.sign_in_succeeded(attempt)
        token, _ = await self._access.open_session(user.name)
        log.info("web_console.signed_in user=%s address=%s", user.name, address)
        target = f"{PREFIX}/insights" if next_page == "insights" and "merchant" in user.roles else PREFIX
        response = _redirect(target)
        response.set_cookie(SESSION_COOKIE, token, path=PREFIX, httponly=True, samesite="Strict",
                            secure=self._secure(request))
        response.del_cookie(SIGN_IN_COOKIE, path=PREFIX)
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        try:
            form = await _form(request)
        except ConsoleError as refused:
            return refused.response()
        session = await self._session(request)
        if session is not None:
            if not self._same_origin(request) or not session.csrf_ok(form.get("csrf", "")):
                return ConsoleError(403, "csrf", "the sign-out form is missing its token").response()
            await self._access.close_session(request.cookies.get(SESSION_COOKIE))
            log.info("web_console.signed_out user=%s", session.user.name)
        response = _redirect(PREFIX)
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound(text=f"no console file '{name}'")
        return web.Response(body=self._static[name], content_type=STATIC_FILES[name], charset="utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    # -- the JSON API -------------------------------------------------------------

    def api(self, action: Callable[[web.Request, Session], Awaitable[Any]], *, role: str, change: bool = False
            ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Session, role, and for changes the origin and CSRF checks; the core's refusals become 404 / 409."""
        async def handler(request: web.Request) -> web.Response:
            try:
                session = await self._session(request)
                if session is None:
                    raise ConsoleError(401, "signed_out", "sign in again at /console")
                if not session.has_role(role):
                    raise ConsoleError(403, "forbidden", f"this needs the {role} role")
                if change and not self._same_origin(request):
                    raise ConsoleError(403, "csrf", "the request came from another site")
                if change and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
                    raise ConsoleError(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong; reload the page")
                return _json(await action(request, session))
            except ConsoleError as refused:
                return refused.response()
            except ConversationNotFoundError as exc:
                return _json({"error": "not_found", "detail": str(exc)}, status=404)
            except HandoffConflictError as exc:
                return _json({"error": "conflict", "detail": str(exc), "state": exc.state, "agent": exc.agent},
                             status=409)
        return handler

    async def _queue_json(self) -> dict[str, Any]:
        return {"handoffs": [item.to_json() for item in await self.backend.handoffs(QUEUE_STATES)]}

    async def _read_queue_text(self) -> str:
        return json.dumps(await self._queue_json(), ensure_ascii=False)

    async def queue(self, request: web.Request, session: Session) -> Any:
        return await self._queue_json()

    async def view(self, request: web.Request, session: Session) -> Any:
        return (await self.backend.handoff_view(*_address(request))).to_json()

    async def claim(self, request: web.Request, session: Session) -> Any:
        return (await self.backend.claim(*_address(request), session.user.name)).to_json()

    async def release(self, request: web.Request, session: Session) -> Any:
        return (await self.backend.release(*_address(request), session.user.name)).to_json()

    async def close(self, request: web.Request, session: Session) -> Any:
        return (await self.backend.close(*_address(request), session.user.name)).to_json()

    async def reply(self, request: web.Request, session: Session) -> Any:
        text = (await _json_body(request)).get("text")
        if not isinstance(text, str) or not text.strip():
            raise ConsoleError(400, "missing_field", "'text' must be a non-empty string", field="text")
        if len(text) > MAX_REPLY_CHARS:
            raise ConsoleError(413, "text_too_long", f"a reply is at most {MAX_REPLY_CHARS} characters")
        stored = await self.backend.agent_reply(*_address(request), session.user.name, text.strip())
        return {"message": stored.to_json()}

    async def faq(self, request: web.Request, session: Session) -> Any:
        query = request.query.get("q", "").strip()
        if not query:
            raise ConsoleError(400, "missing_field", "'q' is required", field="q")
        language = request.query.get("language") or None
        found = await self.backend.search_faq(query[:MAX_QUERY_CHARS], language=language, limit=5)
        return {"results": [item.to_json() for item in found]}

    async def insights(self, request: web.Request, session: Session) -> Any:
        start, end = _period(request, self._zone)
        return dict(await self.backend.insights_report(start, end))

    async def unanswered(self, request: web.Request, session: Session) -> Any:
        start, end = _period(request, self._zone)
        found = await self.backend.unanswered_questions(start, end)
        return {"start": start.isoformat(), "end": end.isoformat(), **found}

    async def unanswered_csv(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(request)
        if session is None or not session.has_role("merchant"):
            return _json({"error": "forbidden", "detail": "sign in with the merchant role"}, status=403)
        try:
            start, end = _period(request, self._zone)
        except ConsoleError as refused:
            return refused.response()
        body = "\ufeff" + await self.backend.unanswered_csv(start, end)  # the BOM tells Excel it is UTF-8
        filename = f"kefu-unanswered-{start.isoformat()}-{end.isoformat()}.csv"
        return web.Response(text=body, content_type="text/csv", charset="utf-8",
                            headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'})

    # -- live updates -------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: `queue` when the queue changes, `change` after any committed change."""
        session = await self._session(request)
        if session is None or not session.has_role("agent"):
            return _json({"error": "signed_out", "detail": "sign in again at /console"}, status=401)
        response = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        token = request.cookies.get(SESSION_COOKIE)
        version = self.backend.changes_version()
        sent_queue = None
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing.is_set():
                if await self._access.session(token) is None:
                    await response.write(b"event: signed_out\ndata: {}\n\n")
                    break
                queue = await self._queue_text.get()
                if queue != sent_queue:
                    await response.write(f"event: queue\ndata: {queue}\n\n".encode())
                    sent_queue = queue
                await response.write(f"event: change\ndata: {json.dumps({'version': version})}\n\n".encode())
                version = await self._next_change(version)
        except ConnectionResetError:
            log.debug("web_console.stream_closed user=%s", session.user.name)
        return response

    async def _next_change(self, version: int) -> int:
        """Wait for a change (sending nothing for up to KEEPALIVE_SECONDS), or for shutdown."""
        waiter = asyncio.ensure_future(self.backend.wait_for_change(version, KEEPALIVE_SECONDS))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({waiter, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if not waiter.done():
            waiter.cancel()
            return version
        await asyncio.sleep(0.05)  # let a burst of commits (one turn writes several times) arrive as one event
        return self.backend.changes_version()


def _address(request: web.Request) -> tuple[str, str]:
    return request.match_info["channel"], request.match_info["conversation"]


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ConsoleError(415, "unsupported_media_type", "send the body as application/json")
    try:
        data = loads_json(await request.read())
    except InvalidJson as bad:
        raise ConsoleError(400, bad.error, bad.detail) from None
    if not isinstance(data, dict):
        raise ConsoleError(400, "invalid_json", "the body must be a JSON object")
    return data


async def _form(request: web.Request) -> dict[str, str]:
    """The console's two HTML forms, as the browser posts them (urlencoded UTF-8); anything else is refused.

    Parsed here rather than by aiohttp's `post()`, which answers a malformed multipart body with a 500.
    """
    if request.content_type not in ("application/x-www-form-urlencoded", ""):
        raise ConsoleError(415, "unsupported_media_type", "send the form as application/x-www-form-urlencoded")
    try:
        body = (await request.read()).decode("utf-8")
        fields = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict")
        for key, value in fields:
            check_text(key, "a field name")
            check_text(value, f"the field '{key[:20]}'")
    except (UnicodeDecodeError, ValueError) as exc:  # InvalidJson is a ValueError too
        raise ConsoleError(400, "invalid_form", f"the form is not valid: {exc}") from None
    return dict(fields)
