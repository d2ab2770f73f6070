"""Order replies written by the model (`[orders] replies = "model"`), against a fake OpenAI-compatible server.

A draft goes out only if every number, date and claim in it comes from the order's lines;
otherwise the template reply does, and the stored trace says why.
"""

from __future__ import annotations

import pytest
from conftest import ask, stored_meta
from fake_llm import FakeModelServer, openai_responder_toml, serving
from test_orders import iso, orders_config

from bot.app import KefuApp
from bot.config import load_config
from bot.errors import ConfigError

ENV = {"TEST_LLM_KEY": "sk-test-123"}
SHIPPED = iso(2)[:10]
TRACKING = "DHL tracking number: 00340434161094042557\nhttps://www.dhl.de/track?piececode=00340434161094042557"


def is_order_prompt(body: dict) -> bool:
    return "The shop's system reports this about the shopper's order" in body["messages"][0]["content"]


@pytest.fixture
async def model() -> FakeModelServer:
    async with serving(FakeModelServer()) as server:
        yield server


def shop_config(tmp_path, model: FakeModelServer, replies: str = "model"):  # noqa: ANN001, ANN201
    extra = f'replies = "{replies}"\n' + openai_responder_toml(model.base_url, 5.0, style="compose")
    return load_config(orders_config(tmp_path, extra=extra), environ=ENV)


async def written_reply(tmp_path, model: FakeModelServer, draft: str, question: str = "where is my order LL-100001?",
                        proof: str = "it's ana.silva@example.com") -> tuple[dict, dict]:
    """The reply to `proof` after `question`, with the model answering order prompts with `draft`."""
    model.answer = lambda body: draft if is_order_prompt(body) else "1"
    async with KefuApp(shop_config(tmp_path, model), channels=["webhook"], serve_http=True) as app:
        await ask(app, question)
        reply = await ask(app, proof)
        return reply, stored_meta(app, reply)["order"]


async def test_a_written_reply_answers_the_question_with_the_orders_facts_and_keeps_the_tracking(tmp_path, model):
    draft = f"Good news: your order LL-100001 shipped on {SHIPPED}, so it is on its way to you."
    reply, trace = await written_reply(tmp_path, model, draft)
    assert reply["text"] == f"{draft}\n{TRACKING}"  # the parcel line and link the draft did not give
    assert trace["reply"]["used"] == "llm" and trace["reply"]["backend"] == "openai"
    prompt = next(r["body"] for r in model.requests if is_order_prompt(r["body"]))
    system, user = prompt["messages"][0]["content"], prompt["messages"][1]["content"]
    assert f"- Order LL-100001 shipped on {SHIPPED}." in system and "- DHL tracking number: 00340434161094042557" in system
    assert "https://" not in system  # links never pass through the model
    # the question the email answers, with the email masked
    assert "where is my order LL-100001?" in user and "[EMAIL_1]" in user and "ana.silva" not in user


async def test_a_draft_that_names_its_own_tracking_number_keeps_only_the_link(tmp_path, model):
    draft = f"Order LL-100001 shipped on {SHIPPED} with DHL, tracking number 00340434161094042557."
    reply, _ = await written_reply(tmp_path, model, draft)
    assert reply["text"] == f"{draft}\nhttps://www.dhl.de/track?piececode=00340434161094042557"


@pytest.mark.parametrize(("draft", "reason"), [
    (f"Your order LL-100001 shipped on {SHIPPED} and will arrive on 2026-12-24.", "not in the order LL-100001"),
    ("Good news: your order LL-100001 has been delivered.", "has been delivered"),
    ("Your order LL-100001 will arrive tomorrow.", f"reads like 'Order LL-100001 will arrive on {SHIPPED}.'"),
    ("Your order LL-100001 has been put on hold.", "reads like 'Order LL-100001 is on hold."),
    (f"Ihre Bestellung LL-100001 wurde am {SHIPPED} versandt und ist unterwegs zu Ihnen.", "the reply is in 'de'"),
    (f"Order LL-100001 shipped on {SHIPPED}. We have refunded your order.", "refunded"),
])
async def test_a_draft_that_says_more_than_the_order_gets_the_template_reply(tmp_path, model, draft, reason):
    reply, trace = await written_reply(tmp_path, model, draft)
    assert reply["text"].startswith(f"Order LL-100001 shipped on {SHIPPED}.\n{TRACKING}")  # the template
    assert trace["reply"]["used"] == "template" and reason in trace["reply"]["fallback"]
    assert trace["reply"]["draft"] == draft


async def test_a_model_that_does_not_answer_leaves_the_template_reply(tmp_path, model):
    model.answer = lambda body: "1"
    model.script = [(200, "1"), (503, ""), (503, ""), (503, "")]  # the FAQ's compose call, then the order's fails
    async with KefuApp(shop_config(tmp_path, model), channels=["webhook"], serve_http=True) as app:
        await ask(app, "where is my order LL-100001?")
        reply = await ask(app, "ana.silva@example.com")
        trace = stored_meta(app, reply)["order"]
    assert reply["text"].startswith(f"Order LL-100001 shipped on {SHIPPED}.")
    assert trace["reply"]["used"] == "template" and trace["reply"]["fallback"]


async def test_a_handoff_about_the_order_is_told_from_the_templates(tmp_path, model):
    model.answer = lambda body: "It is fine." if is_order_prompt(body) else "1"
    async with KefuApp(shop_config(tmp_path, model), channels=["webhook"], serve_http=True) as app:
        await ask(app, "my order LL-100003 hasn't moved in days")
        reply = await ask(app, "stuck@example.com")
    assert "Order LL-100003 shipped on" in reply["text"] and "asked a person" in reply["text"]
    assert not any(is_order_prompt(r["body"]) for r in model.requests)


async def test_template_replies_never_ask_the_model(tmp_path, model):
    model.answer = lambda body: "1"
    async with KefuApp(shop_config(tmp_path, model, replies="template"), channels=["webhook"],
                       serve_http=True) as app:
        await ask(app, "where is my order LL-100001?")
        reply = await ask(app, "ana.silva@example.com")
        assert "reply" not in stored_meta(app, reply)["order"]
    assert reply["text"].startswith(f"Order LL-100001 shipped on {SHIPPED}.\n{TRACKING}")
    assert not any(is_order_prompt(r["body"]) for r in model.requests)


def test_model_replies_need_a_model(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(orders_config(tmp_path, extra='replies = "model"\n'), environ={})
    assert error.value.key == "orders.replies" and "needs a model" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_config(orders_config(tmp_path, extra='replies = "llm"\n'), environ={})
    assert error.value.key == "orders.replies" and "template, model" in str(error.value)


def test_model_replies_must_fit_the_turn(tmp_path, model):
    extra = 'replies = "model"\n' + openai_responder_toml(model.base_url, 25.0, style="compose")
    with pytest.raises(ConfigError) as error:  # 6 s for the lookup + 25 s for the draft: past the 30 s turn
        load_config(orders_config(tmp_path, extra=extra), environ=ENV)
    assert error.value.key == "orders.replies" and "turn_timeout_seconds" in str(error.value)
