"""The chat widget for the shop's own site: one script tag, served by kefu (adapters/web_chat/channel.py);
the widget itself is static/chat.js and chat.css, plain files without a build step."""

from __future__ import annotations

from aiohttp import web

from adapters.web_chat.channel import WebChatChannel
from bot.config import Config
from bot.messages import Gateway


def create_adapter(*, config: Config, gateway: Gateway, http_app: web.Application | None = None) -> WebChatChannel:
    if http_app is None:
        raise ValueError("the chat widget needs kefu's HTTP server (run it with `kefu serve`)")
    return WebChatChannel(config=config.web_chat, gateway=gateway, http_app=http_app, shop_name=config.shop.name,
                          default_language=config.shop.default_language)


__all__ = ["WebChatChannel", "create_adapter"]
