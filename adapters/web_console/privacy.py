"""The console's privacy page for merchants: export and erase a shopper's data, and the audit log.

Translation only, like the rest of the console: the page's requests become `PrivacyDesk` calls.
Both export and erase are POSTs with the session's CSRF token (an export discloses personal data
and is audited, so it is guarded like a change), and the subject travels in the body, never in a URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.errors import InvalidRequestError
from bot.messages import PrivacyDesk

from adapters.web_console.channel import PREFIX, SECURITY_HEADERS, ConsoleError, WebConsole, _json_body, _page, \
    _render, _static_text
from adapters.web_console.sessions import Session

MAX_SUBJECT_CHARS = 600
MAX_AUDIT_ENTRIES = 500


class PrivacyConsole:
    """Routes at /console/privacy (page, script) and /console/api/privacy/* for the merchant role."""

    def __init__(self, console: WebConsole, desk: PrivacyDesk):
        self._console = console
        self._desk = desk
        self._template = _static_text("privacy.html")
        self._script = _static_text("privacy.js").encode()

    def add_routes(self, app: web.Application) -> None:
        api = self._console.api
        router = app.router
        router.add_get(f"{PREFIX}/privacy", self.page)
        router.add_get(f"{PREFIX}/privacy/privacy.js", self.script)
        router.add_post(f"{PREFIX}/api/privacy/export", api(self.export, role="merchant", change=True))
        router.add_post(f"{PREFIX}/api/privacy/erase", api(self.erase, role="merchant", change=True))
        router.add_get(f"{PREFIX}/api/audit", api(self.audit, role="merchant"))

    async def page(self, request: web.Request) -> web.Response:
        console = self._console
        session = await console._session(request)
        if session is None:
            return console._sign_in_page(request, next_page="insights")
        if not session.has_role("merchant"):
            return _page("<!doctype html><meta charset=utf-8><title>Not allowed</title><p>The privacy page needs the "
                         "merchant role. <a href='/console'>Go back</a>.</p>", status=403)
        return _page(_render(self._template, shop=console.shop_name,
                             user=session.user.display_name or session.user.name, csrf=session.csrf_token,
                             roles=" ".join(session.user.roles)))

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(body=self._script, content_type="text/javascript", charset="utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    async def export(self, request: web.Request, session: Session) -> Any:
        conversation, user, _ = await _subject_body(request)
        return await _call(self._desk.privacy_export, conversation=conversation, user=user, actor=session.user.name)

    async def erase(self, request: web.Request, session: Session) -> Any:
        conversation, user, force = await _subject_body(request)
        return await _call(self._desk.privacy_erase, conversation=conversation, user=user, actor=session.user.name,
                           force=force)

    async def audit(self, request: web.Request, session: Session) -> Any:
        limit = request.query.get("limit", "200")
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_AUDIT_ENTRIES:
            raise ConsoleError(400, "invalid_field", f"'limit' must be 1 to {MAX_AUDIT_ENTRIES}", field="limit")
        return await self._desk.audit_log(limit=int(limit))


async def _subject_body(request: web.Request) -> tuple[str | None, str | None, bool]:
    data = await _json_body(request)
    unknown = sorted(set(data) - {"conversation", "user", "force"})
    if unknown:
        raise ConsoleError(400, "unknown_field", f"unknown field '{unknown[0]}'", field=unknown[0])
    values: dict[str, str | None] = {}
    for name in ("conversation", "user"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_SUBJECT_CHARS):
            raise ConsoleError(400, "invalid_field", f"'{name}' must be a string of at most {MAX_SUBJECT_CHARS} "
                               "characters", field=name)
        values[name] = value
    force = data.get("force", False)
    if not isinstance(force, bool):
        raise ConsoleError(400, "invalid_field", "'force' must be true or false", field="force")
    return values["conversation"], values["user"], force


async def _call(call: Callable[..., Awaitable[Any]], **arguments: Any) -> Any:
    """A malformed subject, as the core judges it, becomes a 400 naming the field."""
    try:
        return await call(**arguments)
    except InvalidRequestError as exc:
        raise ConsoleError(400, "invalid_field", str(exc), field=exc.field) from None
