"""Built-in bot texts: every locale has every text, with the same placeholders as English."""

from __future__ import annotations

import re
import tomllib
from importlib import resources

import pytest

from bot.errors import ConfigError
from bot.texts import TEXT_KEYS, Texts

LOCALES = sorted(item.name.removesuffix(".toml") for item in resources.files("bot.locales").iterdir()
                 if item.name.endswith(".toml"))
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def locale(code: str) -> dict[str, str]:
    return tomllib.loads(resources.files("bot.locales").joinpath(f"{code}.toml").read_text(encoding="utf-8"))


def test_english_and_chinese_ship():
    assert {"en", "zh"} <= set(LOCALES)


@pytest.mark.parametrize("code", LOCALES)
def test_each_locale_has_every_text_with_the_english_placeholders(code):
    texts = locale(code)
    assert set(texts) == set(TEXT_KEYS)
    english = locale("en")
    for key in TEXT_KEYS:
        assert set(PLACEHOLDER.findall(texts[key])) == set(PLACEHOLDER.findall(english[key])), key
    assert len([day for day in texts["weekdays"].split(",") if day.strip()]) == 7


def test_a_text_falls_back_to_the_default_language_and_fills_placeholders():
    texts = Texts(shop_name="Lantern Lane", default_language="en", overrides={})
    text, language = texts.get("agent_joined", "xx", agent="Alice")
    assert (text, language) == ("Alice from the Lantern Lane team is here to help you.", "en")
    assert texts.get("handoff", "zh")[0].startswith("正在为您转接Lantern Lane")


def test_merchant_overrides_win_and_a_typo_in_a_placeholder_stays_visible():
    texts = Texts(shop_name="Shop", default_language="en",
                  overrides={"en": {"apology": "So sorry, {nmae}!"}})
    assert texts.get("apology", "en")[0] == "So sorry, {nmae}!"


def test_an_unknown_text_key_is_a_config_error():
    with pytest.raises(ConfigError, match="texts.en.apologee"):
        Texts(shop_name="Shop", default_language="en", overrides={"en": {"apologee": "x"}})
