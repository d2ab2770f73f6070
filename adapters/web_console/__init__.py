"""The web console: human agents work handoffs in a browser, merchants read the dashboard.

Served at /console by kefu's own HTTP server from plain HTML, CSS and a little
JavaScript in `static/` (no build step). See channel.py for the routes.
"""

from __future__ import annotations

from aiohttp import web

from bot.config import Config
from bot.messages import ConsoleBackend, Gateway, PrivacyDesk

from adapters.web_console.channel import WebConsole
from adapters.web_console.privacy import PrivacyConsole


def create_adapter(*, config: Config, gateway: Gateway, http_app: web.Application | None = None) -> WebConsole:
    if http_app is None:
        raise ValueError("the web console needs kefu's HTTP server (run it with `kefu serve`)")
    if not isinstance(gateway, ConsoleBackend):
        raise TypeError("the web console needs a core that offers the agent desk, FAQ search and insights")
    console = WebConsole(settings=config.console, backend=gateway, shop_name=config.shop.name)
    console.add_routes(http_app)
    if isinstance(gateway, PrivacyDesk):  # merchants answer shoppers' data requests at /console/privacy
        PrivacyConsole(console, gateway).add_routes(http_app)
    return console
