"""`reply_in = "translate"`: answers for shoppers in a language the shop did not enable, translated by
a model behind a real OpenAI-compatible server on 127.0.0.1, used only when they say what the FAQ says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import ask, stored_meta, write_config
from fake_llm import GROUNDED, FakeModelServer, openai_responder_toml, serving

from bot.app import KefuApp
from bot.config import load_config

GERMAN = ("Der Standardversand in die EU und nach Großbritannien dauert 3-5 Werktage. Bestellungen, die an einem "
          "Werktag vor 14:00 CET eingehen, werden noch am selben Tag verschickt.")
GERMAN_QUESTION = "Wie lange dauert der Versand nach Deutschland?"


def is_translation(body: dict) -> bool:
    return body["messages"][0]["content"].startswith("You translate")


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    server = FakeModelServer()
    server.translation = GERMAN  # what the fake model answers to a translation request
    server.answer = lambda body: server.translation if is_translation(body) else GROUNDED
    async with serving(server):
        yield server


@pytest.fixture
async def shop(tmp_path: Path, model_server: FakeModelServer) -> AsyncIterator[KefuApp]:
    path = write_config(tmp_path, extra=openai_responder_toml(model_server.base_url, 5.0))
    path.write_text(path.read_text(encoding="utf-8").replace('languages = ["en", "zh"]',
                                                             'languages = ["en", "zh"]\nreply_in = "translate"'),
                    encoding="utf-8")
    async with KefuApp(load_config(path, environ={"TEST_LLM_KEY": "sk-test-123"}), channels=["webhook"], serve_http=True) as running:
        yield running


def translation_trace(app: KefuApp, reply: dict) -> dict | None:
    return stored_meta(app, reply).get("translation")


async def test_a_german_shopper_gets_the_answer_in_german(shop, model_server):
    reply = await ask(shop, GERMAN_QUESTION, "de-1")
    assert (reply["kind"], reply["language"], reply["faq_ids"][:1]) == ("answer", "de", ["shipping-time"])
    assert reply["text"] == GERMAN  # no "our help pages are in English" line: the answer is in German
    assert "translated from en into de" in reply["why"]
    assert translation_trace(shop, reply)["used"] is True
    [request] = [r["body"] for r in model_server.requests if is_translation(r["body"])]
    assert request["messages"][1]["content"] == GROUNDED and "into German" in request["messages"][0]["content"]


@pytest.mark.parametrize(("translation", "reason"), [
    (GERMAN.replace("3-5", "2-3"), "adds number 2"),
    (GERMAN.split(". ")[0] + ".", "leaves out number 00, number 14"),
    (GERMAN.split(". ")[0] + ". Wir haben keinen Versand am Wochenende, rufen Sie uns um 14:00 CET an.",
     "the answer does not say"),
    ("Standard delivery takes 3-5 business days to the EU and UK. Orders placed before 14:00 CET on a business day "
     "ship the same day.", "not 'de'"),
    (GERMAN + " Der Versand ist immer kostenlos.", "says something the answer does not say"),
])
async def test_a_translation_that_changes_the_answer_is_not_sent(shop, model_server, translation, reason):
    model_server.translation = translation
    reply = await ask(shop, GERMAN_QUESTION, "de-2")
    assert (reply["kind"], reply["language"]) == ("answer", "en")
    assert reply["text"].startswith("Unsere Hilfeseiten") and reply["text"].endswith(GROUNDED)
    trace = translation_trace(shop, reply)
    assert trace["used"] is False and reason in trace["reason"], trace


async def test_shoppers_in_enabled_languages_are_not_translated(shop, model_server):
    reply = await ask(shop, "how long does shipping take?", "en-1")
    assert (reply["kind"], reply["language"]) == ("answer", "en")
    assert not any(is_translation(r["body"]) for r in model_server.requests)
    assert translation_trace(shop, reply) is None


async def test_contact_details_reach_the_model_as_placeholders_and_come_back(shop, model_server):
    # the service-hours answer names the shop's email; the fake model keeps the placeholder it is given
    model_server.answer = lambda body: body["messages"][1]["content"] if is_translation(body) else GROUNDED
    reply = await ask(shop, "Wann ist euer Kundenservice erreichbar?", "de-3")
    [request] = [r["body"] for r in model_server.requests if is_translation(r["body"])]
    sent = request["messages"][1]["content"]
    assert "[EMAIL_1]" in sent and "@" not in sent
    assert "help@lanternlane.example" in reply["text"] and "[EMAIL_1]" not in reply["text"]
