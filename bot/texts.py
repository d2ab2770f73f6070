"""Localized bot texts: built-in defaults per language, overridden by the merchant's config."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources

from bot.config import Config
from bot.errors import ConfigError

TEXT_KEYS = ("not_sure", "no_match", "apology", "handoff", "handoff_after_hours", "handoff_delayed", "agent_joined",
             "handoff_delayed_after_hours", "handoff_returned", "conversation_closed", "weekdays", "welcome", "help",
             "language_set", "language_unknown", "reset_done", "unsupported_media", "left_queue", "turn_failed",
             "other_language", "order_ask_number", "order_ask_proof", "order_no_match", "order_too_many_tries",
             "order_unavailable", "order_status_pending_payment", "order_status_processing",
             "order_status_partially_shipped", "order_status_shipped", "order_status_delivered",
             "order_status_cancelled", "order_status_refunded", "order_status_on_hold", "order_claim_arrival",
             "order_tracking", "order_items", "order_stuck", "order_not_received", "order_change_request",
             "product_from", "product_wanted_yes", "product_wanted_no", "product_in_stock", "product_sold_out",
             "product_recommend", "product_recommend_none", "product_other_currency")


class Texts:
    """Looks a text up in the shopper's language, else the shop's default language."""

    @classmethod
    def from_config(cls, config: Config) -> Texts:
        return cls(shop_name=config.shop.name, default_language=config.shop.default_language,
                   overrides=config.texts, config_path=str(config.path))

    def __init__(self, *, shop_name: str, default_language: str, overrides: Mapping[str, Mapping[str, str]],
                 config_path: str = "kefu.toml"):
        self._shop = shop_name
        self._default = default_language
        self._texts: dict[str, dict[str, str]] = {}
        for item in resources.files("bot.locales").iterdir():
            if item.name.endswith(".toml"):
                self._texts[item.name.removesuffix(".toml")] = tomllib.loads(item.read_text(encoding="utf-8"))
        for language, values in overrides.items():
            for key, value in values.items():
                if key not in TEXT_KEYS:
                    raise ConfigError(config_path, f"texts.{language}.{key}",
                                      f"unknown text; known texts: {', '.join(TEXT_KEYS)}")
                self._texts.setdefault(language, {})[key] = value
        if any(key not in self._texts.get(default_language, {}) for key in TEXT_KEYS):
            missing = [key for key in TEXT_KEYS if key not in self._texts.get(default_language, {})]
            raise ConfigError(config_path, f"texts.{default_language}",
                              f"no built-in texts for the default language; set {', '.join(missing)}")

    def get(self, key: str, language: str, **values: str) -> tuple[str, str]:
        """(text, language it is written in); {shop} and the given `values` are filled in."""
        for lang in (language, self._default):
            text = self._texts.get(lang, {}).get(key)
            if text:
                return text.format_map(_Values(shop=self._shop, **values)), lang
        raise KeyError(key)


class _Values(dict):
    """Leaves an unknown {placeholder} as written instead of failing a shopper's turn on a merchant's typo."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
